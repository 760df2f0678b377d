"""The downsampling plan as data: three retention policies, two tiers, one rollup per measurement.

Every :class:`Rollup` becomes one continuous query per tier (:data:`QUERIES`); the same
``SELECT ... INTO``, with a time range, is what :mod:`central.usage.downsample.backfill` runs for
the past. Why these policies and fields, and how to read the rollups: ``docs/downsampling.md``.

Seats and gateway availability are *states* reported on change, so an hour's mean of its
readings is not the share of time in the state. Their rollups sample the state per minute
(carried forward with ``fill(previous)``) and keep the minutes in state 1, the minutes known, and
the state at the end of the interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from central.usage.downsample.ql import format_duration, ident, time_literal

__all__ = [
    "CQ_PREFIX",
    "DAILY",
    "HOURLY",
    "HOURLY_TIER",
    "LOCAL_TZ",
    "QUERIES",
    "RAW",
    "RETENTION_POLICIES",
    "ROLLUPS",
    "RetentionPolicy",
]

#: Local days of the statistics. Asia/Shanghai has kept UTC+8 without daylight saving since
#: 1991, so ``GROUP BY time(1d, -8h)`` is exactly its local midnight, in a CQ too.
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
_LOCAL_OFFSET = timedelta(hours=8)

#: Our continuous queries are named ``qihe_<tier>_<measurement>``; a ``qihe_`` query no longer in
#: the plan is dropped, everybody else's are left alone.
CQ_PREFIX = "qihe_"


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
            where = f" WHERE time >= {time_literal(start)} AND time < {time_literal(end)}"
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


QUERIES = tuple(
    ContinuousQuery(tier, rollup) for tier in (HOURLY_TIER, DAILY_TIER) for rollup in ROLLUPS
)
