"""A small InfluxQL client for the usage statistics: ``GET /query`` over HTTP, JSON series back.

InfluxQL is the one query language InfluxDB 1.x (``/query``), 2.x (its 1.x-compatible
``/query`` with a DBRP mapping) and 3.x (``/query``, database = the 3.x database) all answer,
so one set of queries serves every deployment. Authentication is basic auth (1.x users; 2.x and
3.x also take a token as the password) or ``Authorization: Token …`` (2.x, 3.x).

What InfluxDB does here, and what it does not:

- **InfluxDB selects**: one site's points of one measurement in ``[start, end)``, per sensor
  (``GROUP BY "gateway", "sensor"``), and the **last point before** ``start`` of each sensor
  (``SELECT LAST(...) … WHERE time < start``), so a state or a counter total carried into the
  range counts. ``LAST`` is a selector InfluxQL gets exactly right.
- **Python computes** everything on top (:mod:`central.usage.figures`): a seat's or a door's
  state holds until its next reading (boards report on change), so ``MEAN``/``INTEGRAL`` over
  ``GROUP BY time()`` buckets — which weigh readings, not the time between them, and know nothing
  of the state carried into a bucket — are wrong for it; counter totals fall back to 0 at a board
  reset, which ``NON_NEGATIVE_DIFFERENCE`` skips and ``SPREAD`` misreads; and stays are intervals
  between two readings. ``docs/statistics.md`` lists every query text this module sends.

Queries go as ``GET``: they are read-only ``SELECT`` statements, which every version takes by
GET (1.x wants POST only for writes and DDL), and one site's query is a few hundred bytes of URL.
Responses are asked for with ``epoch=ns`` (exact integer timestamps) and ``chunked=true`` (no
``max-row-limit`` truncation on servers that set one); a response still marked ``partial`` is
refused rather than silently short.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

import httpx
from pydantic import SecretStr, model_validator

from central.errors import CentralError
from qihe.configtypes import BaseUrl, Duration, Name, StrictModel

__all__ = [
    "InfluxQLClient",
    "QueryError",
    "ReadingsSource",
    "SelectionError",
    "SensorReadings",
    "Series",
    "StatsInfluxConfig",
    "UsageError",
    "influx_time",
    "readings_queries",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UsageError(CentralError):
    """Base of the usage statistics' errors; its text is one line an operator can act on."""


class QueryError(UsageError, RuntimeError):
    """An InfluxQL query failed: InfluxDB unreachable, refused, or answered with an error.

    ``query`` is the InfluxQL text; ``url`` the server; ``status`` the HTTP status when there was
    an answer at all.
    """

    def __init__(self, reason: str, *, url: str, query: str, status: int | None = None) -> None:
        super().__init__(f"InfluxDB at {url}: {reason} (query: {query})")
        self.reason = reason
        self.url = url
        self.query = query
        self.status = status


class SelectionError(UsageError, ValueError):
    """What was asked for does not exist or makes no sense: an unknown site, an empty range."""


class StatsInfluxConfig(StrictModel):
    """Where the statistics read from: any InfluxDB that answers InfluxQL on ``/query``."""

    url: BaseUrl
    #: 1.x database; 2.x: the database of the bucket's DBRP mapping; 3.x: the database.
    database: Name
    #: The ``rp`` parameter; the database's default retention policy when omitted.
    retention_policy: Name | None = None
    #: 1.x user (basic auth). 2.x/3.x accept a token as ``password`` too.
    username: Name | None = None
    password: SecretStr | None = None
    #: 2.x/3.x token, sent as ``Authorization: Token …``.
    token: SecretStr | None = None
    timeout: Duration = timedelta(seconds=30)
    #: How far before a range the last reading of a sensor is looked for (the state or total
    #: carried into the range). Bounded so the query never scans all history (InfluxDB 3.x
    #: refuses queries that touch too many files); a seat free for longer than this reads as
    #: "no data", which counts the same as free.
    lookback: Duration = timedelta(days=31)

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> Self:
        if self.password is not None and self.username is None:
            raise ValueError("password is set without username")
        if self.token is not None and self.username is not None:
            raise ValueError("give username/password (basic auth) or token, not both")
        if self.token is not None and not self.token.get_secret_value().strip():
            raise ValueError("token must not be empty")
        return self


@dataclass(frozen=True, slots=True)
class Series:
    """One series of an InfluxQL answer: measurement name, its tags, columns and rows."""

    name: str
    tags: dict[str, str]
    columns: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]

    def rows(self) -> Iterator[dict[str, Any]]:
        for row in self.values:
            yield dict(zip(self.columns, row, strict=True))


@dataclass(frozen=True, slots=True)
class SensorReadings:
    """One sensor's readings of one measurement, from InfluxDB, in time order.

    ``carried`` is its last reading before the range (None when there is none within the
    lookback); ``points`` are its readings inside ``[start, end)``. Each reading is
    ``(time, {field: value})`` with the time in UTC.
    """

    site: str
    gateway: str
    sensor: str
    carried: tuple[datetime, dict[str, int]] | None
    points: tuple[tuple[datetime, dict[str, int]], ...] = field(default=())


class ReadingsSource(Protocol):
    """What the figures need from InfluxDB (a fake in unit tests, :class:`InfluxQLClient` live)."""

    def readings(
        self,
        measurement: str,
        fields: Sequence[str],
        site: str,
        start: datetime,
        end: datetime,
    ) -> list[SensorReadings]: ...


def influx_time(moment: datetime) -> str:
    """An InfluxQL time literal (RFC 3339, UTC, microseconds): ``'2025-03-04T16:00:00Z'``."""
    if moment.tzinfo is None:
        raise SelectionError(f"time {moment.isoformat()} has no time zone")
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return f"'{text}Z'"


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def readings_queries(
    measurement: str,
    fields: Sequence[str],
    site: str,
    start: datetime,
    end: datetime,
    lookback: timedelta,
) -> tuple[str, str]:
    """The two InfluxQL statements behind :meth:`InfluxQLClient.readings`: the last reading of
    each sensor before ``start`` (no earlier than ``start - lookback``), and every reading in
    ``[start, end)``."""
    where = f'"site" = {_literal(site)}'
    last = ", ".join(f"LAST({_ident(f)}) AS {_ident(f)}" for f in fields)
    raw = ", ".join(_ident(f) for f in fields)
    group = 'GROUP BY "gateway", "sensor"'
    carried = (
        f"SELECT {last} FROM {_ident(measurement)} WHERE {where} "
        f"AND time >= {influx_time(start - lookback)} AND time < {influx_time(start)} {group}"
    )
    inside = (
        f"SELECT {raw} FROM {_ident(measurement)} WHERE {where} "
        f"AND time >= {influx_time(start)} AND time < {influx_time(end)} {group}"
    )
    return carried, inside


def _time_of(value: Any) -> datetime:
    # epoch=ns: exact integers. Readings carry microseconds, so nothing is lost below that.
    if not isinstance(value, int):
        raise TypeError(f"time {value!r} is not an integer (asked for epoch=ns)")
    return _EPOCH + timedelta(microseconds=value // 1000)


def _fields_of(row: dict[str, Any], fields: Sequence[str]) -> dict[str, int] | None:
    out: dict[str, int] = {}
    for name in fields:
        value = row.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None  # a point without this field (another writer): not a reading of it
        out[name] = int(value)
    return out


class InfluxQLClient:
    """Sends InfluxQL to ``GET {url}/query`` and returns the series; no I/O until a query.

    Use as a context manager (or call :meth:`close`). ``transport`` lets tests answer requests
    without a server (``httpx.MockTransport``).
    """

    def __init__(
        self, config: StatsInfluxConfig, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.config = config
        headers = {"Accept": "application/json"}
        auth: httpx.BasicAuth | None = None
        if config.token is not None:
            headers["Authorization"] = f"Token {config.token.get_secret_value()}"
        elif config.username is not None:
            password = config.password.get_secret_value() if config.password else ""
            auth = httpx.BasicAuth(config.username, password)
        self._http = httpx.Client(
            base_url=config.url,
            headers=headers,
            auth=auth,
            timeout=config.timeout.total_seconds(),
            transport=transport,
        )

    @property
    def lookback(self) -> timedelta:
        return self.config.lookback

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def query(self, influxql: str) -> list[Series]:
        """The series of one InfluxQL statement; raise :class:`QueryError` naming it."""
        params = {"db": self.config.database, "q": influxql, "epoch": "ns", "chunked": "true"}
        if self.config.retention_policy is not None:
            params["rp"] = self.config.retention_policy
        url = self.config.url

        def fail(reason: str, status: int | None = None) -> QueryError:
            return QueryError(reason, url=url, query=influxql, status=status)

        try:
            response = self._http.get("/query", params=params)
        except httpx.TimeoutException:
            raise fail(f"no answer within {self.config.timeout.total_seconds():g} s") from None
        except httpx.TransportError as exc:
            raise fail(f"unreachable ({exc or type(exc).__name__})") from None
        status = response.status_code
        try:
            answers = _json_objects(response.text)
        except ValueError:
            answers = []
        if status != 200:
            message = _error_of(answers) or response.text.strip()[:200] or response.reason_phrase
            if status in (401, 403):
                message = f"not authorised ({message}); check username/password or token"
            raise fail(f"HTTP {status}: {message}", status)
        if not answers:
            raise fail("the answer is not InfluxDB JSON", status)
        error = _error_of(answers)
        if error is not None:
            raise fail(error, status)
        return _merge_series(answers, fail)

    def readings(
        self,
        measurement: str,
        fields: Sequence[str],
        site: str,
        start: datetime,
        end: datetime,
    ) -> list[SensorReadings]:
        """Each sensor's readings of ``fields`` at ``site`` in ``[start, end)``, with the reading
        carried into the range. Sorted by (gateway, sensor)."""
        carried_q, inside_q = readings_queries(measurement, fields, site, start, end, self.lookback)
        carried: dict[tuple[str, str], tuple[datetime, dict[str, int]]] = {}
        for series in self.query(carried_q):
            key = (series.tags.get("gateway", ""), series.tags.get("sensor", ""))
            for row in series.rows():
                values = _fields_of(row, fields)
                if values is not None:
                    carried[key] = (_time_of(row["time"]), values)
        inside: dict[tuple[str, str], list[tuple[datetime, dict[str, int]]]] = {}
        for series in self.query(inside_q):
            key = (series.tags.get("gateway", ""), series.tags.get("sensor", ""))
            points = inside.setdefault(key, [])
            for row in series.rows():
                values = _fields_of(row, fields)
                if values is not None:
                    points.append((_time_of(row["time"]), values))
        return [
            SensorReadings(
                site=site,
                gateway=gateway,
                sensor=sensor,
                carried=carried.get((gateway, sensor)),
                points=tuple(sorted(inside.get((gateway, sensor), []), key=lambda p: p[0])),
            )
            for gateway, sensor in sorted(carried.keys() | inside.keys())
        ]


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object of a body: one when not chunked, one per chunk when chunked."""
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    at = 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return out
        value, at = decoder.raw_decode(text, at)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        out.append(value)


def _error_of(answers: list[dict[str, Any]]) -> str | None:
    for answer in answers:
        if isinstance(answer.get("error"), str):
            return str(answer["error"])
        for result in answer.get("results") or []:
            if isinstance(result, dict) and isinstance(result.get("error"), str):
                return str(result["error"])
    return None


def _merge_series(answers: list[dict[str, Any]], fail: Callable[[str], QueryError]) -> list[Series]:
    """Join the chunks of each series (same name and tags) back into one, in order."""
    merged: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[tuple[str, ...], list[Any]]] = {}
    partial = False
    for answer in answers:
        for result in answer.get("results") or []:
            partial = bool(result.get("partial", False))
            for raw in result.get("series") or []:
                tags = tuple(sorted((str(k), str(v)) for k, v in (raw.get("tags") or {}).items()))
                _, rows = merged.setdefault(
                    (str(raw.get("name", "")), tags), (tuple(raw.get("columns") or ()), [])
                )
                rows.extend(tuple(row) for row in raw.get("values") or [])
    if partial:
        # The last result still says more was to come: a row limit cut the answer short.
        raise fail("the answer was cut short (partial); narrow the range or raise max-row-limit")
    return [
        Series(name, dict(tags), columns, tuple(rows))
        for (name, tags), (columns, rows) in merged.items()
    ]
