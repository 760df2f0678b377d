"""One emulated gateway's MQTT side, as ``edge.publisher.MqttPublisher`` speaks it.

A paho-mqtt client with no thread and no loop of its own: ``bench.city.generator`` drives
every gateway of its process from one ``selectors`` loop, calling :meth:`EmulatedGateway.pump`
after paho's callbacks ran.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from bench.city.payload import now_us, seat_payload, utc
from bench.city.sites import GATEWAY, SiteLayout
from qihe.contract import (
    RETAINED_KINDS,
    DeviceReading,
    GatewayStatus,
    HeartbeatReading,
    LinkReading,
    OutboxReading,
    SystemReading,
    TopicTree,
    encode_payload,
)

__all__ = ["SESSION", "EmulatedGateway", "Totals"]

#: Every gateway's session number (a fresh broker holds no older session's Will).
SESSION = 1


@dataclass(slots=True)
class Totals:
    """One generator process's counters."""

    published: int = 0
    acked: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    connected: int = 0
    disconnects: int = 0


class EmulatedGateway:
    """One gateway's MQTT side, as ``edge.publisher.MqttPublisher`` speaks it.

    ``outbox`` stands for the gateway's durable outbox: readings wait there while
    ``window`` are in flight, and leave it when published (confirmed at PUBACK).
    """

    def __init__(self, site: SiteLayout, plan: dict[str, Any], totals: Totals) -> None:
        self.site = site
        self.totals = totals
        self.window: int = plan["inflight"]
        self.root = TopicTree(plan["prefix"]).gateway_root(site.id, GATEWAY)
        self.status_topic = f"{self.root}/status"
        self.outbox: deque[tuple[str, bytes, bool, str]] = deque()
        self.inflight = 0
        self.connected = False
        self.fresh = False  # connected, status not published yet
        self.fd = -1
        self.watching_write = False
        self.seq: dict[str, int] = {device: 0 for device, _ in site.devices}
        self.started = time.monotonic()
        self._kinds: dict[int, str] = {}
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"qihe-gw-{site.id}-{GATEWAY}",
            protocol=mqtt.MQTTv5,
        )
        client.will_set(self.status_topic, self._status("offline"), qos=1, retain=True)
        client.max_inflight_messages_set(self.window)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self.client = client

    def _status(self, state: str) -> bytes:
        return encode_payload(
            GatewayStatus(
                site=self.site.id,
                gateway=GATEWAY,
                state="online" if state == "online" else "offline",
                session=SESSION,
                ts=utc(now_us()),
            )
        )

    def _next_seq(self, device: str) -> int:
        seq = self.seq[device]
        self.seq[device] = (seq + 1) & 0xFFFF
        return seq

    # Readings ---------------------------------------------------------------------------

    def queue(self, kind: str, sensor: str, payload: bytes) -> None:
        self.outbox.append((f"{self.root}/{kind}/{sensor}", payload, kind in RETAINED_KINDS, kind))

    def seat(self, device: str, number: int, occupied: bool) -> None:
        sensor = f"{device}.{number}"
        payload = seat_payload(
            self.site.id, device, sensor, now_us(), self._next_seq(device), occupied
        )
        self.outbox.append((f"{self.root}/seat/{sensor}", payload, True, "seat"))

    def initial(self, occupied: list[list[bool]]) -> None:
        """After (re)connecting: each board's HELLO and first heartbeat, every seat's state."""
        for (device, count), states in zip(self.site.devices, occupied, strict=True):
            hello = DeviceReading(
                site=self.site.id,
                gateway=GATEWAY,
                device=device,
                sensor=device,
                ts=utc(now_us()),
                seq=self._next_seq(device),
                firmware="1.0.0",
                report_interval_s=60,
                sensors=tuple(f"seat.{n}" for n in range(1, count + 1)),
            )
            self.queue("device", device, encode_payload(hello))
            for number, state in enumerate(states, start=1):
                self.seat(device, number, state)
        self.report(heartbeats_only=True)

    def report(self, *, heartbeats_only: bool = False) -> None:
        """Each board's heartbeat; then (every link_report_interval) links, outbox, system."""
        base: dict[str, Any] = {"site": self.site.id, "gateway": GATEWAY}
        uptime = int(time.monotonic() - self.started) + 86_400
        for device, _ in self.site.devices:
            beat = HeartbeatReading(
                **base,
                device=device,
                sensor=device,
                ts=utc(now_us()),
                seq=self._next_seq(device),
                uptime_s=uptime,
                supply_mv=3710,
            )
            self.queue("heartbeat", device, encode_payload(beat))
        if heartbeats_only:
            return
        for device, _ in self.site.devices:
            link = LinkReading(
                **base,
                device=device,
                sensor=device,
                ts=utc(now_us()),
                frames=self.seq[device],
                crc_errors=0,
                malformed=0,
                lost=0,
                duplicates=0,
                reconnects=0,
            )
            self.queue("link", device, encode_payload(link))
        outbox = OutboxReading(
            **base,
            device="gateway",
            sensor=GATEWAY,
            ts=utc(now_us()),
            queued=len(self.outbox),
            dropped_periodic=0,
            dropped_state=0,
            dropped_clock=0,
        )
        self.queue("outbox", GATEWAY, encode_payload(outbox))
        system = SystemReading(
            **base,
            device="gateway",
            sensor=GATEWAY,
            ts=utc(now_us()),
            disk_free_bytes=21_474_836_480,
            disk_total_bytes=31_268_536_320,
            mem_available_bytes=3_221_225_472,
            mem_total_bytes=4_124_626_944,
            cpu_temp_c=48.3,
            load_1m=0.42,
        )
        self.queue("system", GATEWAY, encode_payload(system))

    # Publishing ---------------------------------------------------------------------------

    def _publish(self, topic: str, payload: bytes, retain: bool, kind: str) -> bool:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        self.inflight += 1
        self._kinds[info.mid] = kind
        self.totals.published += 1
        return True

    def pump(self) -> None:
        """Publish from the outbox while the window has room (outside paho's callbacks, so
        each publish is written at once)."""
        if not self.connected:
            return
        if self.fresh:
            self.fresh = False
            self._publish(self.status_topic, self._status("online"), True, "status")
            self.client.subscribe(self.status_topic, qos=1)
        outbox = self.outbox
        while outbox and self.inflight < self.window:
            message = outbox.popleft()
            if not self._publish(*message):
                outbox.appendleft(message)
                return

    # paho callbacks (inside loop_read) ---------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            print(f"{self.site.id}: broker refused: {reason_code}", file=sys.stderr)
            return
        self.connected = self.fresh = True
        self.totals.connected += 1

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self.connected:
            self.totals.connected -= 1
            self.totals.disconnects += 1
        self.connected = False

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.inflight -= 1
        self.totals.acked[self._kinds.pop(mid, "?")] += 1
        if reason_code.is_failure:
            self.totals.refused += 1

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # Our own status topic (the publisher watches it for a late Will of an older
        # session; a fresh broker has none).
        return
