"""What is known right now about every site, taken from MQTT messages (sans-IO).

The live service and the alert engine both keep this: the gateways' availability, the boards'
report intervals and supply, the newest value of every seat and door, counters, active faults,
and the gateways' periodic reports (serial links, outbox, host). Neither reads a clock here:
callers pass the time a message arrived.

Silence is measured on that receive clock, not on the gateways' timestamps, and a message the
broker replays as retained when a service subscribes does not count as hearing from its
gateway: after a restart every gateway gets the full timeout to speak again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from qihe.contract import (
    DeviceReading,
    DoorReading,
    FaultReading,
    GatewayStatus,
    HeartbeatReading,
    PeopleReading,
    Reading,
    SeatReading,
)

__all__ = [
    "DEFAULT_REPORT_INTERVAL",
    "FactStore",
    "Fault",
    "GatewayFacts",
    "SiteFacts",
    "Value",
]

#: Report interval assumed for a board that has not said HELLO since the service started.
DEFAULT_REPORT_INTERVAL = timedelta(seconds=60)

#: Reports the gateway makes itself: they show it alive but come from no board.
_GATEWAY_KINDS = frozenset({"link", "outbox", "system", "motion"})

Key = tuple[str, str]  # (gateway, sensor)


@dataclass(slots=True)
class GatewayFacts:
    status: str | None = None
    session: int = -1
    status_ts: datetime | None = None
    #: Receive time of the last live (not retained) message.
    heard: datetime | None = None
    #: Newest timestamp a message of this gateway carried.
    last_seen: datetime | None = None
    #: Periodic reports by (kind, sensor): the one before the newest, and the newest.
    reports: dict[tuple[str, str], tuple[Reading | None, Reading]] = field(default_factory=dict)

    def state(
        self, now: datetime, *, silent_after: timedelta, started_at: datetime
    ) -> tuple[str, datetime | None]:
        """``offline`` (its status says so), ``silent`` (nothing heard for ``silent_after``),
        ``online``, or ``unknown`` (only retained messages so far: still in its grace); and
        since when."""
        if self.status == "offline":
            return "offline", self.status_ts
        silent_at = (self.heard or started_at) + silent_after
        if now >= silent_at:
            return "silent", silent_at
        if self.status == "online" or self.heard is not None:
            return "online", self.status_ts
        return "unknown", None


@dataclass(slots=True)
class DeviceFacts:
    heard: datetime | None = None
    interval: timedelta | None = None
    firmware: str | None = None
    supply_mv: int | None = None
    last_heartbeat: datetime | None = None

    def silent_at(self, intervals: float, started_at: datetime) -> datetime:
        """When the board counts as silent if nothing more comes from it."""
        return (self.heard or started_at) + (self.interval or DEFAULT_REPORT_INTERVAL) * intervals


@dataclass(frozen=True, slots=True)
class Value:
    on: bool
    #: The newest reading's timestamp.
    ts: datetime
    device: str
    #: When the value last changed (a board repeating its state after a reboot is no change).
    since: datetime


@dataclass(frozen=True, slots=True)
class Fault:
    code: str
    ts: datetime
    device: str


@dataclass(slots=True)
class SiteFacts:
    gateways: dict[str, GatewayFacts] = field(default_factory=dict)
    devices: dict[Key, DeviceFacts] = field(default_factory=dict)
    seats: dict[Key, Value] = field(default_factory=dict)
    #: The presence channel of the seats that have one (``central/seat_state.py``).
    presence: dict[Key, Value] = field(default_factory=dict)
    doors: dict[Key, Value] = field(default_factory=dict)
    counters: dict[Key, tuple[int, int, datetime]] = field(default_factory=dict)
    #: Active faults by (gateway, target kind, target sensor).
    faults: dict[tuple[str, str, str], Fault] = field(default_factory=dict)


_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


def _entry(table: dict[_K, _V], key: _K, make: Callable[[], _V]) -> _V:
    """``table[key]``, made on first use: unlike ``setdefault(key, make())`` it builds
    nothing for a key that exists (every message looks up its site, gateway and board)."""
    value = table.get(key)
    if value is None:
        value = table[key] = make()
    return value


class FactStore:
    def __init__(self) -> None:
        self.sites: dict[str, SiteFacts] = {}

    def apply(
        self, message: GatewayStatus | Reading, received_at: datetime, *, retained: bool
    ) -> SiteFacts:
        """Take one validated message; ``retained`` when the broker replayed it on subscribe."""
        site = _entry(self.sites, message.site, SiteFacts)
        gateway = _entry(site.gateways, message.gateway, GatewayFacts)
        if not retained:
            gateway.heard = received_at
        if gateway.last_seen is None or message.ts > gateway.last_seen:
            gateway.last_seen = message.ts
        if isinstance(message, GatewayStatus):
            if message.session >= gateway.session:  # a late Will of an old session is stale
                gateway.status, gateway.session = message.state, message.session
                gateway.status_ts = message.ts
            return site
        if message.kind in _GATEWAY_KINDS:
            report = (message.kind, message.sensor)
            old = gateway.reports.get(report)
            if old is None or message.ts >= old[1].ts:
                gateway.reports[report] = (old[1] if old else None, message)
            return site
        device = _entry(site.devices, (message.gateway, message.device), DeviceFacts)
        if not retained:
            device.heard = received_at
        key = (message.gateway, message.sensor)
        match message:
            case SeatReading():
                _newest(site.seats, key, message.occupied, message.ts, message.device)
                if message.presence is not None:
                    _newest(site.presence, key, message.presence, message.ts, message.device)
                elif key in site.presence and message.ts >= site.presence[key].ts:
                    del site.presence[key]  # the seat has no presence channel (any more)
            case DoorReading():
                _newest(site.doors, key, message.open, message.ts, message.device)
            case PeopleReading():
                old_count = site.counters.get(key)
                if old_count is None or message.ts >= old_count[2]:
                    site.counters[key] = (message.in_total, message.out_total, message.ts)
            case HeartbeatReading():
                device.supply_mv = message.supply_mv
                device.last_heartbeat = message.ts
            case DeviceReading():
                device.firmware = message.firmware
                device.interval = timedelta(seconds=message.report_interval_s)
            case FaultReading():
                target = (
                    message.gateway,
                    message.target_kind or "seat",
                    message.target or message.sensor,
                )
                if message.active:
                    site.faults[target] = Fault(message.code, message.ts, message.device)
                else:
                    site.faults.pop(target, None)
        return site


def _newest(values: dict[Key, Value], key: Key, on: bool, ts: datetime, device: str) -> None:
    old = values.get(key)
    if old is None:
        values[key] = Value(on, ts, device, ts)
    elif ts >= old.ts:
        values[key] = Value(on, ts, device, old.since if old.on == on else ts)
