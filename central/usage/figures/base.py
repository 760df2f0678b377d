"""The usage figures the city office reports: one function per figure, each returning a Table.

Every figure reads through a :class:`~central.usage.client.ReadingsSource` (InfluxDB selects
one site's readings in the range plus the reading carried in from before it) and computes in
Python with :mod:`central.usage.steps`, because each figure is a step function (a state holds
until the next reading), a counter across resets, or an interval. ``docs/statistics.md`` defines
each one, with the query text and the edge cases.

Conventions shared by all figures:

- ``start``/``end`` are aware datetimes, the range is ``[start, end)``; a range reaching past
  ``now`` stops at ``now`` (the last state holds until now, not into the future), and periods
  that have not begun are left out.
- Periods are local (the directory's zone, Asia/Shanghai by default): hours, days cut at local
  midnight, ISO weeks from Monday, months. ``period`` is the period's local start; the first and
  last period may be cut by the range.
- Seats are the directory's seats (``SiteSpec.all_seats()``); door and counter sensors are the
  ones that report at the site. A sensor without any reading counts as 0 (seat free).
- Figures never print; the command (:mod:`central.usage.cli`) and the charts render the Table.
"""

from __future__ import annotations

import statistics
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Literal

from central.sites import SiteDirectory, SiteSpec
from central.usage.client import ReadingsSource, SelectionError, SensorReadings
from central.usage.steps import (
    Bucket,
    Granularity,
    Interval,
    Segment,
    buckets,
    held,
    integrate,
    intersect,
    maxima,
    open_windows,
    percentile,
    runs,
    total,
)
from central.usage.table import Column, Table, Value
from central.visitors import increases

__all__ = [
    "FIGURES",
    "WEEKDAYS",
    "attendance",
    "doors",
    "occupancy",
    "peaks",
    "sites_in",
    "stays",
    "typical",
    "utilisation",
    "visitors",
]

WEEKDAYS = ("周一 Mon", "周二 Tue", "周三 Wed", "周四 Thu", "周五 Fri", "周六 Sat", "周日 Sun")

_SITE = Column("site", "站点编号", "Site ID")
_NAME = Column("site_name", "站点", "Site")
_PERIOD = Column("period", "时段", "Period", kind="time")


# --- choosing sites -------------------------------------------------------------------------


def sites_in(
    directory: SiteDirectory, ids: Sequence[str] = (), district: str | None = None
) -> list[SiteSpec]:
    """The sites asked for, in directory order: by id, by district (its Chinese or English
    name), both (a site must match both), or every site when neither is given."""
    known = [site.id for site in directory.sites]
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise SelectionError(f"unknown site {', '.join(unknown)} (known: {', '.join(known)})")
    chosen = [s for s in directory.sites if not ids or s.id in ids]
    if district is not None:
        wanted = district.strip().casefold()
        names = {d for s in directory.sites for d in (s.district, s.district_en) if d}
        if not any(d.casefold() == wanted for d in names):
            raise SelectionError(f"unknown district {district} (known: {', '.join(sorted(names))})")
        chosen = [
            s
            for s in chosen
            if wanted in {(d or "").casefold() for d in (s.district, s.district_en)}
        ]
        if not chosen:
            raise SelectionError(f"none of the sites {', '.join(ids)} is in district {district}")
    return chosen


# --- shared pieces --------------------------------------------------------------------------


def _span(start: datetime, end: datetime, now: datetime | None) -> tuple[datetime, datetime]:
    """The range in UTC, stopped at ``now``."""
    for name, moment in (("start", start), ("end", end)):
        if moment.tzinfo is None:
            raise SelectionError(f"{name} {moment.isoformat()} has no time zone")
    if end <= start:
        raise SelectionError(f"the range ends ({end.isoformat()}) before it starts")
    current = (now or datetime.now(UTC)).astimezone(UTC)
    return start.astimezone(UTC), min(end.astimezone(UTC), current)


def _future_note(start: datetime, stop: datetime) -> list[str]:
    return (
        ["范围尚未开始 / the range lies in the future: nothing to count"] if stop <= start else []
    )


def _steps(
    reading: SensorReadings | None,
    value: Callable[[dict[str, int]], float],
    start: datetime,
    stop: datetime,
) -> list[Segment]:
    if reading is None:
        return []
    carried = value(reading.carried[1]) if reading.carried is not None else None
    return held([(t, value(f)) for t, f in reading.points], carried, start, stop)


def _occupied(fields: dict[str, int]) -> float:
    return 1.0 if fields["occupied"] else 0.0


def _seats(
    client: ReadingsSource, site: SiteSpec, start: datetime, stop: datetime
) -> tuple[list[tuple[str, list[Segment], bool]], list[str]]:
    """Each directory seat's occupied step function (label, segments, has data), and notes."""
    readings = client.readings("seat", ("occupied",), site.id, start, stop) if stop > start else []
    by_key = {(r.gateway, r.sensor): r for r in readings}
    seats = site.all_seats()
    labels = [seat.label or seat.sensor for seat in seats]
    out: list[tuple[str, list[Segment], bool]] = []
    for seat, label in zip(seats, labels, strict=True):
        reading = by_key.pop((seat.gateway, seat.sensor), None)
        shown = label if labels.count(label) == 1 else f"{label} ({seat.sensor})"
        out.append((shown, _steps(reading, _occupied, start, stop), reading is not None))
    notes = []
    if by_key:
        stray = ", ".join(f"{g}/{s}" for g, s in sorted(by_key))
        notes.append(
            f"{site.name}: 目录中没有的座位传感器未计入 / seat sensors not in the "
            f"directory are left out: {stray}"
        )
    return out, notes


def _counters(
    client: ReadingsSource, site: SiteSpec, start: datetime, stop: datetime
) -> list[SensorReadings]:
    if stop <= start:
        return []
    return client.readings("people", ("in_total", "out_total"), site.id, start, stop)


def _rises(reading: SensorReadings) -> tuple[list[tuple[datetime, float]], int]:
    """Visitors each reading in the range reports (its rise over the one before, across resets,
    by :func:`central.visitors.increases`), and how many resets were seen. Without a reading
    before the range the first one is only the baseline: what it counted may be from any time."""
    totals = [f["in_total"] for _, f in reading.points]
    times = [t for t, _ in reading.points]
    if reading.carried is not None:
        totals.insert(0, reading.carried[1]["in_total"])
    else:
        times = times[1:]
    resets = sum(1 for a, b in pairwise(totals) if b < a)
    return [(t, float(n)) for t, n in zip(times, increases(totals), strict=True)], resets


def _per_bucket(events: Iterable[tuple[datetime, float]], bs: Sequence[Bucket]) -> list[float]:
    starts = [b.start for b in bs]
    out = [0.0] * len(bs)
    for moment, amount in events:
        i = bisect_right(starts, moment) - 1
        if 0 <= i < len(bs) and moment < bs[i].end:
            out[i] += amount
    return out


def _visitor_counts(
    counters: Sequence[SensorReadings], bs: Sequence[Bucket], site: SiteSpec
) -> tuple[list[float], list[str]]:
    events: list[tuple[datetime, float]] = []
    notes = []
    for counter in counters:
        rises, resets = _rises(counter)
        events += rises
        if resets:
            notes.append(
                f"{site.name}: 计数器 {counter.sensor} 重置 {resets} 次，已跨重置累计 / "
                f"counter {counter.sensor} reset {resets}×, counted across"
            )
    return _per_bucket(events, bs), notes


def _inside(counters: Sequence[SensorReadings], start: datetime, stop: datetime) -> list[Segment]:
    """People inside: the sum over the site's counters of (in_total - out_total), at least 0."""
    per_counter = [
        _steps(c, lambda f: float(f["in_total"] - f["out_total"]), start, stop) for c in counters
    ]
    return [Segment(s.start, s.end, max(0.0, s.value)) for s in total(per_counter, start, stop)]


def _windows(bs: Sequence[Bucket]) -> list[Interval]:
    return [(b.start, b.end) for b in bs]


def _no_counter(site: SiteSpec) -> str:
    return f"{site.name}: 无入口计数器数据 / no entrance counter data"


def _no_seats(site: SiteSpec) -> str:
    return f"{site.name}: 目录中没有座位 / no seats in the directory"


def _some(names: Sequence[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" … (+{len(names) - most})" if len(names) > most else "")


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# --- the figures ----------------------------------------------------------------------------


def visitors(
    client: ReadingsSource,
    directory: SiteDirectory,
    sites: Sequence[SiteSpec],
    start: datetime,
    end: datetime,
    granularity: Granularity = "day",
    *,
    now: datetime | None = None,
) -> Table:
    """Visitors per period: the rises of the entrance counters' ``in_total``, across resets,
    summed over a site's counters. A rise belongs to the period of the reading reporting it."""
    start_utc, stop = _span(start, end, now)
    bs = buckets(start_utc, stop, granularity, directory.zone)
    rows: list[dict[str, Value]] = []
    notes = _future_note(start_utc, stop)
    for site in sites:
        counters = _counters(client, site, start_utc, stop)
        counts, site_notes = _visitor_counts(counters, bs, site)
        notes += site_notes if counters else [_no_counter(site)]
        for bucket, count in zip(bs, counts, strict=True):
            rows.append(
                {
                    "site": site.id,
                    "site_name": site.name,
                    "period": bucket.period,
                    "visitors": int(count) if counters else None,
                }
            )
    columns = (_SITE, _NAME, _PERIOD, Column("visitors", "访客", "Visitors", "人次", "int"))
    return Table("visitors", "访客人次", "Visitors", columns, tuple(rows), tuple(notes))


def occupancy(
    client: ReadingsSource,
    directory: SiteDirectory,
    sites: Sequence[SiteSpec],
    start: datetime,
    end: datetime,
    granularity: Granularity = "hour",
    *,
    now: datetime | None = None,
) -> Table:
    """People inside and occupied seats per period: time-weighted averages and maxima of the
    step functions (each state holds until the next reading)."""
    start_utc, stop = _span(start, end, now)
    bs = buckets(start_utc, stop, granularity, directory.zone)
    windows = _windows(bs)
    rows: list[dict[str, Value]] = []
    notes = _future_note(start_utc, stop)
    for site in sites:
        counters = _counters(client, site, start_utc, stop)
        people = _inside(counters, start_utc, stop)
        seats, seat_notes = _seats(client, site, start_utc, stop)
        notes += seat_notes
        if not counters:
            notes.append(_no_counter(site))
        if not seats:
            notes.append(_no_seats(site))
        occupied = total([segments for _, segments, _ in seats], start_utc, stop)
        p_sum, p_max = integrate(people, windows), maxima(people, windows)
        s_sum, s_max = integrate(occupied, windows), maxima(occupied, windows)
        for i, bucket in enumerate(bs):
            rows.append(
                {
                    "site": site.id,
                    "site_name": site.name,
                    "period": bucket.period,
                    "people_avg": _r(p_sum[i] / bucket.seconds, 2) if counters else None,
                    "people_max": int(p_max[i] or 0) if counters else None,
                    "seats_occupied_avg": _r(s_sum[i] / bucket.seconds, 2) if seats else None,
                    "seats_occupied_max": int(s_max[i] or 0) if seats else None,
                }
            )
    columns = (
        _SITE,
        _NAME,
        _PERIOD,
        Column("people_avg", "平均在场人数", "People inside, avg", "人", "float"),
        Column("people_max", "最多在场人数", "People inside, max", "人", "int"),
        Column("seats_occupied_avg", "平均占用座位", "Seats occupied, avg", "座", "float"),
        Column("seats_occupied_max", "最多占用座位", "Seats occupied, max", "座", "int"),
    )
    return Table("occupancy", "在场人数与座位占用", "Occupancy", columns, tuple(rows), tuple(notes))


def utilisation(
    client: ReadingsSource,
    directory: SiteDirectory,
    sites: Sequence[SiteSpec],
    start: datetime,
    end: datetime,
    per: Literal["site", "seat"] = "site",
    *,
    by: Granularity | None = None,
    now: datetime | None = None,
) -> Table:
    """Seat utilisation = occupied seat-hours ÷ available seat-hours, both counted only while
    the site is open (``opening_hours``; all the time when the directory gives none).

    ``per="seat"`` gives one row per seat. ``by`` adds a ``period`` column and a row per period.
    """
    start_utc, stop = _span(start, end, now)
    zone = directory.zone
    periods = buckets(start_utc, stop, by, zone) if by else None
    whole = [Bucket(start_utc.astimezone(zone), start_utc, stop)] if stop > start_utc else []
    rows: list[dict[str, Value]] = []
    notes = _future_note(start_utc, stop)
    for site in sites:
        hours = site.hours()
        if not hours.known:
            notes.append(
                f"{site.name}: 未配置开放时间，全天计入 / no opening hours: all hours count"
            )
        opened = open_windows(hours, start_utc, stop, zone)
        seats, seat_notes = _seats(client, site, start_utc, stop)
        notes += seat_notes
        if not seats:
            notes.append(_no_seats(site))
        silent = [label for label, _, has_data in seats if not has_data]
        if silent:
            notes.append(
                f"{site.name}: {len(silent)} 个座位无数据，按可用未占用计 / {len(silent)} "
                f"seats without data count as available, never occupied: "
                f"{_some(silent)}"
            )
        for bucket in periods if periods is not None else whole:
            windows = intersect(opened, [(bucket.start, bucket.end)])
            open_h = sum((b - a).total_seconds() for a, b in windows) / 3600
            used = [sum(integrate(segments, windows)) / 3600 for _, segments, _ in seats]
            head: dict[str, Value] = {"site": site.id, "site_name": site.name}
            if periods is not None:
                head["period"] = bucket.period
            if per == "seat":
                for (label, _, _), hours_used in zip(seats, used, strict=True):
                    rows.append({**head, "seat": label, **_use(1, open_h, hours_used)})
            else:
                rows.append({**head, **_use(len(seats), open_h, sum(used))})
    columns = (
        _SITE,
        _NAME,
        *((_PERIOD,) if by else ()),
        *((Column("seat", "座位", "Seat"),) if per == "seat" else ()),
        Column("seats", "座位数", "Seats", "座", "int"),
        Column("open_hours", "开放时长", "Open hours", "h", "float"),
        Column(
            "occupied_seat_hours", "占用座位时", "Occupied seat-hours", "座位小时 seat-h", "float"
        ),
        Column(
            "available_seat_hours", "可用座位时", "Available seat-hours", "座位小时 seat-h", "float"
        ),
        Column("utilisation", "座位利用率", "Seat utilisation", "%", "percent"),
    )
    return Table(
        "utilisation", "座位利用率", "Seat utilisation", columns, tuple(rows), tuple(notes)
    )


def _use(seats: int, open_h: float, occupied_h: float) -> dict[str, Value]:
    available = seats * open_h
    return {
        "seats": seats,
        "open_hours": _r(open_h, 3),
        "occupied_seat_hours": _r(occupied_h, 3),
        "available_seat_hours": _r(available, 3),
        "utilisation": _r(100 * occupied_h / available, 2) if available > 0 else None,
    }


def peaks(
    client: ReadingsSource,
    directory: SiteDirectory,
    sites: Sequence[SiteSpec],
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
) -> Table:
    """The local hour of day with the most people inside on average (time-weighted, over every
    day of the range), and the weekday with the most visitors per day on average.

    Sites without an entrance counter use occupied seats for the peak hour (noted)."""
    start_utc, stop = _span(start, end, now)
    zone = directory.zone
    hours, days = buckets(start_utc, stop, "hour", zone), buckets(start_utc, stop, "day", zone)
    rows: list[dict[str, Value]] = []
    notes = _future_note(start_utc, stop)
    for site in sites:
        counters = _counters(client, site, start_utc, stop)
        if counters:
            level = _inside(counters, start_utc, stop)
        else:
            seats, seat_notes = _seats(client, site, start_utc, stop)
            notes += seat_notes
            level = total([segments for _, segments, _ in seats], start_utc, stop)
            notes.append(
                f"{site.name}: 无入口计数器，高峰时段按占用座位计，无最忙星期 / no "
                f"entrance counter: peak hour from occupied seats, no busiest weekday"
                if seats
                else f"{site.name}: 无入口计数器数据，目录中也没有座位 / no entrance counter "
                f"data and no seats in the directory"
            )
        by_hour: dict[int, list[float]] = {}
        for bucket, area in zip(hours, integrate(level, _windows(hours)), strict=True):
            acc = by_hour.setdefault(bucket.period.hour, [0.0, 0.0])
            acc[0] += area
            acc[1] += bucket.seconds
        averages = {h: area / seconds for h, (area, seconds) in sorted(by_hour.items())}
        peak = max(averages, key=lambda h: (averages[h], -h), default=None)
        if peak is not None and averages[peak] <= 0:
            peak = None
        row: dict[str, Value] = {
            "site": site.id,
            "site_name": site.name,
            "peak_hour": f"{peak:02d}:00-{peak + 1:02d}:00" if peak is not None else None,
            "peak_people_avg": _r(averages[peak], 2) if peak is not None else None,
            "busiest_weekday": None,
            "busiest_weekday_visitors": None,
        }
        if counters:
            counts, site_notes = _visitor_counts(counters, days, site)
            notes += site_notes
            by_day: dict[int, list[float]] = {}
            for bucket, count in zip(days, counts, strict=True):
                by_day.setdefault(bucket.period.weekday(), []).append(count)
            means = {d: sum(c) / len(c) for d, c in sorted(by_day.items())}
            busiest = max(means, key=lambda d: (means[d], -d), default=None)
            if busiest is not None and means[busiest] > 0:
                row["busiest_weekday"] = WEEKDAYS[busiest]
                row["busiest_weekday_visitors"] = _r(means[busiest], 1)
        rows.append(row)
    columns = (
        _SITE,
        _NAME,
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
    )
    return Table("peaks", "高峰时段与最忙星期", "Peak hours", columns, tuple(rows), tuple(notes))


def stays(
    client: ReadingsSource,
    directory: SiteDirectory,
    sites: Sequence[SiteSpec],
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
) -> Table:
    """Seat visits and their length: a visit is one occupied spell of one seat (repeated
    "occupied" readings do not split it). A spell cut by the range's edges counts only its part
    inside the range, so it is shorter than the real stay."""
    start_utc, stop = _span(start, end, now)
    rows: list[dict[str, Value]] = []
    notes = _future_note(start_utc, stop)
    notes.append(
        "范围边界截断的就座只计范围内部分 / a visit cut by the range's edges counts "
        "only its part inside the range"
    )
    for site in sites:
        seats, seat_notes = _seats(client, site, start_utc, stop)
        notes += seat_notes
        if not seats:
            notes.append(_no_seats(site))
        minutes = [
            (b - a).total_seconds() / 60 for _, segments, _ in seats for a, b in runs(segments)
        ]
        rows.append(
            {
                "site": site.id,
                "site_name": site.name,
                "visits": len(minutes) if seats else None,
                "avg_stay_min": _r(sum(minutes) / len(minutes), 1) if minutes else None,
                "median_stay_min": _r(statistics.median(minutes), 1) if minutes else None,
            }
        )
    columns = (
        _SITE,
        _NAME,
        Column("visits", "就座次数", "Seat visits", "次", "int"),
        Column("avg_stay_min", "平均就座时长", "Average stay", "min", "float"),
        Column("median_stay_min", "就座时长中位数", "Median stay", "min", "float"),
    )
    return Table("stays", "就座时长", "Stays", columns, tuple(rows), tuple(notes))


def doors(
    client: ReadingsSource,
    directory: SiteDirectory,
    sites: Sequence[SiteSpec],
    start: datetime,
    end: datetime,
    granularity: Granularity = "day",
    *,
    now: datetime | None = None,
) -> Table:
    """Door openings per period: readings ``open=1`` following ``open=0`` of the same door (the
    state carried into the range included), summed over the site's door contacts. A repeated
    "open" is not a new opening; a door already open when the range begins is not one either."""
    start_utc, stop = _span(start, end, now)
    bs = buckets(start_utc, stop, granularity, directory.zone)
    rows: list[dict[str, Value]] = []
    notes = _future_note(start_utc, stop)
    for site in sites:
        contacts = client.readings("door", ("open",), site.id, start_utc, stop) if bs else []
        events: list[tuple[datetime, float]] = []
        for door in contacts:
            before = door.carried[1]["open"] if door.carried is not None else None
            for moment, fields in door.points:
                if fields["open"] and before == 0:
                    events.append((moment, 1.0))
                before = 1 if fields["open"] else 0
        if not contacts:
            notes.append(f"{site.name}: 无门磁数据 / no door contact data")
        for bucket, count in zip(bs, _per_bucket(events, bs), strict=True):
            rows.append(
                {
                    "site": site.id,
                    "site_name": site.name,
                    "period": bucket.period,
                    "openings": int(count) if contacts else None,
                }
            )
    columns = (_SITE, _NAME, _PERIOD, Column("openings", "开门次数", "Door openings", "次", "int"))
    return Table("doors", "开门次数", "Door openings", columns, tuple(rows), tuple(notes))


def attendance(
    client: ReadingsSource,
    directory: SiteDirectory,
    sites: Sequence[SiteSpec],
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
) -> Table:
    """Daily attendance of day-care centres (``kind: day_care``): visitors per local day, from
    the entrance counters as :func:`visitors` counts them. Other sites are left out (noted)."""
    start_utc, stop = _span(start, end, now)
    days = buckets(start_utc, stop, "day", directory.zone)
    rows: list[dict[str, Value]] = []
    notes = _future_note(start_utc, stop)
    for site in sites:
        if site.kind != "day_care":
            notes.append(f"{site.name}: 不是日间照料中心，未列出 / not a day-care centre, left out")
            continue
        counters = _counters(client, site, start_utc, stop)
        counts, site_notes = _visitor_counts(counters, days, site)
        notes += site_notes if counters else [_no_counter(site)]
        for bucket, count in zip(days, counts, strict=True):
            rows.append(
                {
                    "site": site.id,
                    "site_name": site.name,
                    "date": bucket.period.date().isoformat(),
                    "attendance": int(count) if counters else None,
                }
            )
    columns = (
        _SITE,
        _NAME,
        Column("date", "日期", "Date"),
        Column("attendance", "到访人次", "Attendance", "人次", "int"),
    )
    return Table(
        "attendance",
        "日间照料中心每日到访",
        "Day-care attendance",
        columns,
        tuple(rows),
        tuple(notes),
    )


def typical(
    client: ReadingsSource,
    directory: SiteDirectory,
    sites: Sequence[SiteSpec],
    end: datetime,
    weeks: int = 4,
    *,
    now: datetime | None = None,
) -> Table:
    """Typical busyness per weekday (0 = Monday) and local hour, as map apps show it.

    Each full local hour of the last ``weeks`` weeks before ``end`` gives one sample: the
    time-weighted mean share of the site's seats occupied in it, in percent — or, for a site
    without seats, the mean number of people inside. ``low``/``typical``/``high`` are the 25th,
    50th and 75th percentiles (linear interpolation) of a weekday-hour's samples.
    """
    if weeks < 1:
        raise SelectionError(f"weeks must be at least 1, not {weeks}")
    zone = directory.zone
    if end.tzinfo is None:
        raise SelectionError(f"end {end.isoformat()} has no time zone")
    begin = end.astimezone(zone) - timedelta(days=7 * weeks)  # local wall-clock weeks
    start_utc, stop = _span(begin, end, now)
    full = [
        b
        for b in buckets(start_utc, stop, "hour", zone)
        if b.start == b.period.astimezone(UTC) and b.seconds == 3600
    ]
    rows: list[dict[str, Value]] = []
    notes = _future_note(start_utc, stop)
    for site in sites:
        seats, seat_notes = _seats(client, site, start_utc, stop)
        notes += seat_notes
        counters: list[SensorReadings] = []
        if seats:
            level = total([segments for _, segments, _ in seats], start_utc, stop)
            scale = 100 / (3600 * len(seats))
        else:
            counters = _counters(client, site, start_utc, stop)
            level = _inside(counters, start_utc, stop)
            scale = 1 / 3600
            notes.append(
                f"{site.name}: 无座位，按平均在场人数计 / no seats: values are people "
                f"inside, not a seat share in percent"
                if counters
                else f"{site.name}: 无入口计数器数据，目录中也没有座位 / no entrance counter "
                f"data and no seats in the directory"
            )
        sampled = full if seats or counters else []  # nothing to sample: no values, not 0
        samples: dict[tuple[int, int], list[float]] = {}
        for bucket, area in zip(sampled, integrate(level, _windows(sampled)), strict=True):
            key = (bucket.period.weekday(), bucket.period.hour)
            samples.setdefault(key, []).append(area * scale)
        for weekday in range(7):
            for hour in range(24):
                got = samples.get((weekday, hour), [])
                row: dict[str, Value] = {
                    "site": site.id,
                    "site_name": site.name,
                    "weekday": weekday,
                    "hour": hour,
                }
                for name, q in (("low", 25), ("typical", 50), ("high", 75)):
                    row[name] = _r(percentile(got, q), 2) if got else None
                rows.append(row)
    columns = (
        _SITE,
        _NAME,
        Column("weekday", "星期", "Weekday (0=Mon)", "", "int"),
        Column("hour", "小时", "Hour", "", "int"),
        Column("low", "偏低 P25", "Low (P25)", "", "float"),
        Column("typical", "通常 P50", "Typical (P50)", "", "float"),
        Column("high", "偏高 P75", "High (P75)", "", "float"),
    )
    notes.insert(
        0,
        f"占座率 % 取最近 {weeks} 周每个整点小时的分位数 / occupied-seat share in "
        f"percent, percentiles over the full hours of the last {weeks} weeks",
    )
    return Table(
        "typical", "典型繁忙时段", "Typical busy times", columns, tuple(rows), tuple(notes)
    )


#: Every figure by name, for the command and the report (one explicit registry).
FIGURES: dict[str, Callable[..., Table]] = {
    "visitors": visitors,
    "occupancy": occupancy,
    "utilisation": utilisation,
    "peaks": peaks,
    "stays": stays,
    "doors": doors,
    "attendance": attendance,
    "typical": typical,
}
