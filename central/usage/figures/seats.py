"""The figures of seat time: utilisation within opening hours, and stays (seat visits)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import timedelta

from central.calendar_hours import SiteHours
from central.sites import SiteSpec
from central.usage.figures.base import PERIOD, Ask, Figure, Row, SiteRows, Span, rounded
from central.usage.figures.readings import no_seats, seat_steps
from central.usage.steps import integrate, intersect, open_windows, runs
from central.usage.table import Column

__all__ = ["STAYS", "UTILISATION"]


# --- utilisation ----------------------------------------------------------------------------


def _some(names: Sequence[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" … (+{len(names) - most})" if len(names) > most else "")


def _use(seats: int, open_h: float, occupied_h: float) -> Row:
    available = seats * open_h
    return {
        "seats": seats,
        "open_hours": rounded(open_h, 3),
        "occupied_seat_hours": rounded(occupied_h, 3),
        "available_seat_hours": rounded(available, 3),
        "utilisation": rounded(100 * occupied_h / available, 2) if available > 0 else None,
    }


def _utilisation_rows(span: Span, site: SiteSpec) -> SiteRows:
    notes: list[str] = []
    hours = SiteHours(site, span.calendar)  # holidays, 调休 and closures included
    if not hours.known:
        notes.append(f"{site.name}: 未配置开放时间，全天计入 / no opening hours: all hours count")
    opened = open_windows(hours, span.start, span.stop, span.zone)
    notes += _calendar_notes(site, hours, span)
    seats, seat_notes = seat_steps(span, site)
    notes += seat_notes
    if not seats:
        notes.append(no_seats(site))
    silent = [seat.label for seat in seats if not seat.reported]
    if silent:
        notes.append(
            f"{site.name}: {len(silent)} 个座位无数据，按可用未占用计 / {len(silent)} "
            f"seats without data count as available, never occupied: "
            f"{_some(silent)}"
        )
    rows: list[Row] = []
    for bucket in span.periods():
        windows = intersect(opened, [(bucket.start, bucket.end)])
        open_h = sum((b - a).total_seconds() for a, b in windows) / 3600
        used = [sum(integrate(seat.segments, windows)) / 3600 for seat in seats]
        head: Row = {"period": bucket.period} if span.ask.by is not None else {}
        if span.ask.per == "seat":
            for seat, hours_used in zip(seats, used, strict=True):
                rows.append({**head, "seat": seat.label, **_use(1, open_h, hours_used)})
        else:
            rows.append({**head, **_use(len(seats), open_h, sum(used))})
    return rows, notes


def _calendar_notes(site: SiteSpec, hours: SiteHours, span: Span) -> list[str]:
    """What the holiday calendar changed in the range: holidays, 调休 days, closures."""
    if not hours.known or not span.begun:
        return []
    first = span.start.astimezone(span.zone).date()
    last = (span.stop - timedelta(microseconds=1)).astimezone(span.zone).date()
    days = [hours.day(first + timedelta(days=n)) for n in range((last - first).days + 1)]
    closed = sum(1 for d in days if d.closure)
    holidays = sum(1 for d in days if d.kind == "holiday" and not d.closure)
    makeup = sum(1 for d in days if d.kind == "makeup_workday" and d.note and not d.closure)
    if not (closed or holidays or makeup):
        return []
    return [
        f"{site.name}: 开放时间按节假日日历计：法定节假日 {holidays} 天、调休上班 {makeup} 天、"
        f"临时闭馆 {closed} 天 / opening hours follow the holiday calendar: {holidays} public "
        f"holiday days, {makeup} make-up working days, {closed} days closed temporarily"
    ]


def _utilisation_columns(ask: Ask) -> tuple[Column, ...]:
    seat_hours = "座位小时 seat-h"
    return (
        *((PERIOD,) if ask.by else ()),
        *((Column("seat", "座位", "Seat"),) if ask.per == "seat" else ()),
        Column("seats", "座位数", "Seats", "座", "int"),
        Column("open_hours", "开放时长", "Open hours", "h", "float"),
        Column("occupied_seat_hours", "占用座位时", "Occupied seat-hours", seat_hours, "float"),
        Column("available_seat_hours", "可用座位时", "Available seat-hours", seat_hours, "float"),
        Column("utilisation", "座位利用率", "Seat utilisation", "%", "percent"),
    )


#: Seat utilisation = occupied seat-hours ÷ available seat-hours, both counted only while the
#: site is open (``opening_hours`` on each date, with public holidays, 调休 make-up working
#: days and closures: ``docs/calendar.md``; all the time when the directory gives none).
#:
#: ``Ask(per="seat")`` gives one row per seat; ``Ask(by=...)`` adds a ``period`` column and a row
#: per period.
UTILISATION = Figure(
    "utilisation",
    "座位利用率",
    "Seat utilisation",
    columns=_utilisation_columns,
    rows=_utilisation_rows,
)


# --- stays ----------------------------------------------------------------------------------


def _stay_rows(span: Span, site: SiteSpec) -> SiteRows:
    seats, notes = seat_steps(span, site)
    if not seats:
        notes.append(no_seats(site))
    minutes = [(b - a).total_seconds() / 60 for seat in seats for a, b in runs(seat.segments)]
    row: Row = {
        "visits": len(minutes) if seats else None,
        "avg_stay_min": rounded(sum(minutes) / len(minutes), 1) if minutes else None,
        "median_stay_min": rounded(statistics.median(minutes), 1) if minutes else None,
    }
    return [row], notes


def _stay_notes(notes: tuple[str, ...], ask: Ask) -> tuple[str, ...]:
    return (
        *notes,
        "范围边界截断的就座只计范围内部分 / a visit cut by the range's edges counts "
        "only its part inside the range",
    )


#: Seat visits and their length: a visit is one occupied spell of one seat (repeated "occupied"
#: readings do not split it). A spell cut by the range's edges counts only its part inside the
#: range, so it is shorter than the real stay.
STAYS = Figure(
    "stays",
    "就座时长",
    "Stays",
    columns=lambda _: (
        Column("visits", "就座次数", "Seat visits", "次", "int"),
        Column("avg_stay_min", "平均就座时长", "Average stay", "min", "float"),
        Column("median_stay_min", "就座时长中位数", "Median stay", "min", "float"),
    ),
    rows=_stay_rows,
    head_notes=_stay_notes,
)
