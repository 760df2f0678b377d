"""The gateway rides out a broker outage: it reconnects with backoff and loses nothing it held."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from devstack import MosquittoProcess, free_port
from edge.config import GatewayConfig
from edge.gateway import Gateway
from tests.mqtt_helpers import Recorder, running, wait_until


async def test_readings_taken_while_the_broker_is_down_are_published_when_it_returns(
    tmp_path: Path,
) -> None:
    broker = MosquittoProcess(tmp_path / "broker").start()  # its own: this test kills it
    factory = MockFactory()
    config = GatewayConfig.model_validate(
        {
            "site": "qixian-qiyuan-daycare",
            "gateway": "gw1",
            "state_dir": tmp_path / "state",
            "broker": {
                "host": broker.host,
                "port": broker.port,
                "reconnect_min": 0.1,
                "reconnect_max": 0.5,
                "keepalive": 5,
            },
            "gpio": [{"pin": 17, "kind": "door", "sensor": "entrance", "debounce": 0.01}],
        }
    )
    gateway = Gateway(config, pin_factory=factory)
    recorder = None
    try:
        async with running(gateway):
            await wait_until(lambda: gateway.stats().publisher.published == 1)
            first_session = gateway.stats().publisher.session
            broker.stop(kill=True)
            await wait_until(lambda: not gateway.publisher.connected.is_set())
            pin = factory.pin(17)
            for _ in range(3):  # the door opens and shuts three times during the outage
                pin.drive_high()
                await asyncio.sleep(0.05)
                pin.drive_low()
                await asyncio.sleep(0.05)
            assert gateway.stats().queued == 6
            await asyncio.sleep(1.0)  # several failed reconnects, with backoff
            failures = gateway.stats().publisher.connection_failures
            assert 1 <= failures <= 10
            broker.start()
            await wait_until(lambda: gateway.stats().queued == 0, timeout=15)
            stats = gateway.stats().publisher
            assert (stats.published, stats.connects) == (7, 2)
            assert stats.session > first_session
            # The broker kept the retained state; the last door reading is the present one.
            recorder = Recorder(broker, "qihe/v1/+/+/door/+")
            retained = await recorder.until(lambda ms: len(ms) >= 1)
            assert json.loads(retained[0].payload)["open"] is False
    finally:
        if recorder is not None:
            recorder.close()
        factory.reset()
        broker.stop()


async def test_outbox_drops_when_full_are_counted_and_reported_as_a_reading(
    tmp_path: Path,
) -> None:
    factory = MockFactory()
    config = GatewayConfig.model_validate(
        {
            "site": "qixian-qiyuan-daycare",
            "gateway": "gw1",
            "state_dir": tmp_path / "state",
            # Nobody listens here: everything stays in the outbox.
            "broker": {"host": "127.0.0.1", "port": free_port(), "reconnect_min": 5},
            "gpio": [{"pin": 17, "kind": "door", "sensor": "entrance", "debounce": 0.001}],
            "outbox": {"max_readings": 100, "commit_interval": 0.01},
            "link_report_interval": 0.05,
        }
    )
    gateway = Gateway(config, pin_factory=factory)
    try:
        async with running(gateway):
            pin = factory.pin(17)
            for _ in range(80):  # 160 door changes for a store of 100
                pin.drive_high()
                await asyncio.sleep(0.003)
                pin.drive_low()
                await asyncio.sleep(0.003)
            await wait_until(lambda: gateway.stats().readings >= 161)
            await wait_until(
                lambda: len(gateway.outbox) <= 100 and sum(gateway.outbox.dropped.values()) > 0
            )
            report = gateway._outbox_reading()
            dropped = dict(gateway.outbox.dropped)  # the same moment as the report
    finally:
        factory.reset()
    assert report.queued == 100
    # Periodic reports (its outbox, its host) went first; then the oldest door states.
    assert report.dropped_periodic == dropped.get("outbox", 0) + dropped.get("system", 0)
    assert report.dropped_state == dropped["door"] > 0
    assert report.dropped_clock == 0
