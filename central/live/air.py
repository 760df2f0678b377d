"""The air of every room on the live page: the newest temperature, humidity and CO₂ of each air
sensor of a site, and whether they can still be trusted (sans-IO, like :mod:`central.live.state`).

An air reading may carry only some of the three values (a Zigbee sensor measures no CO₂), so
each value is kept with its own timestamp and the newest of each is shown. What an air sensor
shows is ``stale`` (with a reason), in this order of precedence, when:

1. ``gateway_offline`` / ``gateway_silent`` — its gateway is offline or silent;
2. the fault's code — an active fault names the sensor as its target, of any kind: ``offline``
   when Zigbee2MQTT says the device is unavailable (the Zigbee source names the device's main
   reading, and its air and battery readings share that sensor id), ``no_response`` from a
   Modbus device that stopped answering;
3. ``device_silent`` — its device heartbeats (a board) and missed its heartbeats;
4. ``sensor_silent`` — no air reading of it arrived for ``air_stale_after`` (receive clock).

Otherwise it is ``ok``. Time alone changes a view only at 4.'s moment: :meth:`AirRoom.deadline`
gives it to the site's refresh deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from central.facts import SiteFacts
from central.live.views import AirView
from qihe.contract import AirReading

__all__ = ["AirRoom"]

#: The values an air reading may carry, in the order the page shows them.
_FIELDS = ("temperature_c", "humidity_pct", "co2_ppm")

Key = tuple[str, str]  # (gateway, sensor)
#: A gateway's state and since when, as the live state's context has it.
GatewayState = tuple[str, datetime | None]


@dataclass(slots=True)
class _Sensor:
    device: str
    #: The newest reading's timestamp, and when it was received.
    ts: datetime
    heard: datetime
    #: Each value with the timestamp of the reading that carried it.
    values: dict[str, tuple[float, datetime]] = field(default_factory=dict)


class AirRoom:
    """The air sensors of one site: what they measured, and what the page was last sent."""

    __slots__ = ("_sensors", "_shown")

    def __init__(self) -> None:
        self._sensors: dict[Key, _Sensor] = {}
        self._shown: dict[Key, AirView] = {}

    def take(self, reading: AirReading, received_at: datetime) -> None:
        """One validated air reading (air readings are never retained: each is live)."""
        key = (reading.gateway, reading.sensor)
        sensor = self._sensors.get(key)
        if sensor is None:
            sensor = self._sensors[key] = _Sensor(reading.device, reading.ts, received_at)
        elif reading.ts >= sensor.ts:
            sensor.device, sensor.ts = reading.device, reading.ts
        sensor.heard = max(sensor.heard, received_at)
        for name in _FIELDS:
            value = getattr(reading, name)
            old = sensor.values.get(name)
            if value is not None and (old is None or reading.ts >= old[1]):
                sensor.values[name] = (float(value), reading.ts)

    def deadline(self, now: datetime, stale_after: timedelta) -> datetime | None:
        """The earliest moment after ``now`` a sensor turns ``sensor_silent`` if nothing comes."""
        ahead = [
            s.heard + stale_after for s in self._sensors.values() if s.heard + stale_after > now
        ]
        return min(ahead, default=None)

    def changed(
        self,
        facts: SiteFacts,
        gateways: dict[str, GatewayState],
        silent: dict[tuple[str, str], datetime | None],
        now: datetime,
        stale_after: timedelta,
    ) -> list[AirView]:
        """The sensors whose view differs from the one last returned (then shown from now on).
        ``gateways`` and ``silent`` are the site's context: gateway states, and since when each
        (gateway, device) is silent (None while it is not)."""
        out = []
        for key in sorted(self._sensors):
            sensor = self._sensors[key]
            reason = _stale_reason(key, sensor, facts, gateways, silent, now, stale_after)
            values = sensor.values
            view = AirView(
                id=key[1],
                gateway=key[0],
                device=sensor.device,
                temperature_c=values["temperature_c"][0] if "temperature_c" in values else None,
                humidity_pct=values["humidity_pct"][0] if "humidity_pct" in values else None,
                co2_ppm=values["co2_ppm"][0] if "co2_ppm" in values else None,
                ts=sensor.ts,
                state="ok" if reason is None else "stale",
                reason=reason,
            )
            if self._shown.get(key) != view:
                self._shown[key] = view
                out.append(view)
        return out

    def views(self) -> tuple[AirView, ...]:
        """What the page was last sent, by (gateway, sensor)."""
        return tuple(self._shown[key] for key in sorted(self._shown))


def _stale_reason(
    key: Key,
    sensor: _Sensor,
    facts: SiteFacts,
    gateways: dict[str, GatewayState],
    silent: dict[tuple[str, str], datetime | None],
    now: datetime,
    stale_after: timedelta,
) -> str | None:
    gateway, name = key
    state = gateways.get(gateway, ("unknown", None))[0]
    if state in ("offline", "silent"):
        return f"gateway_{state}"
    own = facts.faults.get((gateway, "air", name))
    if own is not None:
        return own.code
    # By target, not by device: the Zigbee source gives all its readings one device (its
    # link), a Modbus port one per port.
    for (fault_gateway, _kind, target), fault in facts.faults.items():
        if fault_gateway == gateway and target == name:
            return fault.code
    device = facts.devices.get((gateway, sensor.device))
    heartbeats = device is not None and device.last_heartbeat is not None
    if heartbeats and silent.get((gateway, sensor.device)) is not None:
        return "device_silent"
    if now >= sensor.heard + stale_after:
        return "sensor_silent"
    return None
