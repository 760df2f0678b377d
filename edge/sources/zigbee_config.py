"""The ``zigbee`` section of a gateway config: a Zigbee2MQTT instance at the site, and which of
its devices become which readings (``docs/sensors.md``, "Zigbee").

Validated at start without touching the network, like every config section.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from qihe.configtypes import Ident, StrictModel, TopicPrefix
from qihe.contract import ID_PATTERN
from qihe.mqtt import BrokerConnection

__all__ = ["ZigbeeConfig", "ZigbeeDeviceConfig", "fault_sensor", "primary_kind"]

#: What a Zigbee2MQTT friendly name may be here: one or more topic levels (``/`` separates
#: them, as Zigbee2MQTT allows), never an MQTT wildcard, an empty level or a control character.
_FRIENDLY_NAME = re.compile(r"^[^/+#\x00-\x1f]+(/[^/+#\x00-\x1f]+)*$")
#: Last levels that are Zigbee2MQTT's own sub-topics of a device, never part of its name.
_RESERVED_LAST = ("availability", "set", "get")
_ID = re.compile(ID_PATTERN)

FriendlyName = Annotated[str, Field(min_length=1, max_length=200)]
ReadingKind = Literal["door", "seat", "motion", "air", "battery"]


class ZigbeeDeviceConfig(StrictModel):
    """One Zigbee device paired to Zigbee2MQTT, and the readings it gives.

    ``contact`` (Zigbee2MQTT's ``contact``: true = closed) → a door reading (open = not
    contact); ``occupancy`` → a seat or a motion reading; ``air`` (``temperature``,
    ``humidity``) → an air reading; ``battery`` (percent) → a battery reading. All of them
    are named ``sensor``.
    """

    friendly_name: FriendlyName = Field(
        description="the device's friendly_name in Zigbee2MQTT (its topic), or its IEEE address"
    )
    sensor: Ident = Field(description="the name its readings carry (door/front-door, ...)")
    contact: bool = False
    occupancy: Literal["seat", "motion"] | None = None
    air: bool = False
    battery: bool = True

    @model_validator(mode="after")
    def _valid(self) -> Self:
        name = self.friendly_name
        if not _FRIENDLY_NAME.fullmatch(name):
            raise ValueError(
                f"friendly_name {name!r} must be topic levels without '+', '#', empty levels "
                "or control characters"
            )
        levels = name.split("/")
        if levels[0] == "bridge":
            raise ValueError(f"friendly_name {name!r}: 'bridge' is Zigbee2MQTT's own topic")
        if len(levels) > 1 and levels[-1] in _RESERVED_LAST:
            raise ValueError(
                f"friendly_name {name!r} must not end in /{levels[-1]} (a Zigbee2MQTT sub-topic)"
            )
        if not (self.contact or self.occupancy or self.air or self.battery):
            raise ValueError(
                f"device {name!r} gives no reading: set contact, occupancy, air or battery"
            )
        if self.contact and self.occupancy:
            # Both are state readings named by ``sensor``; one device, one present state.
            raise ValueError(f"device {name!r}: contact and occupancy are two devices")
        return self


def primary_kind(device: ZigbeeDeviceConfig) -> ReadingKind:
    """The kind of reading an offline fault of ``device`` is about (its main reading)."""
    if device.contact:
        return "door"
    if device.occupancy is not None:
        return device.occupancy
    if device.air:
        return "air"
    return "battery"


def fault_sensor(link: str, device: ZigbeeDeviceConfig) -> str:
    """The id of ``device``'s offline fault: ``{link}.{kind}.{sensor}``, as serial boards name
    theirs ``{device}.{kind}.{index}``."""
    return f"{link}.{primary_kind(device)}.{device.sensor}"


class ZigbeeConfig(StrictModel):
    """The Zigbee2MQTT instance at the site: its broker, its base topic, its devices."""

    #: The broker Zigbee2MQTT publishes to (often a Mosquitto on the gateway itself).
    broker: BrokerConnection
    #: Zigbee2MQTT's ``mqtt.base_topic``.
    base_topic: TopicPrefix = "zigbee2mqtt"
    #: The ``device`` of every reading from Zigbee2MQTT, and the name of its link reading.
    device: Ident = "zigbee"
    devices: tuple[ZigbeeDeviceConfig, ...]
    #: Friendly names on the base topic that are not ours (a router plug, a group): their
    #: messages are skipped quietly instead of refused as an unknown device.
    ignore: tuple[FriendlyName, ...] = ()
    reconnect_min: timedelta = Field(default=timedelta(seconds=1), gt=timedelta(0))
    reconnect_max: timedelta = Field(default=timedelta(seconds=60), gt=timedelta(0))
    #: Messages received and not yet handled, at most (a burst of retained state at connect).
    max_queued: int = Field(default=1000, ge=10)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        if not self.devices:
            raise ValueError("no zigbee devices: list at least one under devices")
        names = [d.friendly_name for d in self.devices]
        if len(set(names)) != len(names):
            raise ValueError(f"zigbee friendly names must be unique, got {names}")
        sensors = [d.sensor for d in self.devices]
        if len(set(sensors)) != len(sensors):
            raise ValueError(f"zigbee sensors must be unique, got {sensors}")
        if both := sorted(set(names) & set(self.ignore)):
            raise ValueError(f"zigbee devices both configured and ignored: {both}")
        for device in self.devices:
            fault = fault_sensor(self.device, device)
            if not _ID.fullmatch(fault):
                raise ValueError(
                    f"sensor {device.sensor!r} is too long: its fault id {fault!r} must match "
                    f"{ID_PATTERN} (at most 64 characters)"
                )
        if self.reconnect_min > self.reconnect_max:
            raise ValueError("reconnect_min is longer than reconnect_max")
        return self
