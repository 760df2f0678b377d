"""What the live service shows: the JSON documents of its API and its event stream.

These are the public shape of ``/api/v1/...`` (and of the OpenAPI document); the state
that produces them lives in :mod:`central.live.state`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from central.alerts.model import Alert
from central.seat_state import SeatUse

__all__ = [
    "AirView",
    "DeviceView",
    "DoorView",
    "GatewayView",
    "Layout",
    "PublicSite",
    "PublicSites",
    "SeatCounts",
    "SeatState",
    "SeatView",
    "SiteDetail",
    "SiteFacade",
    "SiteSummary",
    "Sites",
]

SeatState = Literal["free", "occupied", "unknown", "fault"]
GatewayState = Literal["online", "offline", "silent", "unknown"]
DoorState = Literal["open", "closed", "unknown"]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class SeatCounts(_View):
    total: int
    free: int
    occupied: int
    unknown: int
    fault: int
    #: Of the occupied seats, those away (暂离) and those held while empty (占座).
    away: int = 0
    held: int = 0


class GatewayView(_View):
    id: str
    #: ``silent``: no message for longer than the configured timeout while nominally online.
    state: GatewayState
    last_seen: datetime | None
    since: datetime | None


class SiteFacade(_View):
    """What both the operator and the public summary say about a site."""

    id: str
    name: str
    name_en: str | None
    kind: str
    district: str | None
    district_en: str | None
    address: str | None
    open_now: bool
    #: Today's opening hours in local time, ``"08:30-21:00"``; None when closed all day.
    hours_today: str | None
    #: Why today's hours are not the usual ones, Chinese then English (``"春节假期 Spring
    #: Festival holiday"``, a 调休 day, a closure's reason); None on an ordinary day.
    hours_note: str | None = None


class SiteSummary(SiteFacade):
    capacity: int | None
    seats: SeatCounts
    #: Occupied ÷ (free + occupied): seats whose state is unknown or faulty do not count.
    occupancy: float | None
    people_inside: int | None
    #: None when the site has no door sensor.
    door: DoorState | None
    online: bool
    last_seen: datetime | None
    gateways: tuple[GatewayView, ...]
    #: Maintenance alerts firing at the site (silenced or inhibited ones included).
    alerts: int = 0


class SeatView(_View):
    id: str
    label: str
    row: int | None
    col: int | None
    x: float | None
    y: float | None
    state: SeatState
    since: datetime | None
    #: Why a seat is unknown (``no_data``, ``gateway_offline``, ``gateway_silent``,
    #: ``device_silent``) or which fault it has (``stuck``, ...); None otherwise.
    reason: str | None
    #: A known seat's use (``docs/live.md``, "Seat states"): ``free``, ``occupied``, or for
    #: a seat with a presence channel ``away`` (暂离) and ``held`` (占座), both ``occupied``
    #: seats; None when the seat is unknown or faulty.
    use: SeatUse | None = None
    #: For ``away`` and ``held``: when the seat became away, and when it turns (turned) held.
    away_since: datetime | None = None
    held_at: datetime | None = None


class DoorView(_View):
    id: str
    label: str
    state: DoorState
    since: datetime | None


class DeviceView(_View):
    id: str
    gateway: str
    firmware: str | None
    supply_mv: int | None
    last_heartbeat: datetime | None
    state: Literal["ok", "silent", "unknown"]


class AirView(_View):
    """The newest air of one sensor (a room): each value as its newest reading gave it."""

    id: str
    gateway: str
    device: str
    temperature_c: float | None
    humidity_pct: float | None
    co2_ppm: float | None
    #: The newest air reading's timestamp.
    ts: datetime
    #: ``stale``: the values cannot be trusted now (``reason`` says why).
    state: Literal["ok", "stale"]
    #: ``gateway_offline``, ``gateway_silent``, ``offline`` (the device is unavailable),
    #: ``device_silent``, ``sensor_silent`` (no reading for ``air_stale_after``) or the code
    #: of a fault naming the sensor; None when ``ok``.
    reason: str | None


class Layout(_View):
    rows: int | None
    cols: int | None


class Sites(_View):
    version: int
    generated_at: datetime
    sites: tuple[SiteSummary, ...]


class SiteDetail(_View):
    version: int
    generated_at: datetime
    site: SiteSummary
    layout: Layout
    seats: tuple[SeatView, ...]
    doors: tuple[DoorView, ...]
    devices: tuple[DeviceView, ...]
    #: Firing maintenance alerts, newest first.
    alerts: tuple[Alert, ...] = ()
    #: The air of each room (air sensors), by gateway and sensor.
    air: tuple[AirView, ...] = ()


class PublicSite(SiteFacade):
    """What a resident may see: nothing about people, gateways or devices."""

    #: None when the site's seats cannot be known right now.
    free_seats: int | None
    total_seats: int
    #: Seats held while empty (占座: things on them, nobody there for long), "可能空闲 likely
    #: free"; not in ``free_seats``. None when the seats cannot be known right now.
    likely_free: int | None = None
    updated_at: datetime | None


class PublicSites(_View):
    generated_at: datetime
    sites: tuple[PublicSite, ...]
