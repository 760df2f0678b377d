"""What a seat is, from its two channels and the time: free, occupied, away (暂离), held (占座).

A seat's occupancy channel (pressure mat, contact) says whether it is taken — by a person, or
by the books and bag they left. A seat may also have a presence channel (an mmWave radar above
the desk) that says whether someone is there (``docs/protocol.md``, SEAT_PRESENCE). From both:

============  =========  ========  ================================================
occupied      presence   use       meaning
============  =========  ========  ================================================
no            any        free      presence alone does not take a seat
yes           yes        occupied  someone sits there
yes           no         away      things on the seat, nobody there (暂离)
yes           no         held      away for longer than the grace: held while empty (占座)
yes           (none)     occupied  a seat without a presence channel, as always
============  =========  ========  ================================================

**The grace** is the one in force when the seat became away, and it does not change while the
seat stays away: 30 minutes by default, 90 minutes for a seat left within a meal window
(11:00–13:00 and 17:00–18:30, local time). So a seat left at 12:40 is held at 14:10, one left
at 10:55 at 11:25: the moment a seat turns held is known the moment it turns away, and a page
can say so ("占座 from 14:10"). A site sets its own grace and windows in the site directory
(``seat_hold:``, ``central/sites.py``).

The away moment is the later of the two channels' last changes (the seat became taken, or its
last person left). Pure functions and small models: the live service and the alert engine both
use them, each with its own clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from central.facts import Value
from qihe.configtypes import StrictModel

__all__ = ["SeatHold", "SeatUse", "seat_use"]

#: What a seat is, for people: see the module's table.
SeatUse = Literal["free", "occupied", "away", "held"]

_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def _window(text: str) -> str:
    match = _WINDOW.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"meal window {text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if not (h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60) or (h1, m1) >= (h2, m2):
        raise ValueError(f"meal window {text!r} must run forward within one day (e.g. 11:00-13:00)")
    return text.strip()


def _bounds(text: str) -> tuple[time, time]:
    match = _WINDOW.fullmatch(text)
    assert match is not None  # checked by _window
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return time(h1, m1), time(h2, m2)


_Positive = Annotated[timedelta, Field(gt=timedelta(0), le=timedelta(hours=24))]


class SeatHold(StrictModel):
    """When an away seat counts as held while empty (占座), per site (``seat_hold:``).

    ``grace`` applies to a seat that became away outside the meal windows, ``meal_grace`` to
    one that became away within one (``"HH:MM-HH:MM"``, local time, start included, end not).
    """

    grace: _Positive = timedelta(minutes=30)
    meal_grace: _Positive = timedelta(minutes=90)
    meal_windows: tuple[Annotated[str, AfterValidator(_window)], ...] = (
        "11:00-13:00",
        "17:00-18:30",
    )

    def grace_at(self, local: datetime) -> timedelta:
        """The grace of a seat that became away at ``local`` (a local, aware time)."""
        moment = local.time()
        for window in self.meal_windows:
            start, end = _bounds(window)
            if start <= moment < end:
                return self.meal_grace
        return self.grace

    def held_at(self, away_since: datetime, zone: tzinfo) -> datetime:
        """When a seat away since ``away_since`` is held, if it stays away."""
        return away_since + self.grace_at(away_since.astimezone(zone))


@dataclass(frozen=True, slots=True)
class UseState:
    """A seat's use now, since when, and for an away seat when it turns held."""

    use: SeatUse
    since: datetime
    #: For ``away``: the moment it turns ``held``; for ``held``: when it did (the since).
    held_at: datetime | None = None
    #: For ``away`` and ``held``: when the seat became away.
    away_since: datetime | None = None


def seat_use(
    occupied: Value, presence: Value | None, now: datetime, hold: SeatHold, zone: tzinfo
) -> UseState:
    """The seat's use at ``now`` from its newest occupancy and presence values (``presence``
    ``None``: the seat has no presence channel)."""
    if not occupied.on:
        return UseState("free", occupied.since)
    if presence is None or presence.on:
        since = occupied.since if presence is None else max(occupied.since, presence.since)
        return UseState("occupied", since)
    away_since = max(occupied.since, presence.since)
    held_at = hold.held_at(away_since, zone)
    if now >= held_at:
        return UseState("held", held_at, held_at, away_since)
    return UseState("away", away_since, held_at, away_since)
