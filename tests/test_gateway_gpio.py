"""GPIO inputs (gpiozero MockFactory) → gateway → a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from devstack import MosquittoProcess
from edge.config import GatewayConfig
from edge.gateway import Gateway
from tests.mqtt_helpers import Received, Recorder, running, wait_until


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.reset()


def gpio_config(broker: MosquittoProcess, prefix: str, state_dir: Path) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "site": "shancheng-dongxiang",
            "gateway": "gw1",
            "state_dir": state_dir,
            "broker": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
            "gpio": [
                {
                    "pin": 17,
                    "kind": "door",
                    "sensor": "front-door",
                    "pull_up": True,
                    "active_high": False,
                    "debounce": 0.02,
                },
                {
                    "pin": 27,
                    "kind": "seat",
                    "sensor": "seat-1",
                    "active_high": True,
                    "debounce": 0.02,
                },
            ],
        }
    )


def payloads(messages: list[Received], suffix: str) -> list[dict[str, object]]:
    return [json.loads(m.payload) for m in messages if m.topic.endswith(suffix)]


async def test_door_contact_change_is_published_retained(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path, mock_factory: MockFactory
) -> None:
    recorder = Recorder(mosquitto, f"{topic_prefix}/#")
    gateway = Gateway(gpio_config(mosquitto, topic_prefix, tmp_path), pin_factory=mock_factory)
    try:
        async with running(gateway):
            await wait_until(lambda: len(payloads(recorder.snapshot(), "/door/front-door")) == 1)
            # Pull-up contact: the pin idles high, which is "closed" for an active-low door.
            assert payloads(recorder.snapshot(), "/door/front-door")[0]["open"] is False
            mock_factory.pin(17).drive_low()
            await wait_until(lambda: len(payloads(recorder.snapshot(), "/door/front-door")) == 2)
            door = payloads(recorder.snapshot(), "/door/front-door")[1]
            assert door["open"] is True
            assert door["device"] == "gpio"
            assert door["site"] == "shancheng-dongxiang"
            assert all(
                m.topic.startswith(f"{topic_prefix}/v1/shancheng-dongxiang/gw1/")
                for m in recorder.snapshot()
            )
    finally:
        recorder.close()
    # A late subscriber sees the present state (retained).
    late = Recorder(mosquitto, f"{topic_prefix}/v1/+/+/door/+")
    try:
        retained = await late.until(lambda ms: len(ms) >= 1)
        assert retained[0].retain
        assert json.loads(retained[0].payload)["open"] is True
    finally:
        late.close()


async def test_contact_bounce_shorter_than_debounce_is_ignored(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path, mock_factory: MockFactory
) -> None:
    recorder = Recorder(mosquitto, f"{topic_prefix}/#")
    gateway = Gateway(gpio_config(mosquitto, topic_prefix, tmp_path), pin_factory=mock_factory)
    try:
        async with running(gateway):
            await wait_until(lambda: len(payloads(recorder.snapshot(), "/seat/seat-1")) == 1)
            pin = mock_factory.pin(27)
            for _ in range(5):  # chatter, ending where it started
                pin.drive_high()
                pin.drive_low()
            pin.drive_high()  # then a real change that holds
            await wait_until(lambda: len(payloads(recorder.snapshot(), "/seat/seat-1")) == 2)
            await asyncio.sleep(0.2)
            seats = payloads(recorder.snapshot(), "/seat/seat-1")
            assert [s["occupied"] for s in seats] == [False, True]
    finally:
        recorder.close()


async def test_status_is_online_while_running_and_offline_after_clean_stop(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path, mock_factory: MockFactory
) -> None:
    status_topic = f"{topic_prefix}/v1/shancheng-dongxiang/gw1/status"
    recorder = Recorder(mosquitto, status_topic)
    gateway = Gateway(gpio_config(mosquitto, topic_prefix, tmp_path), pin_factory=mock_factory)
    async with running(gateway):
        await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
    states = await recorder.until(lambda ms: len(ms) >= 2)
    recorder.close()
    first, last = json.loads(states[0].payload), json.loads(states[-1].payload)
    assert (first["state"], last["state"]) == ("online", "offline")
    assert first["session"] == last["session"] >= 1


async def test_late_last_will_of_an_old_session_never_marks_a_live_gateway_offline(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path, mock_factory: MockFactory
) -> None:
    import paho.mqtt.client as mqtt

    status_topic = f"{topic_prefix}/v1/shancheng-dongxiang/gw1/status"
    gateway = Gateway(gpio_config(mosquitto, topic_prefix, tmp_path), pin_factory=mock_factory)
    async with running(gateway):
        await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
        live_session = gateway.publisher.stats().session
        # The broker publishes an old session's Will late, over our retained "online".
        stale = json.dumps(
            {
                "schema": 1,
                "site": "shancheng-dongxiang",
                "gateway": "gw1",
                "state": "offline",
                "session": live_session - 1,
                "ts": "2026-11-28T08:00:00Z",
            }
        )
        raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        raw.connect(mosquitto.host, mosquitto.port)
        raw.loop_start()
        raw.publish(status_topic, stale, qos=1, retain=True).wait_for_publish(5)
        raw.loop_stop()
        raw.disconnect()
        await wait_until(lambda: gateway.publisher.stats().will_corrections == 1)
        late = Recorder(mosquitto, status_topic)
        retained = json.loads((await late.until(lambda ms: len(ms) >= 1))[0].payload)
        late.close()
        assert (retained["state"], retained["session"]) == ("online", live_session)


async def test_session_number_grows_across_gateway_restarts(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path, mock_factory: MockFactory
) -> None:
    sessions = []
    for _ in range(2):
        gateway = Gateway(gpio_config(mosquitto, topic_prefix, tmp_path), pin_factory=mock_factory)
        async with running(gateway):
            await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
            sessions.append(gateway.publisher.stats().session)
        mock_factory.reset()
    assert sessions[0] >= 1
    assert sessions[1] > sessions[0]


async def test_a_pin_that_cannot_be_claimed_is_reported_in_one_line_and_retried(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    mock_factory: MockFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = gpio_config(mosquitto, topic_prefix, tmp_path)
    config = config.model_copy(
        update={"gpio": (config.gpio[0].model_copy(update={"pin": "GPIO99"}),)}
    )
    gateway = Gateway(config, pin_factory=mock_factory)
    async with running(gateway):
        await wait_until(lambda: "retrying" in caplog.text)
        await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert errors[0].getMessage().startswith("source gpio: gpio pin 'GPIO99' (front-door):")
    assert errors[0].exc_info is None  # no traceback for an expected hardware problem
