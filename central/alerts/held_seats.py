"""The ``seat_held_empty`` rule: a seat held while empty (占座), a gentle notice to the staff.

A seat with a presence channel that is taken (books, a bag) while nobody has been there for
longer than its grace (``central/seat_state.py``: 30 minutes, 90 within the meal windows, per
site in the directory's ``seat_hold:``) is *held while empty*. The notice is information, not a
fault: severity ``info`` by default, one alert per hold, resolved when the seat is free or
someone is back. Seats without a presence channel never raise it.

Pure: it is given a site's facts, its seat settings and ``now``; :mod:`central.alerts.rules`
turns what it yields into conditions (and leaves out seats whose gateway is not online).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo

from central.facts import SiteFacts
from central.seat_state import SeatHold, seat_use

__all__ = ["held_seats"]


@dataclass(frozen=True, slots=True)
class HeldSeat:
    """A seat held while empty now, and what the notice says about it."""

    gateway: str
    sensor: str
    device: str
    away_since: datetime
    summary_zh: str
    summary_en: str
    #: Minutes nobody has been there.
    minutes: float


def held_seats(
    site: SiteFacts,
    labels: Mapping[tuple[str, str], str],
    hold: SeatHold,
    now: datetime,
    zone: tzinfo,
) -> Iterator[HeldSeat]:
    """The seats of ``site`` held while empty at ``now``; ``labels`` names seats for people
    (by gateway and sensor; a seat missing from it is named by its sensor id)."""
    for key, presence in site.presence.items():
        occupied = site.seats.get(key)
        if occupied is None or (key[0], "seat", key[1]) in site.faults:
            continue  # a faulty seat's channels cannot be trusted
        use = seat_use(occupied, presence, now, hold, zone)
        if use.use != "held" or use.away_since is None:
            continue
        name = labels.get(key, key[1])
        minutes = round((now - use.away_since).total_seconds() / 60)
        left = use.away_since.astimezone(zone).strftime("%H:%M")
        yield HeldSeat(
            key[0], key[1], occupied.device, use.away_since,
            f"温馨提示：座位 {name} 自 {left} 起有物品但无人（已 {minutes} 分钟），可能被占座",
            f"gentle notice: seat {name} has had things on it and nobody there since {left} "
            f"({minutes} min): held while empty?",
            float(minutes),
        )  # fmt: skip
