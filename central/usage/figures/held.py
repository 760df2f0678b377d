"""The figure of seats left while taken: away time within stays (暂离) and time held while empty
(占座), for the seats that have a presence channel (``central/seat_state.py``).

A seat's readings that carry ``presence`` (only a seat with a presence channel writes it:
``docs/influxdb.md``) make two step functions: taken (``occupied``) and someone there
(``presence``). Taken and nobody there is *away*; an away spell turns *held* after the grace in
force when it began (30 minutes, 90 within the meal windows, per site: ``seat_hold:`` in the
directory), as the live page and the alerts say.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from central.sites import SiteSpec
from central.usage.client import SensorReadings
from central.usage.figures.base import PERIOD, Figure, Row, SiteRows, Span, rounded
from central.usage.steps import Interval, intersect
from central.usage.table import Column

__all__ = ["HELD"]

_FIELDS = ("occupied", "presence")
#: How far before the range the readings are read, so that an away spell going on when the range
#: begins has its grace counted from when it began (a stay does not last longer than this).
LEAD = timedelta(hours=12)


def _spells(
    reading: SensorReadings, lead: datetime, stop: datetime
) -> tuple[list[Interval], list[Interval]]:
    """The seat's taken spells and away spells from ``lead`` on, merged across repeated
    readings; the figure cuts them to the range. The reading carried in from before ``lead``
    counts from ``lead`` (InfluxDB does not give its time when several fields are asked)."""
    carried = [] if reading.carried is None else [(lead, reading.carried[1])]
    points = carried + list(reading.points)
    taken: list[Interval] = []
    away: list[Interval] = []
    for i, (moment, fields) in enumerate(points):
        until = points[i + 1][0] if i + 1 < len(points) else stop
        if until <= moment or not fields["occupied"]:
            continue
        for spells, on in ((taken, True), (away, not fields["presence"])):
            if not on:
                continue
            if spells and spells[-1][1] == moment:
                spells[-1] = (spells[-1][0], until)
            else:
                spells.append((moment, until))
    return taken, away


def _minutes(intervals: list[Interval], window: Interval) -> float:
    return sum((b - a).total_seconds() for a, b in intersect(intervals, [window])) / 60


def _held_rows(span: Span, site: SiteSpec) -> SiteRows:
    lead = span.start - LEAD
    readings = span.client.readings("seat", _FIELDS, site.id, lead, span.stop) if span.begun else []
    placed = {(seat.gateway, seat.sensor) for seat in site.all_seats()}
    # A seat without a presence channel has readings without ``presence``: none are kept.
    seats = [r for r in readings if (r.gateway, r.sensor) in placed and (r.points or r.carried)]
    notes: list[str] = []
    if not seats:
        notes.append(
            f"{site.name}: 没有带人体存在通道的座位数据 / no seat with a presence channel reported"
        )
    taken: list[Interval] = []
    away: list[Interval] = []
    held: list[Interval] = []
    holds: list[datetime] = []
    hold = site.seat_hold
    for reading in seats:
        seat_taken, seat_away = _spells(reading, lead, span.stop)
        taken += seat_taken
        away += seat_away
        for start, end in seat_away:
            held_at = hold.held_at(start, span.zone)
            if held_at < end:
                held.append((held_at, end))
                if held_at >= span.start:
                    holds.append(held_at)
    rows: list[Row] = []
    for bucket in span.periods():
        window = (bucket.start, bucket.end)
        occupied_min, away_min = _minutes(taken, window), _minutes(away, window)
        head: Row = {"period": bucket.period} if span.ask.by is not None else {}
        rows.append(
            {
                **head,
                "presence_seats": len(seats),
                "occupied_min": rounded(occupied_min, 1),
                "away_min": rounded(away_min, 1),
                "away_share": rounded(100 * away_min / occupied_min, 2) if occupied_min else None,
                "held_min": rounded(_minutes(held, window), 1),
                "holds": sum(1 for at in holds if bucket.start <= at < bucket.end),
            }
        )
    return rows, notes


def _held_columns(ask: object) -> tuple[Column, ...]:
    minutes = "分钟 min"
    return (
        PERIOD,
        Column("presence_seats", "带存在通道座位", "Seats with presence", "座", "int"),
        Column("occupied_min", "占用时长", "Occupied", minutes, "float"),
        Column("away_min", "暂离时长", "Away within stays", minutes, "float"),
        Column("away_share", "暂离占比", "Away share", "%", "percent"),
        Column("held_min", "占座时长", "Held while empty", minutes, "float"),
        Column("holds", "占座次数", "Holds", "次", "int"),
    )


def _held_notes(notes: tuple[str, ...], ask: object) -> tuple[str, ...]:
    return (
        *notes,
        "只计带人体存在通道（毫米波雷达）的座位；暂离 = 有物品无人，超过宽限（默认 30 分钟，"
        "用餐时段 90 分钟）为占座 / seats with a presence channel only: away = taken with "
        "nobody there; held while empty once away past the grace (30 min, 90 in meal windows)",
    )


#: Per site and period (a day unless asked): the seats with a presence channel, their occupied
#: minutes, the minutes of those they were away (taken, nobody there), that share, the minutes
#: held while empty (away past the grace) and the holds that began in the period.
HELD = Figure(
    "held",
    "暂离与占座",
    "Away and held seats",
    columns=_held_columns,
    rows=_held_rows,
    by="day",
    head_notes=_held_notes,
)
