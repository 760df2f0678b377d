"""Interval arithmetic for the usage statistics: step functions, local-time buckets, percentiles.

Pure functions, no I/O. Times are aware datetimes; everything here works in UTC and meets local
time only where a bucket or an opening interval is defined (``zone``).

A sensor's readings make a **step function**: each reading's value holds from its own time until
the next reading of the same sensor (boards report a state when it changes), the last one until
the end of the range, and a reading carried in from before the range holds from the range's
start. Before a sensor's first known reading its value is unknown and counts as 0 (a seat free,
nobody counted).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import pairwise
from typing import Literal

from central.sites import OpeningHours

__all__ = [
    "Bucket",
    "Granularity",
    "Interval",
    "Segment",
    "buckets",
    "held",
    "integrate",
    "intersect",
    "maxima",
    "open_windows",
    "percentile",
    "runs",
    "total",
]

Granularity = Literal["hour", "day", "week", "month"]
Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Segment:
    """``value`` holds on ``[start, end)``."""

    start: datetime
    end: datetime
    value: float


@dataclass(frozen=True, slots=True)
class Bucket:
    """A reporting period: ``period`` is its local start (it may lie before the range, e.g. the
    Monday of a week the range begins on a Wednesday); ``start``/``end`` are the part of it
    inside the range, in UTC."""

    period: datetime
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def held(
    points: Sequence[tuple[datetime, float]],
    carried: float | None,
    start: datetime,
    stop: datetime,
) -> list[Segment]:
    """The step function of one sensor on ``[start, stop)``.

    ``points`` are its readings in time order, all in ``[start, stop)``; ``carried`` is the value
    of its last reading before ``start`` (None when there is none). Each value holds until the
    next reading; the last until ``stop``.
    """
    out: list[Segment] = []
    if carried is not None:
        until = points[0][0] if points else stop
        if until > start:
            out.append(Segment(start, until, carried))
    for i, (moment, value) in enumerate(points):
        until = points[i + 1][0] if i + 1 < len(points) else stop
        if until > moment:
            out.append(Segment(moment, until, value))
    return out


def total(functions: Iterable[Sequence[Segment]], start: datetime, stop: datetime) -> list[Segment]:
    """The pointwise sum of step functions, covering all of ``[start, stop)`` (0 where none has
    a value). Adjacent pieces with the same value are joined."""
    deltas: dict[datetime, float] = {start: 0.0, stop: 0.0}
    for segments in functions:
        for seg in segments:
            deltas[seg.start] = deltas.get(seg.start, 0.0) + seg.value
            deltas[seg.end] = deltas.get(seg.end, 0.0) - seg.value
    out: list[Segment] = []
    level = 0.0
    moments = sorted(deltas)
    for here, after in pairwise(moments):
        level += deltas[here]
        if after <= start or here >= stop:
            continue
        lo, hi = max(here, start), min(after, stop)
        value = round(level, 9)  # sums of 0/1 and integer counts: keep them exact
        if out and out[-1].value == value and out[-1].end == lo:
            out[-1] = Segment(out[-1].start, hi, value)
        else:
            out.append(Segment(lo, hi, value))
    return out


def integrate(segments: Sequence[Segment], windows: Sequence[Interval]) -> list[float]:
    """For each window, the integral of the step function over it (value × seconds).

    Both inputs sorted by time and non-overlapping; one pass over both.
    """
    out: list[float] = []
    first = 0
    for lo, hi in windows:
        while first < len(segments) and segments[first].end <= lo:
            first += 1
        acc = 0.0
        i = first
        while i < len(segments) and segments[i].start < hi:
            seg = segments[i]
            a, b = max(seg.start, lo), min(seg.end, hi)
            if b > a:
                acc += seg.value * (b - a).total_seconds()
            i += 1
        out.append(acc)
    return out


def maxima(segments: Sequence[Segment], windows: Sequence[Interval]) -> list[float | None]:
    """For each window, the highest value the step function takes in it (None: not covered)."""
    out: list[float | None] = []
    first = 0
    for lo, hi in windows:
        while first < len(segments) and segments[first].end <= lo:
            first += 1
        best: float | None = None
        i = first
        while i < len(segments) and segments[i].start < hi:
            seg = segments[i]
            if min(seg.end, hi) > max(seg.start, lo):
                best = seg.value if best is None else max(best, seg.value)
            i += 1
        out.append(best)
    return out


def runs(segments: Sequence[Segment]) -> list[Interval]:
    """The maximal intervals where the step function is non-zero (a seat's occupied spells);
    a repeated "occupied" reading does not split a spell."""
    out: list[Interval] = []
    for seg in segments:
        if seg.value == 0:
            continue
        if out and out[-1][1] == seg.start:
            out[-1] = (out[-1][0], seg.end)
        else:
            out.append((seg.start, seg.end))
    return out


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """The intersection of two sorted lists of disjoint intervals."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _local_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def open_windows(
    hours: OpeningHours, start: datetime, stop: datetime, zone: tzinfo
) -> list[Interval]:
    """The times in ``[start, stop)`` the site is open, in UTC, sorted.

    Opening hours are local wall-clock intervals per weekday; "24:00" ends at the next local
    midnight. When the directory gives no hours, the whole range counts as open.
    """
    if not hours.known:
        return [(start, stop)] if stop > start else []
    out: list[Interval] = []
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = stop.astimezone(zone).date()
    while day <= last:
        for opens, closes in hours.intervals_on(day):
            lo = datetime.combine(day, opens, zone).astimezone(UTC)
            if closes == time.max:
                hi = _local_midnight(day + timedelta(days=1), zone)
            else:
                hi = datetime.combine(day, closes, zone).astimezone(UTC)
            lo, hi = max(lo, start), min(hi, stop)
            if hi > lo:
                out.append((lo, hi))
        day += timedelta(days=1)
    return out


def _period_start(local: datetime, granularity: Granularity) -> datetime:
    """The local start of the period ``local`` falls in (wall clock, tz-aware)."""
    zone = local.tzinfo
    if granularity == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    day = local.date()
    if granularity == "week":
        day -= timedelta(days=day.weekday())  # ISO weeks begin on Monday
    elif granularity == "month":
        day = day.replace(day=1)
    return datetime.combine(day, time(0), zone)


def _next_period(period: datetime, granularity: Granularity) -> datetime:
    zone = period.tzinfo
    if granularity == "hour":
        # Step in UTC: a local hour repeated or skipped by a DST change stays one real hour.
        return (period.astimezone(UTC) + timedelta(hours=1)).astimezone(zone)
    day = period.date()
    if granularity == "day":
        day += timedelta(days=1)
    elif granularity == "week":
        day += timedelta(days=7)
    else:
        day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime.combine(day, time(0), zone)


def buckets(
    start: datetime, stop: datetime, granularity: Granularity, zone: tzinfo
) -> list[Bucket]:
    """The local hours, days, ISO weeks or months that ``[start, stop)`` touches, each cut to
    the range. Days begin at local midnight, so a day is 23 or 25 hours across a DST change."""
    out: list[Bucket] = []
    if stop <= start:
        return out
    period = _period_start(start.astimezone(zone), granularity)
    while period.astimezone(UTC) < stop:
        following = _next_period(period, granularity)
        lo = max(period.astimezone(UTC), start)
        hi = min(following.astimezone(UTC), stop)
        if hi > lo:
            out.append(Bucket(period, lo, hi))
        period = following
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between the closest ranks —
    NumPy's default and ``statistics.quantiles(method="inclusive")``."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
