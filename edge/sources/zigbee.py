"""Zigbee source: door, occupancy, temperature/humidity sensors paired to Zigbee2MQTT.

Zigbee2MQTT runs at the site with a Zigbee USB stick and publishes each device's state
as JSON on its own broker (``edge/sources/zigbee_messages.py`` reads those messages).
This source subscribes to the whole base topic and, for each configured device, turns
``contact`` into door readings (open = not contact: Zigbee2MQTT's ``true`` is closed),
``occupancy`` into seat or motion readings, ``temperature``/``humidity`` into air readings
and ``battery`` into battery readings. Availability ``offline`` raises an ``offline`` fault
on the device's main sensor; ``online`` clears it.

- A door, seat or motion reading is made when the value changes (the first value seen,
  retained state at start included, counts as a change); air and battery whenever the
  device reports them. Readings are stamped here (these sensors have no sequence numbers).
- A message that cannot be used (not JSON, not an object, a value of the wrong type or
  out of range, an unknown device) is refused: counted as ``malformed`` in the link
  reading, said once per device and reason, and nothing else is lost.
- A lost broker is reconnected with capped backoff, forever, and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import aiomqtt

from edge.errors import EdgeError
from edge.normalise import LinkCounters
from edge.sources.base import Emit
from edge.sources.zigbee_config import ZigbeeConfig, ZigbeeDeviceConfig, fault_sensor, primary_kind
from edge.sources.zigbee_messages import (
    DeviceState,
    ZigbeeMessageError,
    parse_availability,
    parse_state,
    route,
)
from edge.stamps import Stamper
from qihe.backoff import Backoff
from qihe.clock import Clock, utc_now
from qihe.contract import (
    AirReading,
    BatteryReading,
    DoorReading,
    FaultReading,
    LinkReading,
    MotionReading,
    SeatReading,
)
from qihe.mqtt import connect
from qihe.once import Once, OncePerKey

__all__ = ["ZigbeeLinkError", "ZigbeeSource"]

log = logging.getLogger(__name__)


class ZigbeeLinkError(EdgeError, ConnectionError):
    """The Zigbee2MQTT broker cannot be used as configured (its CA file cannot be read)."""


class _Device:
    """One configured device: its config and what was last said of it."""

    __slots__ = ("config", "online", "state")

    def __init__(self, config: ZigbeeDeviceConfig) -> None:
        self.config = config
        #: The door's open, the seat's occupied, the motion: as last emitted.
        self.state: bool | None = None
        #: Availability as last emitted (None: not heard yet).
        self.online: bool | None = None


class ZigbeeSource:
    """Readings from the Zigbee2MQTT instance of ``config`` go to ``emit`` until cancelled."""

    def __init__(
        self,
        config: ZigbeeConfig,
        *,
        site: str,
        gateway: str,
        emit: Emit,
        clock: Clock = utc_now,
    ) -> None:
        self.name = "zigbee"
        self.config = config
        self._site = site
        self._gateway = gateway
        self._emit = emit
        self._clock = clock
        # Strictly increasing: two reports within one microsecond stay two points.
        self._stamp = Stamper(clock)
        self._devices = {d.friendly_name: _Device(d) for d in config.devices}
        self._names = frozenset(self._devices)
        self._ignored = frozenset(config.ignore)
        self._base = f"{config.base_topic}/"
        self._backoff = Backoff(
            config.reconnect_min.total_seconds(), config.reconnect_max.total_seconds()
        )
        self.connected = asyncio.Event()
        #: Messages of our devices and of the bridge that were used.
        self.messages = 0
        #: Messages refused, by reason (their sum is the link reading's ``malformed``).
        self.refused: Counter[str] = Counter()
        #: Connections to the broker after the first.
        self.reconnects = 0
        #: Zigbee2MQTT's own state (``bridge/state``); None until it is heard.
        self.bridge_online: bool | None = None
        self._connects = 0
        # Once per device and reason: a chatty broken sensor must not flood an SD card's log.
        self._refusals_said = OncePerKey()
        self._bridge_down_said = Once()

    @property
    def counters(self) -> LinkCounters:
        return LinkCounters(
            frames=self.messages, malformed=self.refused.total(), reconnects=self.reconnects
        )

    def link_reading(self) -> LinkReading:
        """The Zigbee link's counters since the gateway started (``device`` and ``sensor``
        are the configured ``device``)."""
        return LinkReading(
            **self._identity(self.config.device),
            frames=self.messages,
            crc_errors=0,
            malformed=self.refused.total(),
            lost=0,
            duplicates=0,
            reconnects=self.reconnects,
        )

    def _identity(self, sensor: str) -> dict[str, Any]:
        return {
            "site": self._site,
            "gateway": self._gateway,
            "device": self.config.device,
            "sensor": sensor,
            "ts": self._stamp(),
        }

    # -- messages -------------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes) -> None:
        """One message from the broker: readings emitted, or the message refused."""
        if not topic.startswith(self._base):
            return
        where = route(topic[len(self._base) :], self._names, self._ignored)
        try:
            match where.what:
                case "state":
                    self._on_state(self._devices[where.name], payload)
                case "availability":
                    self._on_availability(self._devices[where.name], payload)
                case "bridge_state":
                    self._on_bridge_state(payload)
                case "unknown":
                    raise ZigbeeMessageError("unknown device", "not in zigbee.devices or ignore")
                case "skip":
                    pass
        except ZigbeeMessageError as exc:
            self._refuse(where.name or where.what, topic, exc)

    def _refuse(self, name: str, topic: str, exc: ZigbeeMessageError) -> None:
        self.refused[exc.reason] += 1
        if self._refusals_said.first(f"{exc.reason}\0{name}"):
            log.warning(
                "Zigbee2MQTT 消息被拒绝 %s（%s）/ refused a Zigbee2MQTT message on %s: %s "
                "(said once per device and reason; counted as malformed)",
                topic, exc, topic, exc,
            )  # fmt: skip

    def _on_state(self, device: _Device, payload: bytes) -> None:
        if not payload:
            return  # a retained state being cleared (the device was removed)
        config = device.config
        state = parse_state(
            payload,
            contact=config.contact,
            occupancy=config.occupancy is not None,
            air=config.air,
            battery=config.battery,
        )
        self.messages += 1
        self._state_reading(device, state)
        if state.temperature is not None or state.humidity is not None:
            self._emit(
                AirReading(
                    **self._identity(config.sensor),
                    temperature_c=state.temperature,
                    humidity_pct=state.humidity,
                )
            )
        if state.battery is not None:
            self._emit(BatteryReading(**self._identity(config.sensor), percent=state.battery))

    def _state_reading(self, device: _Device, state: DeviceState) -> None:
        """A door, seat or motion reading, when its value changed."""
        config = device.config
        if state.contact is not None:
            active = not state.contact  # Zigbee2MQTT's contact: true = closed
        elif state.occupancy is not None:
            active = state.occupancy
        else:
            return
        if active == device.state:
            return
        device.state = active
        identity = self._identity(config.sensor)
        if config.contact:
            self._emit(DoorReading(**identity, open=active))
        elif config.occupancy == "seat":
            self._emit(SeatReading(**identity, occupied=active))
        else:
            self._emit(MotionReading(**identity, motion=active))

    def _on_availability(self, device: _Device, payload: bytes) -> None:
        if not payload:
            return  # a retained availability being cleared
        online = parse_availability(payload)
        self.messages += 1
        if online == device.online:
            return
        config = device.config
        if not online:
            log.warning(
                "Zigbee 设备 %s（%s）离线 / Zigbee device %s (%s) is offline",
                config.friendly_name, config.sensor, config.friendly_name, config.sensor,
            )  # fmt: skip
        elif device.online is False:
            log.info(
                "Zigbee 设备 %s 恢复在线 / Zigbee device %s is back online",
                config.friendly_name, config.friendly_name,
            )  # fmt: skip
        device.online = online
        # The first availability heard is said too: it clears a fault left retained by an
        # earlier run of the gateway.
        self._emit(
            FaultReading(
                **self._identity(fault_sensor(self.config.device, config)),
                code="offline",
                active=not online,
                target_kind=primary_kind(config),
                target=config.sensor,
            )
        )

    def _on_bridge_state(self, payload: bytes) -> None:
        if not payload:
            return
        online = parse_availability(payload)
        self.messages += 1
        if not online:
            if self._bridge_down_said.first():
                log.warning(
                    "Zigbee2MQTT 已停止：其设备的状态和在线情况不再更新 / Zigbee2MQTT is "
                    "stopped (bridge/state offline): its devices report nothing until it is back"
                )
        elif self.bridge_online is False:
            self._bridge_down_said.reset()
            log.info("Zigbee2MQTT 已恢复运行 / Zigbee2MQTT is running again")
        self.bridge_online = online

    # -- the connection -------------------------------------------------------------------

    async def run(self) -> None:
        broker = self.config.broker
        where = f"{broker.host}:{broker.port}"
        while True:
            try:
                async with connect(
                    broker,
                    identifier=f"qihe-z2m-{self._site}-{self._gateway}",
                    max_queued_incoming=self.config.max_queued,
                ) as client:
                    # Retained availability (and state, where Zigbee2MQTT retains it) comes
                    # at once: the present state.
                    await client.subscribe(f"{self._base}#", qos=1)
                    if self._connects:
                        self.reconnects += 1
                    self._connects += 1
                    self._backoff.reset()
                    self.connected.set()
                    log.info(
                        "已连接 Zigbee2MQTT 代理 / connected to the Zigbee2MQTT broker %s (%s#)",
                        where, self._base,
                    )  # fmt: skip
                    async for message in client.messages:
                        payload = message.payload
                        self.on_message(
                            str(message.topic),
                            bytes(payload) if isinstance(payload, bytes | bytearray) else b"",
                        )
            except aiomqtt.MqttError as exc:
                delay = self._backoff.next_delay()
                if self.connected.is_set() or self._backoff.failures == 1:
                    log.warning(
                        "Zigbee2MQTT 代理 %s 不可用，%.1f 秒后重连 / the Zigbee2MQTT broker %s: "
                        "%s; reconnecting in %.1fs",
                        where, delay, where, exc, delay,
                    )  # fmt: skip
                self.connected.clear()
                await asyncio.sleep(delay)
            except OSError as exc:  # only reading the CA file raises it here
                raise ZigbeeLinkError(
                    f"Zigbee2MQTT broker {where}: cannot use ca_file {broker.ca_file}: {exc}"
                ) from exc
            finally:
                self.connected.clear()
