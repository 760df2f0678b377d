"""From one site's readings to what the figures compute on: step functions and counted events.

A seat's ``occupied`` and a counter's people inside are step functions (:mod:`central.usage.steps`:
each reading holds until the next one); an entrance counter's ``in_total`` gives visitors as
its rises across resets (:func:`central.visitors.increases`). The notes here are the ones
several figures share.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from itertools import pairwise
from typing import NamedTuple

from central.sites import SiteSpec
from central.usage.client import SensorReadings
from central.usage.figures.base import Span
from central.usage.steps import Bucket, Segment, held, total
from central.visitors import increases

__all__ = [
    "counters",
    "inside",
    "no_counter",
    "no_seats",
    "occupied",
    "per_bucket",
    "seat_steps",
    "visitor_counts",
]


class SeatSteps(NamedTuple):
    """One directory seat: its label as shown, its occupied step function (1 or 0), and
    whether it reported at all."""

    label: str
    segments: list[Segment]
    reported: bool


def _steps(
    reading: SensorReadings | None,
    value: Callable[[dict[str, float]], float],
    start: datetime,
    stop: datetime,
) -> list[Segment]:
    if reading is None:
        return []
    carried = value(reading.carried[1]) if reading.carried is not None else None
    return held([(t, value(f)) for t, f in reading.points], carried, start, stop)


def _occupied(fields: dict[str, float]) -> float:
    return 1.0 if fields["occupied"] else 0.0


def seat_steps(span: Span, site: SiteSpec) -> tuple[list[SeatSteps], list[str]]:
    """Each directory seat's occupied step function, and notes (seat sensors not in the
    directory are left out)."""
    start, stop = span.start, span.stop
    readings = (
        span.client.readings("seat", ("occupied",), site.id, start, stop) if span.begun else []
    )
    by_key = {(r.gateway, r.sensor): r for r in readings}
    seats = site.all_seats()
    labels = [seat.label or seat.sensor for seat in seats]
    out: list[SeatSteps] = []
    for seat, label in zip(seats, labels, strict=True):
        reading = by_key.pop((seat.gateway, seat.sensor), None)
        shown = label if labels.count(label) == 1 else f"{label} ({seat.sensor})"
        out.append(SeatSteps(shown, _steps(reading, _occupied, start, stop), reading is not None))
    notes = []
    if by_key:
        stray = ", ".join(f"{g}/{s}" for g, s in sorted(by_key))
        notes.append(
            f"{site.name}: 目录中没有的座位传感器未计入 / seat sensors not in the "
            f"directory are left out: {stray}"
        )
    return out, notes


def occupied(seats: Sequence[SeatSteps], span: Span) -> list[Segment]:
    """How many of ``seats`` are occupied, as one step function."""
    return total([seat.segments for seat in seats], span.start, span.stop)


def counters(span: Span, site: SiteSpec) -> list[SensorReadings]:
    """The site's entrance counters' totals (``in_total``, ``out_total``)."""
    if not span.begun:
        return []
    return span.client.readings("people", ("in_total", "out_total"), site.id, span.start, span.stop)


def inside(found: Sequence[SensorReadings], span: Span) -> list[Segment]:
    """People inside: the sum over the site's counters of (in_total - out_total), at least 0."""
    start, stop = span.start, span.stop
    per_counter = [
        _steps(c, lambda f: float(f["in_total"] - f["out_total"]), start, stop) for c in found
    ]
    return [Segment(s.start, s.end, max(0.0, s.value)) for s in total(per_counter, start, stop)]


def _rises(reading: SensorReadings) -> tuple[list[tuple[datetime, float]], int]:
    """Visitors each reading in the range reports (its rise over the one before, across resets,
    by :func:`central.visitors.increases`), and how many resets were seen. Without a reading
    before the range the first one is only the baseline: what it counted may be from any time."""
    totals = [int(f["in_total"]) for _, f in reading.points]
    times = [t for t, _ in reading.points]
    if reading.carried is not None:
        totals.insert(0, int(reading.carried[1]["in_total"]))
    else:
        times = times[1:]
    resets = sum(1 for a, b in pairwise(totals) if b < a)
    return [(t, float(n)) for t, n in zip(times, increases(totals), strict=True)], resets


def per_bucket(events: Iterable[tuple[datetime, float]], bs: Sequence[Bucket]) -> list[float]:
    """The sum of the events' amounts in each bucket (an event belongs to the bucket of its
    time; events outside every bucket are dropped)."""
    starts = [b.start for b in bs]
    out = [0.0] * len(bs)
    for moment, amount in events:
        i = bisect_right(starts, moment) - 1
        if 0 <= i < len(bs) and moment < bs[i].end:
            out[i] += amount
    return out


def visitor_counts(
    found: Sequence[SensorReadings], bs: Sequence[Bucket], site: SiteSpec
) -> tuple[list[float], list[str]]:
    """Visitors per bucket over the site's counters, and a note for each counter that reset."""
    events: list[tuple[datetime, float]] = []
    notes = []
    for counter in found:
        rises, resets = _rises(counter)
        events += rises
        if resets:
            notes.append(
                f"{site.name}: 计数器 {counter.sensor} 重置 {resets} 次，已跨重置累计 / "
                f"counter {counter.sensor} reset {resets}×, counted across"
            )
    return per_bucket(events, bs), notes


def no_counter(site: SiteSpec) -> str:
    return f"{site.name}: 无入口计数器数据 / no entrance counter data"


def no_seats(site: SiteSpec) -> str:
    return f"{site.name}: 目录中没有座位 / no seats in the directory"
