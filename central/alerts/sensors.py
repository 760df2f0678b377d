"""What the alert engine knows of bought sensors' readings: the newest CO₂ of every air sensor and
the newest battery level of every wireless sensor (sans-IO, like :mod:`central.facts`, which
keeps the boards' and gateways' facts). Callers pass the time a message arrived."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from qihe.contract import AirReading, BatteryReading, GatewayStatus, Reading

__all__ = ["SensorFacts"]

Key = tuple[str, str]  # (gateway, sensor)


@dataclass(frozen=True, slots=True)
class Level:
    """A sensor's newest value of one quantity."""

    value: float
    #: The reading's timestamp, and when it arrived (silence is judged on the receive clock).
    ts: datetime
    heard: datetime
    device: str


@dataclass(slots=True)
class _Site:
    co2: dict[Key, Level] = field(default_factory=dict)
    battery: dict[Key, Level] = field(default_factory=dict)


class SensorFacts:
    def __init__(self) -> None:
        self._sites: dict[str, _Site] = {}

    def apply(self, message: GatewayStatus | Reading, received_at: datetime) -> None:
        """Take one validated message; only air (with CO₂) and battery readings count."""
        match message:
            case AirReading(co2_ppm=float() | int() as co2):
                table = self._site(message.site).co2
                value = float(co2)
            case BatteryReading():
                table = self._site(message.site).battery
                value = float(message.percent)
            case _:
                return
        key = (message.gateway, message.sensor)
        old = table.get(key)
        if old is None or message.ts >= old.ts:
            table[key] = Level(value, message.ts, received_at, message.device)

    def co2(self, site: str) -> dict[Key, Level]:
        """The newest CO₂ (ppm) of each air sensor of ``site`` that measures it."""
        found = self._sites.get(site)
        return found.co2 if found is not None else {}

    def battery(self, site: str) -> dict[Key, Level]:
        """The newest battery level (percent) of each sensor of ``site`` that reports one."""
        found = self._sites.get(site)
        return found.battery if found is not None else {}

    def _site(self, site: str) -> _Site:
        found = self._sites.get(site)
        if found is None:
            found = self._sites[site] = _Site()
        return found
