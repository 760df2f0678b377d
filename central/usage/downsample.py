"""Downsampling on InfluxDB 1.x, so a year of data stays fast: the plan as data, and its statements.

Three retention policies in the consumer's database (why these, and how to read them, in
``docs/downsampling.md``):

========  ========  ============  =====================================================
policy    keeps     shard groups  holds
========  ========  ============  =====================================================
raw       90 days   1 day         every reading as the consumer wrote it (the default)
hourly    2 years   1 week        one point per series and UTC hour, by continuous query
daily     forever   30 days       one point per series and local (Asia/Shanghai) day
========  ========  ============  =====================================================

Every :class:`Rollup` becomes one continuous query per tier; the same ``SELECT ... INTO``, with a
time range, is what :func:`backfill` runs for the past. :func:`plan_changes` compares the plan
with what a server has (pure, no I/O); :func:`read_state` and :func:`apply` do the talking.

Seats and gateway availability are *states* reported on change, so an hour's mean of its
readings is not the share of time in the state. Their rollups sample the state per minute
(carried forward with ``fill(previous)``) and keep the minutes in state 1, the minutes known, and
the state at the end; :func:`state_minutes` turns consecutive rows into exact minutes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from central.errors import CentralError
from qihe.configtypes import BaseUrl, Duration, Name

__all__ = [
    "CQ_PREFIX",
    "DAILY",
    "HOURLY",
    "LOCAL_TZ",
    "QUERIES",
    "RAW",
    "RETENTION_POLICIES",
    "ROLLUPS",
    "TIERS",
    "BackfillDay",
    "Change",
    "ContinuousQuery",
    "DownsampleConfig",
    "DownsampleError",
    "DownsampleInflux",
    "InfluxAdminClient",
    "PolicyState",
    "RetentionPolicy",
    "Rollup",
    "ServerState",
    "StateRow",
    "Tier",
    "apply",
    "backfill",
    "backfill_days",
    "counter_increase",
    "format_duration",
    "ident",
    "plan_changes",
    "read_state",
    "same_query",
    "state_minutes",
]

#: Local days of the statistics. Asia/Shanghai has kept UTC+8 without daylight saving since
#: 1991, so ``GROUP BY time(1d, -8h)`` is exactly its local midnight, in a CQ too.
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
_LOCAL_OFFSET = timedelta(hours=8)

#: Our continuous queries are named ``qihe_<tier>_<measurement>``; a ``qihe_`` query no longer in
#: the plan is dropped, everybody else's are left alone.
CQ_PREFIX = "qihe_"


class DownsampleError(CentralError, RuntimeError):
    """InfluxDB could not be reached, refused a statement, or is not a 1.x server."""


class DownsampleInflux(BaseModel):
    """The ``influx`` mapping of ``config/stats.yaml``, as far as downsampling needs it.

    Extra keys are ignored: the file belongs to the statistics (which validate it whole with
    their own model); this reads only the server, the database and the credentials.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    url: BaseUrl
    database: Name
    username: Name | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    #: Per statement; a backfill day of the whole city takes seconds, not minutes.
    timeout: Duration = timedelta(seconds=60)


class DownsampleConfig(BaseModel):
    """``config/stats.yaml`` as ``qihe stats-setup`` reads it: only its ``influx`` mapping."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    influx: DownsampleInflux


# -- InfluxQL text ------------------------------------------------------------------------------

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


def _time_literal(moment: datetime) -> str:
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


# -- the plan -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """A retention policy of the plan; ``duration`` ``None`` keeps points forever."""

    name: str
    duration: timedelta | None
    shard_duration: timedelta
    default: bool = False

    def clause(self) -> str:
        default = " DEFAULT" if self.default else ""
        return (
            f"DURATION {format_duration(self.duration)} REPLICATION 1 "
            f"SHARD DURATION {format_duration(self.shard_duration)}{default}"
        )

    def create_statement(self, database: str) -> str:
        return f"CREATE RETENTION POLICY {ident(self.name)} ON {ident(database)} {self.clause()}"

    def alter_statement(self, database: str) -> str:
        return f"ALTER RETENTION POLICY {ident(self.name)} ON {ident(database)} {self.clause()}"


#: A quarter at full detail: the current and the two previous months (a monthly report can be
#: recomputed from raw until its month is two months old), the window any rollup can be rebuilt
#: in by :func:`backfill`, far above the gateway outbox's and the broker session's backlog.
RAW = RetentionPolicy("raw", timedelta(days=90), timedelta(days=1), default=True)
#: Two years of hours: a year of monthly reports at hour level, plus the same month a year back.
HOURLY = RetentionPolicy("hourly", timedelta(days=730), timedelta(days=7))
#: Local days forever: a few thousand points a day for the whole city.
DAILY = RetentionPolicy("daily", None, timedelta(days=30))
RETENTION_POLICIES = (RAW, HOURLY, DAILY)


@dataclass(frozen=True, slots=True)
class Tier:
    """Where a set of continuous queries writes, their interval, and how they are rerun."""

    name: str
    policy: RetentionPolicy
    interval: timedelta
    #: ``GROUP BY time(interval, offset)``: -8h puts daily buckets at local midnight.
    offset: timedelta
    #: ``RESAMPLE EVERY ... FOR ...``: how often the CQ runs, and how far back each run recomputes
    #: (late readings of a backlog replay land in intervals already computed once).
    every: timedelta
    resample_for: timedelta

    def group_by_time(self) -> str:
        if self.offset:
            return f"time({format_duration(self.interval)}, {format_duration(self.offset)})"
        return f"time({format_duration(self.interval)})"


#: Hourly, recomputing the last 12 hours at every run: a gateway cut off for a night delivers
#: its backlog within that window. Longer outages: run the backfill for their days.
HOURLY_TIER = Tier(
    "hourly", HOURLY, timedelta(hours=1), timedelta(0), timedelta(hours=1), timedelta(hours=12)
)
#: Daily in local days, at local midnight, recomputing the two days before.
DAILY_TIER = Tier(
    "daily", DAILY, timedelta(days=1), -_LOCAL_OFFSET, timedelta(days=1), timedelta(days=2)
)
TIERS = (HOURLY_TIER, DAILY_TIER)


@dataclass(frozen=True, slots=True)
class Rollup:
    """What one measurement keeps per interval.

    ``aggregates`` are ``(function, field, alias)``. A ``state`` rollup instead samples that 0/1
    field per minute (the last reading of the minute, carried forward) and keeps
    ``<state>_minutes`` (minutes in state 1), ``known_minutes`` (minutes after the first reading
    of the query's range) and ``<state>_last`` (the state at the end of the interval).
    """

    measurement: str
    aggregates: tuple[tuple[str, str, str], ...] = ()
    state: str | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        if self.state is not None:
            return (f"{self.state}_minutes", "known_minutes", f"{self.state}_last")
        return tuple(alias for _, _, alias in self.aggregates)

    def select(
        self,
        database: str,
        tier: Tier,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> str:
        """``SELECT ... INTO <tier>`` from raw; with ``start``/``end`` a time range (backfill)."""
        into = f"{ident(database)}.{ident(tier.policy.name)}.{ident(self.measurement)}"
        source = f"{ident(database)}.{ident(RAW.name)}.{ident(self.measurement)}"
        if self.state is not None:
            f = ident(self.state)
            columns = (
                f"sum({f}) AS {ident(self.state + '_minutes')}, count({f}) AS known_minutes, "
                f"last({f}) AS {ident(self.state + '_last')}"
            )
            source = f"(SELECT last({f}) AS {f} FROM {source} GROUP BY time(1m), * fill(previous))"
        else:
            columns = ", ".join(
                f"{function}({ident(name)}) AS {ident(alias)}"
                for function, name, alias in self.aggregates
            )
        where = ""
        if start is not None and end is not None:
            where = f" WHERE time >= {_time_literal(start)} AND time < {_time_literal(end)}"
        return (
            f"SELECT {columns} INTO {into} FROM {source}{where} GROUP BY {tier.group_by_time()}, *"
        )


def _each(function: str, *names: str) -> tuple[tuple[str, str, str], ...]:
    return tuple((function, name, f"{name}_{function}") for name in names)


def _counters(*names: str) -> tuple[tuple[str, str, str], ...]:
    # A cumulative counter keeps its highest and its last value: without a reset they are equal;
    # last < max means it restarted from 0 in the interval (see counter_increase).
    return tuple(agg for name in names for agg in (*_each("max", name), *_each("last", name)))


_LINK_COUNTERS = ("frames", "crc_errors", "malformed", "lost", "duplicates", "reconnects")

ROLLUPS = (
    Rollup("seat", state="occupied"),
    Rollup("people", _counters("in_total", "out_total")),
    # Door readings are changes: an opening is a reading of 1. SUM counts them; COUNT is openings
    # plus closings. (Minutes open would need the state treatment; no figure asks for it.)
    Rollup("door", (("sum", "open", "openings"), ("count", "open", "readings"))),
    Rollup("motion", (("sum", "motion", "detections"), ("count", "motion", "readings"))),
    Rollup(
        "heartbeat",
        (
            ("min", "supply_mv", "supply_mv_min"),
            ("mean", "supply_mv", "supply_mv_mean"),
            ("count", "supply_mv", "heartbeats"),
            # Below the interval's length: the board restarted in it.
            ("min", "uptime_s", "uptime_s_min"),
        ),
    ),
    Rollup("link", _counters(*_LINK_COUNTERS)),
    Rollup(
        "outbox",
        (
            *_each("mean", "queued"),
            *_each("max", "queued", "dropped_periodic", "dropped_state", "dropped_clock"),
        ),
    ),
    Rollup(
        "system",
        (
            *_each("min", "disk_free_bytes", "mem_available_bytes"),
            *_each("last", "disk_total_bytes", "mem_total_bytes"),
            *_each("mean", "cpu_temp_c", "load_1m"),
            *_each("max", "cpu_temp_c", "load_1m"),
        ),
    ),
    Rollup("gateway_status", state="online"),
)


@dataclass(frozen=True, slots=True)
class ContinuousQuery:
    """One rollup in one tier, as a continuous query."""

    tier: Tier
    rollup: Rollup

    @property
    def name(self) -> str:
        return f"{CQ_PREFIX}{self.tier.name}_{self.rollup.measurement}"

    def select(
        self, database: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> str:
        return self.rollup.select(database, self.tier, start=start, end=end)

    def statement(self, database: str) -> str:
        """The CQ exactly as ``SHOW CONTINUOUS QUERIES`` prints it back."""
        return (
            f"CREATE CONTINUOUS QUERY {ident(self.name)} ON {ident(database)} "
            f"RESAMPLE EVERY {format_duration(self.tier.every)} "
            f"FOR {format_duration(self.tier.resample_for)} "
            f"BEGIN {self.select(database)} END"
        )


QUERIES = tuple(ContinuousQuery(tier, rollup) for tier in TIERS for rollup in ROLLUPS)


# -- comparing the plan with a server ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyState:
    """A retention policy as ``SHOW RETENTION POLICIES`` reports it."""

    name: str
    duration: timedelta | None
    shard_duration: timedelta
    replication: int
    default: bool


@dataclass(frozen=True, slots=True)
class ServerState:
    """What the plan is compared with: does the database exist, its policies and queries."""

    database_exists: bool
    policies: Mapping[str, PolicyState] = field(default_factory=dict)
    queries: Mapping[str, str] = field(default_factory=dict)


Outcome = Literal["created", "altered", "replaced", "dropped", "unchanged"]


@dataclass(frozen=True, slots=True)
class Change:
    """What setup does (or found already done) for one database, policy or query."""

    kind: Literal["database", "retention policy", "continuous query"]
    name: str
    outcome: Outcome
    statements: tuple[str, ...] = ()
    detail: str = ""

    def line(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.kind} {self.name}: {self.outcome}{detail}"


def _describe(policy: RetentionPolicy) -> str:
    default = ", default" if policy.default else ""
    duration, shard = format_duration(policy.duration), format_duration(policy.shard_duration)
    return f"{duration}, shard {shard}{default}"


def plan_changes(state: ServerState, database: str) -> list[Change]:
    """Everything setup must do to bring ``state`` to the plan, and what is already right."""
    changes: list[Change] = []
    policies = state.policies
    if state.database_exists:
        changes.append(Change("database", database, "unchanged"))
    else:
        # Created with raw as its default policy, so it never gets an unused autogen.
        statement = (
            f"CREATE DATABASE {ident(database)} WITH DURATION {format_duration(RAW.duration)} "
            f"REPLICATION 1 SHARD DURATION {format_duration(RAW.shard_duration)} "
            f"NAME {ident(RAW.name)}"
        )
        changes.append(Change("database", database, "created", (statement,), "raw is its default"))
    previous_default = next((p.name for p in policies.values() if p.default), None)
    for policy in RETENTION_POLICIES:
        if policy is RAW and not state.database_exists:
            detail = f"with the database: {_describe(RAW)}"
            changes.append(Change("retention policy", RAW.name, "created", (), detail))
            continue
        changes.append(
            _policy_change(policy, policies.get(policy.name), database, previous_default)
        )
    for query in QUERIES:
        wanted = query.statement(database)
        found = state.queries.get(query.name)
        if found is None:
            changes.append(Change("continuous query", query.name, "created", (wanted,)))
        elif same_query(found, wanted):
            changes.append(Change("continuous query", query.name, "unchanged"))
        else:
            drop = f"DROP CONTINUOUS QUERY {ident(query.name)} ON {ident(database)}"
            changes.append(
                Change("continuous query", query.name, "replaced", (drop, wanted), "text differed")
            )
    planned = {q.name for q in QUERIES}
    for name in sorted(state.queries):
        if name.startswith(CQ_PREFIX) and name not in planned:
            drop = f"DROP CONTINUOUS QUERY {ident(name)} ON {ident(database)}"
            changes.append(
                Change("continuous query", name, "dropped", (drop,), "no longer in the plan")
            )
    return changes


def _policy_change(
    policy: RetentionPolicy, found: PolicyState | None, database: str, previous_default: str | None
) -> Change:
    if found is None:
        detail = _describe(policy)
        if policy.default and previous_default not in (None, policy.name):
            detail += f"; the default was {previous_default}, whose points stay there"
        return Change(
            "retention policy", policy.name, "created", (policy.create_statement(database),), detail
        )
    differences: list[str] = []
    if found.duration != policy.duration:
        shorter = policy.duration is not None and (
            found.duration is None or found.duration > policy.duration
        )
        warning = ": older points are deleted" if shorter else ""
        was, now = format_duration(found.duration), format_duration(policy.duration)
        differences.append(f"duration {was} → {now}{warning}")
    if found.shard_duration != policy.shard_duration:
        was, now = format_duration(found.shard_duration), format_duration(policy.shard_duration)
        differences.append(f"shard {was} → {now} for new shards")
    if found.replication != 1:
        differences.append(f"replication {found.replication} → 1")
    if policy.default and not found.default:
        differences.append(f"made the default (was {previous_default})")
    if not differences:
        return Change("retention policy", policy.name, "unchanged", (), _describe(policy))
    return Change(
        "retention policy",
        policy.name,
        "altered",
        (policy.alter_statement(database),),
        "; ".join(differences),
    )


# -- talking to InfluxDB 1.x --------------------------------------------------------------------


class InfluxAdminClient:
    """``POST /query`` to InfluxDB 1.x over httpx, for the statements that change the server
    (retention policies, continuous queries, SELECT ... INTO); the statistics read through
    :class:`central.usage.client.InfluxQLClient`. Statement errors raise :class:`DownsampleError`.

    Basic auth with ``username``/``password``; else ``Authorization: Token`` when a token is given
    (which only a 2.x or 3.x server wants, and :meth:`check_server` refuses those).
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        auth = httpx.BasicAuth(username, password or "") if username is not None else None
        headers = {"Authorization": f"Token {token}"} if token and username is None else {}
        self._http = httpx.Client(
            base_url=self.url, auth=auth, headers=headers, timeout=timeout, transport=transport
        )
        self.server_version: str | None = None

    def query(self, q: str, *, db: str | None = None) -> list[dict[str, Any]]:
        """The results of ``q`` (one per statement); raise on any HTTP or statement error."""
        params = {"q": q, **({"db": db} if db else {})}
        try:
            response = self._http.post("/query", data=params)
        except httpx.HTTPError as exc:
            raise DownsampleError(f"InfluxDB at {self.url} is unreachable: {exc}") from exc
        self.server_version = response.headers.get("X-Influxdb-Version", self.server_version)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200:
            detail = body.get("error") if isinstance(body, dict) else None
            raise DownsampleError(
                f"InfluxDB at {self.url} answered {response.status_code} to {_short(q)}: "
                f"{detail or response.text.strip()[:200]}"
            )
        results = body.get("results", []) if isinstance(body, dict) else []
        for result in results:
            if "error" in result:
                raise DownsampleError(f"InfluxDB refused {_short(q)}: {result['error']}")
        return list(results)

    def check_server(self) -> str:
        """The server's version; refuse anything but 1.x (it has no CQs or retention policies)."""
        self.query("SHOW DATABASES")
        version = (self.server_version or "unknown").lstrip("v")
        if not version.startswith("1."):
            raise DownsampleError(
                f"{self.url} is InfluxDB {version}: retention policies and continuous queries are "
                "InfluxDB 1.x; for 2.x create the tasks of docs/downsampling.md"
            )
        return version

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short(q: str) -> str:
    return repr(q if len(q) <= 120 else q[:117] + "...")


def _rows(results: list[dict[str, Any]]) -> Iterable[tuple[str | None, dict[str, Any]]]:
    for result in results:
        for series in result.get("series", []):
            for values in series.get("values") or []:
                yield series.get("name"), dict(zip(series["columns"], values, strict=True))


_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|µs|us|ns)")
_GO_UNITS = {
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
    "us": timedelta(microseconds=1),
    "µs": timedelta(microseconds=1),
    "ns": timedelta(0),
}


def _go_duration(text: str) -> timedelta:
    """``2160h0m0s`` as SHOW RETENTION POLICIES prints durations."""
    total = timedelta(0)
    for number, unit in _GO_DURATION.findall(text):
        total += float(number) * _GO_UNITS[unit]
    return total


def read_state(client: InfluxAdminClient, database: str) -> ServerState:
    """The database's retention policies and continuous queries, read with SHOW statements."""
    names = {str(row["name"]) for _, row in _rows(client.query("SHOW DATABASES"))}
    if database not in names:
        return ServerState(database_exists=False)
    policies: dict[str, PolicyState] = {}
    for _, row in _rows(client.query(f"SHOW RETENTION POLICIES ON {ident(database)}")):
        duration = _go_duration(str(row["duration"]))
        policies[str(row["name"])] = PolicyState(
            name=str(row["name"]),
            duration=duration or None,
            shard_duration=_go_duration(str(row["shardGroupDuration"])),
            replication=int(row["replicaN"]),
            default=bool(row["default"]),
        )
    queries = {
        str(row["name"]): str(row["query"])
        for name, row in _rows(client.query("SHOW CONTINUOUS QUERIES"))
        if name == database
    }
    return ServerState(True, policies, queries)


def apply(client: InfluxAdminClient, changes: Sequence[Change]) -> None:
    """Run the statements of ``changes`` in order (database, policies, then queries)."""
    for change in changes:
        for statement in change.statements:
            client.query(statement)


# -- backfill -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackfillDay:
    """One local day of backfill: the UTC range of its complete hours, and of the day if over."""

    day: date
    hours: tuple[datetime, datetime] | None
    whole_day: tuple[datetime, datetime] | None


def backfill_days(first: date, now: datetime) -> list[BackfillDay]:
    """Local days from ``first`` up to ``now``: complete hours only, whole days once over."""
    out: list[BackfillDay] = []
    last_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    day = first
    while True:
        start = datetime.combine(day, time(0), LOCAL_TZ).astimezone(UTC)
        if start >= last_hour:
            return out
        end = datetime.combine(day + timedelta(days=1), time(0), LOCAL_TZ).astimezone(UTC)
        hours = (start, min(end, last_hour))
        out.append(BackfillDay(day, hours, (start, end) if end <= last_hour else None))
        day += timedelta(days=1)


def backfill(
    client: InfluxAdminClient | None,
    database: str,
    first: date,
    now: datetime,
    *,
    progress: Callable[[str], None],
) -> int:
    """Run every rollup's SELECT ... INTO over past days, a local day per query.

    Continuous queries only ever see recent intervals; this computes the rest (or an outage's
    days again, once its backlog is in). It writes the same points a CQ would, so running it
    twice is harmless. With ``client`` ``None`` it only reports the statements (a dry run).
    Returns the points written.
    """
    days = backfill_days(first, now)
    total = 0
    for number, day in enumerate(days, start=1):
        written = 0
        for query in QUERIES:
            span = day.hours if query.tier is HOURLY_TIER else day.whole_day
            if span is None:
                continue
            statement = query.select(database, start=span[0], end=span[1])
            if client is None:
                progress(statement + ";")
                continue
            for _, row in _rows(client.query(statement, db=database)):
                written += int(row.get("written") or 0)
        total += written
        if client is not None:
            partial = "" if day.whole_day else ", complete hours so far"
            progress(f"backfill {day.day} ({number}/{len(days)}): {written} points{partial}")
    return total


# -- reading rollups ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateRow:
    """A state rollup's fields for one interval of one sensor."""

    on_minutes: float
    known_minutes: int
    last: int

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any], state: str) -> Self:
        return cls(
            on_minutes=float(fields[f"{state}_minutes"] or 0),
            known_minutes=int(fields["known_minutes"] or 0),
            last=int(fields[f"{state}_last"] or 0),
        )


def state_minutes(
    rows: Sequence[StateRow | None], *, interval_minutes: int = 60, before: int = 0
) -> list[float]:
    """Minutes in state 1 in each of consecutive intervals, from a state rollup's rows.

    ``rows`` has one entry per interval, ``None`` where the rollup has no row (no reading in any
    range that computed it: the state did not change). The minutes of an interval before its
    first known minute are in the state the previous interval ended in; ``before`` is the state
    before the first interval (free, 0, unless known otherwise). Exact to the minute whatever
    range a continuous query or the backfill computed each row in.
    """
    out: list[float] = []
    state = before
    for row in rows:
        if row is None:
            out.append(float(state * interval_minutes))
            continue
        out.append(row.on_minutes + state * (interval_minutes - row.known_minutes))
        state = row.last
    return out


def counter_increase(previous_last: int | None, maximum: int, last: int) -> int:
    """Counted in one interval by a cumulative counter, from the rollup's ``max`` and ``last``.

    ``previous_last`` is the last total of the interval before (``None``: counting from a
    reset). A maximum below it means the counter restarted before this interval's first
    reading; a last value below the maximum means it restarted within the interval, and the last
    value is what it counted since. Equal to :func:`central.visitors.increases` over the raw
    totals when the counter resets at most once per interval and does not climb back above its
    old total within the same interval.
    """
    base = previous_last if previous_last is not None and maximum >= previous_last else 0
    return maximum - base + (last if last < maximum else 0)
