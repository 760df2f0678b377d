"""Zigbee2MQTT → the gateway's outbox → the central broker, on one real Mosquitto.

Zigbee2MQTT's messages go on ``{prefix}/zigbee2mqtt``, the gateway publishes under
``{prefix}/qihe``: two topic trees on one broker, as on a site whose Pi runs both.
Payloads as https://www.zigbee2mqtt.io/devices/MCCGQ11LM.html and
https://www.zigbee2mqtt.io/guide/configuration/device-availability.html give them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import paho.mqtt.client as mqtt

from devstack import MosquittoProcess
from edge.config import GatewayConfig
from edge.gateway import Gateway
from tests.mqtt_helpers import Received, Recorder, running, wait_until


def gateway_config(broker: MosquittoProcess, prefix: str, state_dir: Path) -> GatewayConfig:
    address = {"host": broker.host, "port": broker.port}
    return GatewayConfig.model_validate(
        {
            "site": "shancheng-dongxiang",
            "gateway": "gw1",
            "state_dir": state_dir,
            "broker": {**address, "topic_prefix": f"{prefix}/qihe"},
            "zigbee": {
                "broker": address,
                "base_topic": f"{prefix}/zigbee2mqtt",
                "devices": [
                    {"friendly_name": "front_door", "sensor": "front-door", "contact": True},
                    {"friendly_name": "air", "sensor": "reading-room", "air": True},
                ],
            },
            "link_report_interval": 0.2,
        }
    )


def on(messages: list[Received], suffix: str) -> list[Received]:
    return [m for m in messages if m.topic.endswith(suffix)]


def malformed(messages: list[Received]) -> int:
    """The newest Zigbee link reading's ``malformed`` count (-1: none yet)."""
    links = on(messages, "/link/zigbee")
    return int(json.loads(links[-1].payload)["malformed"]) if links else -1


async def test_zigbee_readings_reach_the_outbox_and_are_published(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path, publisher: mqtt.Client
) -> None:
    root = f"{topic_prefix}/qihe/v1/shancheng-dongxiang/gw1"
    z2m = f"{topic_prefix}/zigbee2mqtt"
    recorder = Recorder(mosquitto, f"{root}/#")
    gateway = Gateway(gateway_config(mosquitto, topic_prefix, tmp_path))
    try:
        async with running(gateway):
            source = gateway.zigbee_source
            assert source is not None
            await asyncio.wait_for(source.connected.wait(), 10)
            for topic, payload in [
                ("front_door", '{"battery":100,"contact":true,"voltage":3055,"linkquality":115}'),
                ("front_door", '{"battery":100,"contact":false,"voltage":3055,"linkquality":115}'),
                ("air", '{"temperature": 27.34, "humidity": 44.72}'),
                ("front_door/availability", '{"state":"offline"}'),
                ("air", '{"temperature": 27.34, "humidity": 140}'),  # refused
            ]:
                publisher.publish(f"{z2m}/{topic}", payload, qos=1).wait_for_publish(5)
            await wait_until(
                lambda: len(on(recorder.snapshot(), "/fault/zigbee.door.front-door")) == 1
            )
            await wait_until(lambda: malformed(recorder.snapshot()) == 1)
        messages = recorder.snapshot()
        doors = on(messages, "/door/front-door")
        assert [json.loads(m.payload)["open"] for m in doors] == [False, True]
        batteries = on(messages, "/battery/front-door")
        assert [json.loads(m.payload)["percent"] for m in batteries] == [100, 100]
        (air,) = on(messages, "/air/reading-room")
        assert json.loads(air.payload)["temperature_c"] == 27.34
        assert json.loads(air.payload)["humidity_pct"] == 44.72
        (fault,) = on(messages, "/fault/zigbee.door.front-door")
        body = json.loads(fault.payload)
        assert (body["code"], body["active"], body["target_kind"], body["target"]) == (
            "offline",
            True,
            "door",
            "front-door",
        )
        assert body["device"] == "zigbee" and "seq" not in body  # the gateway numbers nothing
    finally:
        recorder.close()
    # A late subscriber sees the door's present state (retained), no battery (periodic).
    late = Recorder(mosquitto, f"{root}/+/+")
    try:
        retained = await late.until(lambda ms: on(ms, "/door/front-door") != [])
        (door,) = on(retained, "/door/front-door")
        assert door.retain and json.loads(door.payload)["open"] is True
        assert on(retained, "/battery/front-door") == []
        assert on(retained, "/air/reading-room") == []
    finally:
        late.close()
