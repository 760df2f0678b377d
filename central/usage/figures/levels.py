"""The figures of time-weighted levels (people inside, seats occupied): occupancy per period,
the peak hour and busiest weekday, typical busy times per weekday and hour."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo

from central.sites import SiteSpec
from central.usage.client import SelectionError, SensorReadings
from central.usage.figures.base import PERIOD, Ask, Figure, Row, SiteRows, Span, rounded
from central.usage.figures.readings import (
    counters,
    inside,
    no_counter,
    no_seats,
    occupied,
    seat_steps,
    visitor_counts,
)
from central.usage.steps import Bucket, Interval, integrate, maxima, percentile
from central.usage.table import WEEKDAYS, Column

__all__ = ["OCCUPANCY", "PEAKS", "TYPICAL"]


def _windows(bs: Sequence[Bucket]) -> list[Interval]:
    return [(b.start, b.end) for b in bs]


def _nothing_to_count(site: SiteSpec) -> str:
    return (
        f"{site.name}: 无入口计数器数据，目录中也没有座位 / no entrance counter "
        f"data and no seats in the directory"
    )


# --- occupancy ------------------------------------------------------------------------------


def _occupancy_rows(span: Span, site: SiteSpec) -> SiteRows:
    found = counters(span, site)
    people = inside(found, span)
    seats, notes = seat_steps(span, site)
    if not found:
        notes.append(no_counter(site))
    if not seats:
        notes.append(no_seats(site))
    taken = occupied(seats, span)
    bs = span.periods()
    windows = _windows(bs)
    p_sum, p_max = integrate(people, windows), maxima(people, windows)
    s_sum, s_max = integrate(taken, windows), maxima(taken, windows)
    rows: list[Row] = [
        {
            "period": bucket.period,
            "people_avg": rounded(p_sum[i] / bucket.seconds, 2) if found else None,
            "people_max": int(p_max[i] or 0) if found else None,
            "seats_occupied_avg": rounded(s_sum[i] / bucket.seconds, 2) if seats else None,
            "seats_occupied_max": int(s_max[i] or 0) if seats else None,
        }
        for i, bucket in enumerate(bs)
    ]
    return rows, notes


#: People inside and occupied seats per period: time-weighted averages and maxima of the step
#: functions (each state holds until the next reading).
OCCUPANCY = Figure(
    "occupancy",
    "在场人数与座位占用",
    "Occupancy",
    columns=lambda _: (
        PERIOD,
        Column("people_avg", "平均在场人数", "People inside, avg", "人", "float"),
        Column("people_max", "最多在场人数", "People inside, max", "人", "int"),
        Column("seats_occupied_avg", "平均占用座位", "Seats occupied, avg", "座", "float"),
        Column("seats_occupied_max", "最多占用座位", "Seats occupied, max", "座", "int"),
    ),
    rows=_occupancy_rows,
    by="hour",
)


# --- peaks ----------------------------------------------------------------------------------


def _peak_rows(span: Span, site: SiteSpec) -> SiteRows:
    notes: list[str] = []
    found = counters(span, site)
    if found:
        level = inside(found, span)
    else:
        seats, notes = seat_steps(span, site)
        level = occupied(seats, span)
        notes.append(
            f"{site.name}: 无入口计数器，高峰时段按占用座位计，无最忙星期 / no "
            f"entrance counter: peak hour from occupied seats, no busiest weekday"
            if seats
            else _nothing_to_count(site)
        )
    hours = span.buckets("hour")
    by_hour: dict[int, list[float]] = {}
    for bucket, area in zip(hours, integrate(level, _windows(hours)), strict=True):
        acc = by_hour.setdefault(bucket.period.hour, [0.0, 0.0])
        acc[0] += area
        acc[1] += bucket.seconds
    averages = {h: area / seconds for h, (area, seconds) in sorted(by_hour.items())}
    peak = max(averages, key=lambda h: (averages[h], -h), default=None)
    if peak is not None and averages[peak] <= 0:
        peak = None
    row: Row = {
        "peak_hour": f"{peak:02d}:00-{peak + 1:02d}:00" if peak is not None else None,
        "peak_people_avg": rounded(averages[peak], 2) if peak is not None else None,
        "busiest_weekday": None,
        "busiest_weekday_visitors": None,
    }
    if found:
        days = span.buckets("day")
        counts, site_notes = visitor_counts(found, days, site)
        notes += site_notes
        by_day: dict[int, list[float]] = {}
        for bucket, count in zip(days, counts, strict=True):
            by_day.setdefault(bucket.period.weekday(), []).append(count)
        means = {d: sum(c) / len(c) for d, c in sorted(by_day.items())}
        busiest = max(means, key=lambda d: (means[d], -d), default=None)
        if busiest is not None and means[busiest] > 0:
            row["busiest_weekday"] = WEEKDAYS[busiest]
            row["busiest_weekday_visitors"] = rounded(means[busiest], 1)
    return [row], notes


#: The local hour of day with the most people inside on average (time-weighted, over every day
#: of the range), and the weekday with the most visitors per day on average.
#:
#: Sites without an entrance counter use occupied seats for the peak hour (noted).
PEAKS = Figure(
    "peaks",
    "高峰时段与最忙星期",
    "Peak hours",
    columns=lambda _: (
        Column("peak_hour", "高峰时段", "Peak hour"),
        Column("peak_people_avg", "高峰平均在场", "People inside at peak, avg", "人", "float"),
        Column("busiest_weekday", "最忙星期", "Busiest weekday"),
        Column(
            "busiest_weekday_visitors",
            "该日平均访客",
            "Visitors that weekday, avg per day",
            "人次",
            "float",
        ),
    ),
    rows=_peak_rows,
)


# --- typical --------------------------------------------------------------------------------


def _weeks_before(
    start: datetime, end: datetime, ask: Ask, zone: tzinfo
) -> tuple[datetime, datetime]:
    """The ``ask.weeks`` local wall-clock weeks before ``end`` (``start`` is not used)."""
    if ask.weeks < 1:
        raise SelectionError(f"weeks must be at least 1, not {ask.weeks}")
    if end.tzinfo is None:
        raise SelectionError(f"end {end.isoformat()} has no time zone")
    return end.astimezone(zone) - timedelta(days=7 * ask.weeks), end


def _typical_notes(notes: tuple[str, ...], ask: Ask) -> tuple[str, ...]:
    return (
        f"占座率 % 取最近 {ask.weeks} 周每个整点小时的分位数 / occupied-seat share in "
        f"percent, percentiles over the full hours of the last {ask.weeks} weeks",
        *notes,
    )


def _typical_rows(span: Span, site: SiteSpec) -> SiteRows:
    seats, notes = seat_steps(span, site)
    found: list[SensorReadings] = []
    if seats:
        level = occupied(seats, span)
        scale = 100 / (3600 * len(seats))
    else:
        found = counters(span, site)
        level = inside(found, span)
        scale = 1 / 3600
        notes.append(
            f"{site.name}: 无座位，按平均在场人数计 / no seats: values are people "
            f"inside, not a seat share in percent"
            if found
            else _nothing_to_count(site)
        )
    full = [
        b for b in span.buckets("hour") if b.start == b.period.astimezone(UTC) and b.seconds == 3600
    ]
    sampled = full if seats or found else []  # nothing to sample: no values, not 0
    samples: dict[tuple[int, int], list[float]] = {}
    for bucket, area in zip(sampled, integrate(level, _windows(sampled)), strict=True):
        key = (bucket.period.weekday(), bucket.period.hour)
        samples.setdefault(key, []).append(area * scale)
    rows: list[Row] = []
    for weekday in range(7):
        for hour in range(24):
            got = samples.get((weekday, hour), [])
            row: Row = {"weekday": weekday, "hour": hour}
            for name, q in (("low", 25), ("typical", 50), ("high", 75)):
                row[name] = rounded(percentile(got, q), 2) if got else None
            rows.append(row)
    return rows, notes


#: Typical busyness per weekday (0 = Monday) and local hour, as map apps show it.
#:
#: Each full local hour of the last ``Ask.weeks`` weeks before the range's end gives one sample
#: (the range's start is not used): the time-weighted mean share of the site's seats occupied in
#: it, in percent — or, for a site without seats, the mean number of people inside.
#: ``low``/``typical``/``high`` are the 25th, 50th and 75th percentiles (linear interpolation)
#: of a weekday-hour's samples.
TYPICAL = Figure(
    "typical",
    "典型繁忙时段",
    "Typical busy times",
    columns=lambda _: (
        Column("weekday", "星期", "Weekday (0=Mon)", "", "int"),
        Column("hour", "小时", "Hour", "", "int"),
        Column("low", "偏低 P25", "Low (P25)", "", "float"),
        Column("typical", "通常 P50", "Typical (P50)", "", "float"),
        Column("high", "偏高 P75", "High (P75)", "", "float"),
    ),
    rows=_typical_rows,
    window=_weeks_before,
    head_notes=_typical_notes,
)
