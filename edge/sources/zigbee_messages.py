"""Zigbee2MQTT's messages, read without I/O: which topic is what, and what a payload says.

Zigbee2MQTT publishes under its base topic (``zigbee2mqtt`` by default;
https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html)::

    {base}/{friendly_name}                a device's state: a JSON object of its exposes
    {base}/{friendly_name}/availability   "online"/"offline", or {"state":"online"} (retained)
    {base}/{friendly_name}/set|get        commands to the device (others' business)
    {base}/bridge/state                   Zigbee2MQTT itself: the same two forms (retained)
    {base}/bridge/...                     devices, info, logging, responses (not ours)

The availability payload is the plain string in Zigbee2MQTT's legacy mode and a JSON
object otherwise (``advanced.legacy_availability_payload``;
https://www.zigbee2mqtt.io/guide/configuration/device-availability.html). An empty payload
is a retained message being cleared (a device removed), not news.

The exposes read here (each device page, "Exposes"): ``contact`` (binary: true = closed),
``occupancy`` (binary), ``temperature`` (numeric, °C), ``humidity`` (numeric, %),
``battery`` (numeric, %, 0-100). A key that is absent or ``null`` was not reported.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Literal

from edge.errors import EdgeError

__all__ = [
    "MAX_STATE_BYTES",
    "DeviceState",
    "Route",
    "ZigbeeMessageError",
    "parse_availability",
    "parse_state",
    "route",
]

#: A device's state is a few hundred bytes; a larger one is refused unread.
MAX_STATE_BYTES = 16 * 1024


class ZigbeeMessageError(EdgeError, ValueError):
    """A Zigbee2MQTT message that cannot be used; ``reason`` is a short, fixed text (for
    counting and saying once), ``detail`` what exactly was wrong."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Route:
    """Where a topic under the base topic goes."""

    what: Literal["state", "availability", "bridge_state", "skip", "unknown"]
    #: The friendly name (state, availability, unknown), else empty.
    name: str = ""


def route(rest: str, devices: frozenset[str], ignored: frozenset[str]) -> Route:
    """The route of a topic, given without its ``{base}/``: our device's state or availability,
    the bridge's state, something to skip (commands, the bridge's other topics, ignored
    devices), or an unknown device."""
    if rest == "bridge/state":
        return Route("bridge_state")
    if rest.startswith("bridge/"):
        return Route("skip")
    if rest in devices:
        return Route("state", rest)
    head, _, last = rest.rpartition("/")
    if last == "availability" and head in devices:
        return Route("availability", head)
    if last in ("set", "get") or "/set/" in rest or "/get/" in rest:
        return Route("skip")  # a command to a device, for Zigbee2MQTT
    name = head if last == "availability" else rest
    if name in ignored:
        return Route("skip")
    return Route("unknown", name)


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What one state message reported, of the exposes we read (``None``: not reported)."""

    contact: bool | None = None
    occupancy: bool | None = None
    temperature: float | None = None
    humidity: float | None = None
    battery: int | None = None


def _json_type(value: object) -> str:
    match value:
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "an array"
        case dict():
            return "an object"
    return "null"


def _got(value: object) -> str:
    """``got a string '100.00'``: the type and (cut short) the value, for the log."""
    if value is None:
        return "got null"
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"got {_json_type(value)} {shown}"


def _object(payload: bytes, what: str) -> dict[str, object]:
    try:
        data = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise ZigbeeMessageError(f"{what} is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ZigbeeMessageError(f"{what} is not JSON", exc.msg) from None
    if not isinstance(data, dict):
        raise ZigbeeMessageError(f"{what} is not a JSON object", _got(data))
    return data


def _flag(data: dict[str, object], key: str) -> bool | None:
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise ZigbeeMessageError(f"{key} is not a boolean", _got(value))


def _number(
    data: dict[str, object], key: str, low: float | None = None, high: float | None = None
) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ZigbeeMessageError(f"{key} is not a number", _got(value))
    number = float(value)
    # Python's json takes NaN and Infinity, which no sensor measures.
    if not math.isfinite(number):
        raise ZigbeeMessageError(f"{key} is not finite", repr(value))
    if (low is not None and number < low) or (high is not None and number > high):
        raise ZigbeeMessageError(f"{key} out of range {low:g}-{high:g}", _got(value))
    return number


def parse_state(
    payload: bytes, *, contact: bool, occupancy: bool, air: bool, battery: bool
) -> DeviceState:
    """A device's state message, reading only the exposes asked for (a door sensor's own
    ``temperature`` is not the room's); raise :class:`ZigbeeMessageError` if unusable."""
    if len(payload) > MAX_STATE_BYTES:
        raise ZigbeeMessageError("state too large", f"{len(payload)} bytes")
    data = _object(payload, "state")
    level = _number(data, "battery", 0, 100) if battery else None
    return DeviceState(
        contact=_flag(data, "contact") if contact else None,
        occupancy=_flag(data, "occupancy") if occupancy else None,
        temperature=_number(data, "temperature") if air else None,
        humidity=_number(data, "humidity", 0, 100) if air else None,
        # Some devices report halves (a Zigbee battery attribute counts half percents).
        battery=None if level is None else round(level),
    )


_STATES = {"online": True, "offline": False}


def parse_availability(payload: bytes) -> bool:
    """True for online, False for offline, in either form; raise :class:`ZigbeeMessageError`."""
    text = payload.strip()
    if text in (b"online", b"offline"):  # legacy_availability_payload: true
        return text == b"online"
    data = _object(payload, "availability")
    state = data.get("state")
    if not isinstance(state, str) or state not in _STATES:
        raise ZigbeeMessageError("availability state is not online or offline", _got(state))
    return _STATES[state]
