"""The Zigbee source against a real Mosquitto, fed Zigbee2MQTT's messages as its documentation
gives them.

- state: https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html
  (``{"temperature": 27.34, "humidity": 44.72}``, ``{"occupancy": true}``);
- exposes ``contact`` (true = closed), ``battery`` (%), ``voltage``, ``linkquality``:
  https://www.zigbee2mqtt.io/devices/MCCGQ11LM.html, .../RTCGQ11LM.html, .../WSDCGQ11LM.html;
- availability and ``bridge/state``, legacy ``online``/``offline`` or ``{"state":"online"}``:
  https://www.zigbee2mqtt.io/guide/configuration/device-availability.html
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack import MosquittoProcess
from edge.sources.zigbee import ZigbeeLinkError, ZigbeeSource
from edge.sources.zigbee_config import ZigbeeConfig
from qihe.contract import (
    AirReading,
    BatteryReading,
    DoorReading,
    FaultReading,
    MotionReading,
    Reading,
    SeatReading,
)
from tests.clocks import RunningClock
from tests.mqtt_helpers import wait_until

# The sensors of the sample site (config/gateway-zigbee.yaml), under their friendly names.
DOOR, SEAT, PIR, AIR = "dongxiang/front_door", "dongxiang/seat_01", "corner_pir", "dongxiang/air"


def zigbee_config(broker: MosquittoProcess, base: str) -> ZigbeeConfig:
    return ZigbeeConfig.model_validate(
        {
            "broker": {"host": broker.host, "port": broker.port, "keepalive": 5},
            "base_topic": base,
            "devices": [
                {"friendly_name": DOOR, "sensor": "front-door", "contact": True},
                {"friendly_name": SEAT, "sensor": "seat-01", "occupancy": "seat"},
                {"friendly_name": PIR, "sensor": "corner", "occupancy": "motion"},
                {"friendly_name": AIR, "sensor": "reading-room", "air": True},
            ],
            "ignore": ["router_plug"],
            "reconnect_min": 0.05,
            "reconnect_max": 0.2,
        }
    )


class Site:
    """Zigbee2MQTT's side: publishes on its base topic, as it would."""

    def __init__(self, client: mqtt.Client, base: str) -> None:
        self.client = client
        self.base = base

    def send(self, name: str, payload: str | bytes, *, retain: bool = False) -> None:
        info = self.client.publish(f"{self.base}/{name}", payload, qos=1, retain=retain)
        info.wait_for_publish(5)


@pytest.fixture
def site(publisher: mqtt.Client, topic_prefix: str) -> Site:
    return Site(publisher, f"{topic_prefix}/zigbee2mqtt")


@contextlib.asynccontextmanager
async def running(source: ZigbeeSource) -> AsyncIterator[ZigbeeSource]:
    task = asyncio.create_task(source.run(), name="zigbee-under-test")
    try:
        await asyncio.wait_for(source.connected.wait(), 10)
        yield source
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def make_source(broker: MosquittoProcess, base: str) -> tuple[ZigbeeSource, list[Reading]]:
    readings: list[Reading] = []
    source = ZigbeeSource(
        zigbee_config(broker, base),
        site="shancheng-dongxiang",
        gateway="gw1",
        emit=readings.append,
        clock=RunningClock(datetime(2026, 11, 28, 9, 0, tzinfo=UTC)),
    )
    return source, readings


R = TypeVar("R")


def of(readings: list[Reading], kind: type[R]) -> list[R]:
    return [r for r in readings if isinstance(r, kind)]


async def handled(source: ZigbeeSource, count: int) -> None:
    """Wait until ``count`` messages were used or refused in all."""
    await wait_until(lambda: source.messages + source.refused.total() >= count)


async def test_retained_state_and_availability_at_start_are_the_present_state(
    mosquitto: MosquittoProcess, site: Site
) -> None:
    site.send(DOOR, '{"battery":100,"contact":false,"temperature":24,"voltage":3055,'
              '"linkquality":115}', retain=True)  # fmt: skip
    site.send(f"{DOOR}/availability", '{"state":"online"}', retain=True)
    source, readings = make_source(mosquitto, site.base)
    async with running(source):
        await handled(source, 2)
    door = of(readings, DoorReading)
    assert [(d.sensor, d.open, d.device) for d in door] == [("front-door", True, "zigbee")]
    assert [(b.sensor, b.percent) for b in of(readings, BatteryReading)] == [("front-door", 100)]
    # The door sensor's own temperature is not the room's air.
    assert of(readings, AirReading) == []
    fault = of(readings, FaultReading)
    assert [(f.sensor, f.code, f.active, f.target_kind, f.target) for f in fault] == [
        ("zigbee.door.front-door", "offline", False, "door", "front-door")
    ]


async def test_contact_open_and_close_make_door_readings_only_when_they_change(
    mosquitto: MosquittoProcess, site: Site
) -> None:
    source, readings = make_source(mosquitto, site.base)
    async with running(source):
        for n, contact in enumerate(["true", "true", "false", "false", "true"], start=1):
            site.send(DOOR, f'{{"battery":97,"contact":{contact},"linkquality":80}}')
            await handled(source, n)
    assert [d.open for d in of(readings, DoorReading)] == [False, True, False]
    # Battery whenever reported: with each of the five messages.
    assert [b.percent for b in of(readings, BatteryReading)] == [97] * 5
    stamps = [r.ts for r in readings]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


async def test_occupancy_becomes_a_seat_or_a_motion_reading_as_configured(
    mosquitto: MosquittoProcess, site: Site
) -> None:
    source, readings = make_source(mosquitto, site.base)
    async with running(source):
        site.send(SEAT, '{\n  "occupancy": true\n}')
        site.send(PIR, '{\n  "occupancy": true\n}')
        site.send(SEAT, '{"occupancy": false, "battery": 80}')
        await handled(source, 3)
    seats = of(readings, SeatReading)
    assert [(s.sensor, s.occupied) for s in seats] == [("seat-01", True), ("seat-01", False)]
    assert [(m.sensor, m.motion) for m in of(readings, MotionReading)] == [("corner", True)]


async def test_temperature_and_humidity_become_an_air_reading_each_time(
    mosquitto: MosquittoProcess, site: Site
) -> None:
    source, readings = make_source(mosquitto, site.base)
    async with running(source):
        site.send(AIR, '{\n  "temperature": 27.34,\n  "humidity": 44.72\n}')
        site.send(AIR, '{\n  "temperature": 27.34,\n  "humidity": 44.72\n}')
        site.send(AIR, '{"battery":64,"humidity":51.2,"pressure":1003,"voltage":2985}')
        await handled(source, 3)
    air = [(a.sensor, a.temperature_c, a.humidity_pct) for a in of(readings, AirReading)]
    assert air == [
        ("reading-room", 27.34, 44.72),
        ("reading-room", 27.34, 44.72),
        ("reading-room", None, 51.2),
    ]
    assert [b.percent for b in of(readings, BatteryReading)] == [64]


@pytest.mark.parametrize(
    ("offline", "online"),
    [
        pytest.param('{"state":"offline"}', '{"state":"online"}', id="json"),
        pytest.param("offline", "online", id="legacy-string"),
    ],
)
async def test_a_device_going_offline_raises_a_fault_and_online_clears_it(
    mosquitto: MosquittoProcess, site: Site, offline: str, online: str
) -> None:
    source, readings = make_source(mosquitto, site.base)
    async with running(source):
        for n, payload in enumerate([online, offline, offline, online], start=1):
            site.send(f"{SEAT}/availability", payload, retain=True)
            await handled(source, n)
    faults = [(f.sensor, f.active, f.target_kind, f.target) for f in of(readings, FaultReading)]
    assert faults == [
        ("zigbee.seat.seat-01", False, "seat", "seat-01"),
        ("zigbee.seat.seat-01", True, "seat", "seat-01"),
        ("zigbee.seat.seat-01", False, "seat", "seat-01"),
    ]
    site.send(f"{SEAT}/availability", "", retain=True)  # leave no retained message behind


MALFORMED = [
    pytest.param(DOOR, "contact: closed", "state is not JSON", id="not-json"),
    pytest.param(DOOR, '["contact", true]', "state is not a JSON object", id="json-array"),
    pytest.param(DOOR, '{"contact":"false"}', "contact is not a boolean", id="wrong-type"),
    pytest.param(
        AIR, '{"temperature":22.5,"humidity":140}', "humidity out of range 0-100", id="humidity-140"
    ),
    pytest.param(AIR, '{"battery":"100.00"}', "battery is not a number", id="battery-string"),
    pytest.param("back_door", '{"contact":true}', "unknown device", id="unknown-name"),
    pytest.param(f"{SEAT}/availability", "gone", "availability is not JSON", id="availability"),
]


@pytest.mark.parametrize(("name", "payload", "reason"), MALFORMED)
async def test_a_malformed_message_is_refused_counted_and_said_once(
    mosquitto: MosquittoProcess,
    site: Site,
    caplog: pytest.LogCaptureFixture,
    name: str,
    payload: str,
    reason: str,
) -> None:
    source, readings = make_source(mosquitto, site.base)
    async with running(source):
        site.send(name, payload)
        site.send(name, payload)
        # The other devices' readings flow on.
        site.send(SEAT, '{"occupancy":true}')
        await handled(source, 3)
        assert source.refused == {reason: 2}
        assert source.link_reading().malformed == 2
        assert source.link_reading().frames == 1
    assert [s.occupied for s in of(readings, SeatReading)] == [True]
    assert len(readings) == 1
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(said) == 1, said
    assert f"{site.base}/{name}" in said[0] and reason in said[0]
    assert said[0].startswith("Zigbee2MQTT 消息被拒绝")


async def test_commands_bridge_topics_and_ignored_devices_are_skipped_quietly(
    mosquitto: MosquittoProcess, site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    source, readings = make_source(mosquitto, site.base)
    async with running(source):
        site.send(f"{DOOR}/set", '{"state":"ON"}')
        log_line = '{"level": "info", "message": "Zigbee: allowing new devices to join."}'
        site.send("bridge/logging", log_line)
        site.send("router_plug", '{"state":"ON","linkquality":200}')
        site.send(DOOR, b"", retain=True)  # a retained state cleared: no news
        site.send("bridge/state", '{"state":"online"}')
        await handled(source, 1)  # bridge/state is the only one used
    assert readings == []
    assert source.refused.total() == 0
    assert source.bridge_online is True
    assert [r for r in caplog.records if r.levelname == "WARNING"] == []


async def test_zigbee2mqtt_stopping_is_said_once_and_its_return_noted(
    mosquitto: MosquittoProcess, site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.sources.zigbee")
    source, _ = make_source(mosquitto, site.base)
    async with running(source):
        for n, payload in enumerate(["offline", '{"state":"offline"}', "online"], start=1):
            site.send("bridge/state", payload)
            await handled(source, n)
    assert source.bridge_online is True
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "Zigbee2MQTT is stopped" in warnings[0]
    assert any("Zigbee2MQTT is running again" in r.getMessage() for r in caplog.records)


async def test_the_source_reconnects_after_the_broker_restarts(tmp_path: Path) -> None:
    broker = MosquittoProcess(tmp_path / "broker").start()  # its own: this test stops it
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    source, readings = make_source(broker, "zigbee2mqtt")
    try:
        async with running(source):
            broker.stop(kill=True)
            await wait_until(lambda: not source.connected.is_set())
            broker.start()
            await asyncio.wait_for(source.connected.wait(), 15)
            assert source.reconnects == 1
            client.connect(broker.host, broker.port)
            client.loop_start()
            Site(client, "zigbee2mqtt").send(DOOR, '{"contact":false}')
            await handled(source, 1)
        assert [d.open for d in of(readings, DoorReading)] == [True]
        assert source.link_reading().reconnects == 1
    finally:
        client.loop_stop()
        client.disconnect()
        broker.stop()


async def test_an_unreadable_ca_file_stops_the_source_with_one_clear_error(
    tmp_path: Path,
) -> None:
    config = zigbee_config(MosquittoProcess(tmp_path), "zigbee2mqtt")
    broker = config.broker.model_copy(update={"tls": True, "ca_file": tmp_path / "no-ca.crt"})
    source = ZigbeeSource(
        config.model_copy(update={"broker": broker}),
        site="shancheng-dongxiang",
        gateway="gw1",
        emit=lambda _r: None,
    )
    with pytest.raises(
        ZigbeeLinkError, match=r"^Zigbee2MQTT broker 127\.0\.0\.1:\d+: .*no-ca\.crt"
    ):
        await source.run()
