"""InfluxQL text as InfluxDB 1.x prints it back: identifiers, durations, time literals, and
comparing two statements (``SHOW CONTINUOUS QUERIES`` returns a query in its own spelling)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["format_duration", "ident", "same_query", "time_literal"]

_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# InfluxQL keywords: as identifiers they must be quoted (the server's own rendering does so).
_KEYWORD_TEXT = """
all alter analyze and any as asc begin by cardinality continuous create database databases default
delete desc destinations diagnostics distinct drop duration end every exact explain false field for
from grant grants group groups in inf insert into key keys kill limit measurement measurements name
offset on or order password policies policy privileges queries query read replication resample
retention revoke select series set shard shards show slimit soffset stats subscription
subscriptions tag to true user users values where with write
"""
_KEYWORDS = frozenset(_KEYWORD_TEXT.split())


def ident(name: str) -> str:
    """An identifier as InfluxDB 1.x prints it: bare when it can be, else double-quoted."""
    if _BARE.match(name) and name.lower() not in _KEYWORDS:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_duration(value: timedelta | None) -> str:
    """A duration literal as InfluxQL prints it (``1w``, ``90d``, ``12h``); ``None`` is ``INF``."""
    if value is None:
        return "INF"
    micros = value // timedelta(microseconds=1)
    sign, micros = ("-", -micros) if micros < 0 else ("", micros)
    for unit, size in (("w", 604_800_000_000), ("d", 86_400_000_000), ("h", 3_600_000_000)):
        if micros and micros % size == 0:
            return f"{sign}{micros // size}{unit}"
    for unit, size in (("m", 60_000_000), ("s", 1_000_000), ("ms", 1000)):
        if micros % size == 0:
            return f"{sign}{micros // size}{unit}"
    return f"{sign}{micros}u"


def time_literal(moment: datetime) -> str:
    """A time literal as the plan writes it: UTC, whole seconds (``'2026-11-24T16:00:00Z'``)."""
    return "'" + moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "'"


def same_query(a: str, b: str) -> bool:
    """Whether two InfluxQL texts are the same statement up to identifier quoting, keyword case
    and spacing (string literals compared exactly)."""
    return _normalise(a) == _normalise(b)


def _normalise(text: str) -> str:
    out: list[str] = []
    in_string = False
    for char in text:
        if char == "'":
            in_string = not in_string
            out.append(char)
        elif in_string:
            out.append(char)
        elif char != '"':
            out.append(char.casefold())
    return " ".join("".join(out).split())
