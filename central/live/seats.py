"""What one seat shows on the live pages, and the seats whose view the time alone will change.

:func:`seat_shown` decides a seat's state (``free``, ``occupied``, ``unknown``, ``fault``; the
precedence is in :mod:`central.live.state`) and, for a known seat, its *use* from both of its
channels (:mod:`central.seat_state`): ``free``, ``occupied``, ``away`` (暂离) or ``held``
(占座, held while empty). Away and held seats are ``occupied`` seats: the occupancy counts and
ratios stay those of the occupancy channel, and the summary counts them apart as well.

An away seat turns held by the passing of time alone, at a moment known when it turned away:
:class:`HoldClock` keeps those moments so that a site's refresh deadline includes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from central.facts import SiteFacts
from central.live.views import SeatState, SeatView
from central.seat_state import SeatHold, SeatUse, seat_use

__all__ = ["COUNTED", "HoldClock", "Shown", "count", "seat_shown", "seat_view"]

Key = tuple[str, str]  # (gateway, sensor)
GatewayState = tuple[str, datetime | None]

#: What a seat shows: (state, reason, since, use, away_since, held_at). A plain tuple, not a
#: view: the garbage collector stops visiting tuples of plain values, and a city has tens of
#: thousands of seats.
Shown = tuple[
    SeatState, str | None, datetime | None, SeatUse | None, datetime | None, datetime | None
]

#: The keys of a site's seat counts (:class:`central.live.views.SeatCounts` but ``total``).
COUNTED = ("free", "occupied", "unknown", "fault", "away", "held")

_NO_GATEWAY: GatewayState = ("unknown", None)


def seat_shown(
    facts: SiteFacts,
    key: Key,
    gateways: dict[str, GatewayState],
    silent: dict[Key, datetime | None],
    now: datetime,
    hold: SeatHold,
    zone: tzinfo,
) -> Shown:
    """What the seat ``key`` shows at ``now``, given its gateways' states and silent boards."""
    gateway_state, gateway_since = gateways.get(key[0], _NO_GATEWAY)
    if gateway_state == "offline":
        return "unknown", "gateway_offline", gateway_since, None, None, None
    if gateway_state == "silent":
        return "unknown", "gateway_silent", gateway_since, None, None, None
    value = facts.seats.get(key)
    if value is None:
        return "unknown", "no_data", None, None, None, None
    silent_since = silent.get((key[0], value.device))
    if silent_since is not None:
        return "unknown", "device_silent", silent_since, None, None, None
    fault = facts.faults.get((key[0], "seat", key[1]))
    if fault is not None:
        return "fault", fault.code, fault.ts, None, None, None
    use = seat_use(value, facts.presence.get(key), now, hold, zone)
    state: SeatState = "occupied" if value.on else "free"
    return state, None, value.ts, use.use, use.away_since, use.held_at


def seat_view(
    key: Key,
    shown: Shown,
    label: str,
    row: int | None,
    col: int | None,
    x: float | None,
    y: float | None,
) -> SeatView:
    state, reason, since, use, away_since, held_at = shown
    return SeatView(
        id=key[1], label=label, row=row, col=col, x=x, y=y, state=state, since=since,
        reason=reason, use=use, away_since=away_since, held_at=held_at,
    )  # fmt: skip


def count(counts: dict[str, int], shown: Shown, delta: int) -> None:
    """Add (``delta`` 1) or take away (-1) one shown seat from a site's counts."""
    counts[shown[0]] += delta
    if shown[3] == "away" or shown[3] == "held":
        counts[shown[3]] += delta


@dataclass(slots=True)
class HoldClock:
    """The moments a site's away seats turn held, if nothing else changes them."""

    at: dict[Key, datetime] = field(default_factory=dict)

    def note(self, key: Key, shown: Shown) -> None:
        """The seat now shows ``shown``: remember when it turns held, or forget it."""
        if shown[3] == "away" and shown[5] is not None:
            self.at[key] = shown[5]
        else:
            self.at.pop(key, None)

    def due(self, now: datetime) -> list[Key]:
        """The seats that turned held by ``now`` (their views must be recomputed)."""
        return [key for key, at in self.at.items() if at <= now]

    def next_at(self, deadline: datetime | None) -> datetime | None:
        """The earlier of ``deadline`` and the next moment a seat turns held."""
        first = min(self.at.values(), default=None)
        if first is None or (deadline is not None and deadline <= first):
            return deadline
        return first
