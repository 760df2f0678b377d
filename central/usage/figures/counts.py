"""The figures that count events per period: visitors, door openings, day-care attendance."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from central.sites import SiteSpec
from central.usage.figures.base import PERIOD, Figure, Row, SiteRows, Span
from central.usage.figures.readings import counters, no_counter, per_bucket, visitor_counts
from central.usage.steps import Bucket
from central.usage.table import Column

__all__ = ["ATTENDANCE", "DOORS", "VISITORS"]


def _visitors_in(
    span: Span, site: SiteSpec, bs: Sequence[Bucket]
) -> tuple[list[int | None], list[str]]:
    """The site's visitors in each bucket; no values (not 0) without an entrance counter."""
    found = counters(span, site)
    counts, notes = visitor_counts(found, bs, site)
    if not found:
        return [None] * len(bs), [no_counter(site)]
    return [int(count) for count in counts], notes


def _visitor_rows(span: Span, site: SiteSpec) -> SiteRows:
    bs = span.periods()
    counts, notes = _visitors_in(span, site, bs)
    return [
        {"period": b.period, "visitors": count} for b, count in zip(bs, counts, strict=True)
    ], notes


#: Visitors per period: the rises of the entrance counters' ``in_total``, across resets, summed
#: over a site's counters. A rise belongs to the period of the reading reporting it.
VISITORS = Figure(
    "visitors",
    "访客人次",
    "Visitors",
    columns=lambda _: (PERIOD, Column("visitors", "访客", "Visitors", "人次", "int")),
    rows=_visitor_rows,
    by="day",
)


def _door_rows(span: Span, site: SiteSpec) -> SiteRows:
    bs = span.periods()
    contacts = (
        span.client.readings("door", ("open",), site.id, span.start, span.stop)
        if span.begun
        else []
    )
    events: list[tuple[datetime, float]] = []
    for door in contacts:
        before = door.carried[1]["open"] if door.carried is not None else None
        for moment, fields in door.points:
            if fields["open"] and before == 0:
                events.append((moment, 1.0))
            before = 1 if fields["open"] else 0
    rows: list[Row] = [
        {"period": b.period, "openings": int(count) if contacts else None}
        for b, count in zip(bs, per_bucket(events, bs), strict=True)
    ]
    return rows, [] if contacts else [f"{site.name}: 无门磁数据 / no door contact data"]


#: Door openings per period: readings ``open=1`` following ``open=0`` of the same door (the
#: state carried into the range included), summed over the site's door contacts. A repeated
#: "open" is not a new opening; a door already open when the range begins is not one either.
DOORS = Figure(
    "doors",
    "开门次数",
    "Door openings",
    columns=lambda _: (PERIOD, Column("openings", "开门次数", "Door openings", "次", "int")),
    rows=_door_rows,
    by="day",
)


def _attendance_rows(span: Span, site: SiteSpec) -> SiteRows:
    if site.kind != "day_care":
        return [], [f"{site.name}: 不是日间照料中心，未列出 / not a day-care centre, left out"]
    days = span.buckets("day")
    counts, notes = _visitors_in(span, site, days)
    return [
        {"date": day.period.date().isoformat(), "attendance": count}
        for day, count in zip(days, counts, strict=True)
    ], notes


#: Daily attendance of day-care centres (``kind: day_care``): visitors per local day, from the
#: entrance counters as :data:`VISITORS` counts them. Other sites are left out (noted).
ATTENDANCE = Figure(
    "attendance",
    "日间照料中心每日到访",
    "Day-care attendance",
    columns=lambda _: (
        Column("date", "日期", "Date"),
        Column("attendance", "到访人次", "Attendance", "人次", "int"),
    ),
    rows=_attendance_rows,
)
