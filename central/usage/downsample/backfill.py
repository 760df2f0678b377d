"""Backfill: the rollups of past days, computed with the continuous queries' own SELECT ... INTO.

Continuous queries only ever see recent intervals; :func:`backfill` computes the rest (or an
outage's days again, once its backlog is in), a local day per statement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from central.influx.admin import InfluxAdmin
from central.usage.downsample.plan import HOURLY_TIER, LOCAL_TZ, QUERIES

__all__ = ["backfill", "backfill_days"]


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
    admin: InfluxAdmin | None,
    database: str,
    first: date,
    now: datetime,
    *,
    progress: Callable[[str], None],
) -> int:
    """Run every rollup's SELECT ... INTO over past days, a local day per query.

    Continuous queries only ever see recent intervals; this computes the rest (or an outage's
    days again, once its backlog is in). It writes the same points a CQ would, so running it
    twice is harmless. With ``admin`` ``None`` it only reports the statements (a dry run).
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
            if admin is None:
                progress(statement + ";")
                continue
            for _, row in admin.rows(statement, database=database):
                written += int(row.get("written") or 0)
        total += written
        if admin is not None:
            partial = "" if day.whole_day else ", complete hours so far"
            progress(f"backfill {day.day} ({number}/{len(days)}): {written} points{partial}")
    return total
