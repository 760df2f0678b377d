"""The ``door_open_after_hours`` rule: a door open while its site is closed by the calendar.

"Closed" is the site's opening hours as :class:`~central.calendar_hours.SiteHours` reads them
on that date: a public holiday (春节...) closes a day-care centre, a 调休 make-up working day
opens it on a Saturday, a temporary closure (设备检修) closes any site — see
``docs/calendar.md``. The rule fires for a door that has been open for ``grace`` while the site
has been closed for ``grace`` (the last visitor leaving, staff locking up); a site without
opening hours is never closed. The text says why the day is special when it is
(``闭馆时间门 entrance 仍打开（春节假期）``).

Pure: it is given the hours, the doors and ``now``; :mod:`central.alerts.rules` turns what it
yields into conditions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from central.calendar_hours import SiteHours
from central.facts import Value

__all__ = ["doors_open_after_hours"]


@dataclass(frozen=True, slots=True)
class _Closed:
    """A site closed at a moment: for how long, and why that day is not an ordinary one."""

    length: timedelta
    note_zh: str | None
    note_en: str | None


def _closed(hours: SiteHours | None, now: datetime, zone: tzinfo) -> _Closed | None:
    if hours is None or not hours.known:
        return None
    local = now.astimezone(zone)
    length = hours.closed_for(local)
    if length is None:
        return None
    day = hours.day(local.date())
    return _Closed(length, day.note_zh, day.note_en)


@dataclass(frozen=True, slots=True)
class OpenDoor:
    """A door open after hours, and what the alert says about it."""

    gateway: str
    sensor: str
    value: Value
    summary_zh: str
    summary_en: str
    #: Minutes open.
    minutes: float


def doors_open_after_hours(
    hours: SiteHours | None,
    doors: Mapping[tuple[str, str], Value],
    now: datetime,
    zone: tzinfo,
    grace: timedelta,
) -> Iterator[OpenDoor]:
    """The doors (by gateway and sensor) open for ``grace`` at ``now`` while the site has been
    closed for ``grace``."""
    closed = _closed(hours, now, zone)
    if closed is None or closed.length < grace:
        return
    why_zh = f"（{closed.note_zh}）" if closed.note_zh else ""
    why_en = f" ({closed.note_en or closed.note_zh})" if closed.note_zh else ""
    for (gateway, sensor), value in doors.items():
        if not value.on or value.since > now - grace:
            continue
        held = now - value.since
        yield OpenDoor(
            gateway, sensor, value,
            f"闭馆时间门 {sensor} 仍打开{why_zh}",
            f"door {sensor} open outside opening hours{why_en}",
            round(held.total_seconds() / 60, 1),
        )  # fmt: skip
