"""A publish the broker refuses is never taken as delivered (issue 13, item 1).

Real Mosquitto with an ACL file that denies the gateway one reading kind (``door``); the
gateway reads a door and a seat from mock GPIO pins; the real consumer writes to the real
InfluxDB. Seats land while doors are refused (PUBACK 0x87), counted and held in the outbox;
once the ACL is corrected and Mosquitto reloads it (SIGHUP), every door reading lands, each
exactly once and in order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
import pytest
from gpiozero.pins.mock import MockFactory
from paho.mqtt.enums import CallbackAPIVersion

from central.alerts.engine import AlertEngine
from central.alerts.model import Alert, alert_id
from central.consumer.config import ConsumerConfig
from central.consumer.service import Consumer
from devstack import InfluxdProcess
from edge.config import GatewayConfig
from edge.gateway import Gateway
from edge.refusals import read_refusals
from qihe.mqtt import PubackClient
from tests.alert_harness import SITE as ALERT_SITE
from tests.alert_harness import alerts_config, directory, engine_running, watching
from tests.mqtt_helpers import Recorder, running, wait_until
from tests.secure_broker import AclMosquitto

pytestmark = pytest.mark.integration

SITE, GATEWAY = "qixian-qiyuan-daycare", "gw1"
DOOR_PIN, SEAT_PIN = 17, 27


@pytest.fixture
def acl_broker(tmp_path: Path, topic_prefix: str) -> Iterator[AclMosquitto]:
    broker = AclMosquitto(tmp_path / "broker")
    broker.acl_file.parent.mkdir(parents=True)
    broker.acl_file.write_text(
        f"topic deny {topic_prefix}/v1/{SITE}/{GATEWAY}/door/#\ntopic readwrite #\n"
    )
    broker.start()
    yield broker
    broker.stop()


def gateway_config(tmp_path: Path, broker: AclMosquitto, prefix: str) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "site": SITE,
            "gateway": GATEWAY,
            "state_dir": tmp_path / "state",
            "broker": {
                "host": broker.host,
                "port": broker.port,
                "topic_prefix": prefix,
                "reconnect_min": 0.1,
                "reconnect_max": 0.5,
                "keepalive": 5,
            },
            "gpio": [
                {"pin": DOOR_PIN, "kind": "door", "sensor": "entrance", "debounce": 0.01},
                {"pin": SEAT_PIN, "kind": "seat", "sensor": "window", "debounce": 0.01},
            ],
            "outbox": {"commit_interval": 0.05},
            # No periodic reports during the test: every reading is one the test made.
            "link_report_interval": 3600,
        }
    )


def consumer_config(broker: AclMosquitto, influxd: InfluxdProcess, **names: str) -> ConsumerConfig:
    data: dict[str, Any] = {
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "client_id": names["client_id"],
            "topic_prefix": names["prefix"],
            "connect_timeout": 5,
        },
        "influx": {"api": "v1", "url": influxd.url, "database": names["database"], "timeout": 2},
        "flush_interval": 0.1,
        "flush_idle": 0.05,
        "retry_min_delay": 0.05,
        "retry_max_delay": 0.3,
        "stop_timeout": 2,
    }
    return ConsumerConfig.model_validate(data)


def count(influxd: InfluxdProcess, database: str, measurement: str) -> int:
    rows = influxd.rows(f'SELECT COUNT(*) FROM "{measurement}"', database)
    return int(next(v for k, v in rows[0].items() if k.startswith("count_"))) if rows else 0


async def toggle(factory: MockFactory, pin: int, times: int) -> None:
    for _ in range(times):
        factory.pin(pin).drive_high()
        await asyncio.sleep(0.05)
        factory.pin(pin).drive_low()
        await asyncio.sleep(0.05)


async def test_a_denied_kind_is_held_and_lands_exactly_once_after_the_acl_is_fixed(
    tmp_path: Path,
    acl_broker: AclMosquitto,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    unique_name: str,
) -> None:
    factory = MockFactory()
    gateway = Gateway(gateway_config(tmp_path, acl_broker, topic_prefix), pin_factory=factory)
    consumer = Consumer(
        consumer_config(
            acl_broker, influxd, client_id=f"c-{unique_name}", prefix=topic_prefix,
            database=influx_db,
        )
    )  # fmt: skip
    door_topic = f"{topic_prefix}/v1/{SITE}/{GATEWAY}/door/entrance"
    consumer.start()
    try:
        async with running(gateway):
            await wait_until(lambda: gateway.publisher.connected.is_set())
            # Each pin's first state (closed, free) is a reading too.
            await wait_until(lambda: gateway.stats().readings == 2)
            await toggle(factory, DOOR_PIN, 3)
            await toggle(factory, SEAT_PIN, 2)
            await wait_until(lambda: gateway.stats().readings == 12)
            # Seats land; the 7 door readings are refused (0x87), counted once each, held.
            await wait_until(
                lambda: (
                    count(influxd, influx_db, "seat") == 5 and gateway.stats().publisher.held == 7
                ),
                timeout=15,
            )
            refused = gateway.publisher.refusal_snapshot()
            assert (refused.total, refused.by_kind) == (7, {("door", 0x87): 7})
            report = gateway._outbox_reading()
            assert (report.refused, report.refused_held, report.queued) == (7, 7, 7)
            assert [(r.kind, r.reason, r.count) for r in report.refusals] == [("door", 0x87, 7)]
            assert count(influxd, influx_db, "door") == 0
            assert gateway._status_line().endswith("; 被代理拒绝待重试 refused, held 7")
            # The doctor reads what the health report leaves in the state folder.
            await gateway.save_refusals()
            on_disk = read_refusals(tmp_path / "state" / "publish-refusals.json")
            assert on_disk is not None and on_disk.by_kind == {("door", 0x87): 7}

            recorder = Recorder(acl_broker, door_topic)
            try:
                acl_broker.acl_file.write_text("topic readwrite #\n")
                acl_broker.reload()
                await wait_until(lambda: count(influxd, influx_db, "door") == 7, timeout=20)
                await wait_until(lambda: len(gateway.outbox) == 0)
                await asyncio.sleep(0.5)  # a second publish of any of them would show now
                doors = [json.loads(m.payload) for m in recorder.snapshot()]
            finally:
                recorder.close()
            stats = gateway.stats().publisher
    finally:
        factory.reset()
        consumer.stop()
    # Each door reading went out once, in the order it was taken: closed, then 3 × open/closed.
    assert [d["open"] for d in doors] == [False, True, False, True, False, True, False]
    assert [d["ts"] for d in doors] == sorted(d["ts"] for d in doors)
    assert (stats.published, stats.refused, stats.held) == (12, 7, 0)
    assert count(influxd, influx_db, "seat") == 5


@pytest.fixture
def dead_letters_denied(tmp_path: Path, topic_prefix: str) -> Iterator[AclMosquitto]:
    broker = AclMosquitto(tmp_path / "broker")
    broker.acl_file.parent.mkdir(parents=True)
    broker.acl_file.write_text(f"topic deny {topic_prefix}/v1/_dead_letter/#\ntopic readwrite #\n")
    broker.start()
    yield broker
    broker.stop()


async def test_a_refused_dead_letter_is_counted_and_its_message_stays_unacked_until_taken(
    dead_letters_denied: AclMosquitto,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    unique_name: str,
) -> None:
    broker = dead_letters_denied
    client_id = f"c-{unique_name}"
    consumer = Consumer(
        consumer_config(
            broker, influxd, client_id=client_id, prefix=topic_prefix, database=influx_db
        )
    )
    letters = Recorder(broker, f"{topic_prefix}/v1/_dead_letter/#")
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sender.connect(broker.host, broker.port)
    sender.loop_start()
    consumer.start()
    try:
        topic = f"{topic_prefix}/v1/{SITE}/{GATEWAY}/seat/a.1"
        sender.publish(topic, b"not json", qos=1).wait_for_publish(5)
        await wait_until(lambda: consumer.stats().dead_letters_refused >= 2, timeout=10)
        held = consumer.stats()
        # Refused, so not a dead letter sent: the original is not acked (it stays for a retry).
        assert (held.invalid, held.dead_lettered, held.acked, held.pending) == (1, 0, 0, 1)
        broker.acl_file.write_text("topic readwrite #\n")
        broker.reload()
        await wait_until(lambda: consumer.stats().acked == 1, timeout=10)
        await asyncio.sleep(0.5)  # a second dead letter would show now
        received = letters.snapshot()
    finally:
        consumer.stop()
        letters.close()
        sender.disconnect()
        sender.loop_stop()
    stats = consumer.stats()
    assert (stats.dead_lettered, stats.acked, stats.pending) == (1, 1, 0)
    assert len(received) == 1
    assert json.loads(received[0].payload)["topic"] == topic


async def test_an_alert_the_broker_refuses_is_counted_and_published_once_it_is_allowed(
    tmp_path: Path, topic_prefix: str
) -> None:
    broker = AclMosquitto(tmp_path / "broker")
    broker.acl_file.parent.mkdir(parents=True)
    broker.acl_file.write_text(f"topic deny {topic_prefix}/v1/_alerts/#\ntopic readwrite #\n")
    broker.start()
    now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    engine = AlertEngine(alerts_config(broker, topic_prefix), directory(), clock=lambda: now)
    labels = {"site": ALERT_SITE, "gateway": "gw1"}
    alert = Alert(
        id=alert_id("publish_refused", labels), rule="publish_refused", severity="warning",
        state="firing", site=ALERT_SITE, site_name="淇河书屋·桃园站", gateway="gw1",
        labels=labels, summary_zh="测试", summary_en="test", starts_at=now,
    )  # fmt: skip
    alerts_topic = f"{topic_prefix}/v1/_alerts/{ALERT_SITE}/{alert.id}"
    try:
        async with PubackClient(
            broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as client:
            engine._client = client
            await engine._publish([alert], [])
            # Refused: counted by reason, not counted as published, kept for the next round.
            assert (engine.published, dict(engine.publish_refused)) == (0, {0x87: 1})
            broker.acl_file.write_text("topic readwrite #\n")
            broker.reload()
            await engine._publish([], [])
            assert (engine.published, dict(engine.publish_refused)) == (1, {0x87: 1})
            await engine._publish([], [])  # nothing left to publish again
            assert engine.published == 1
        retained = Recorder(broker, alerts_topic)
        try:
            [message] = retained.wait_for(lambda ms: len(ms) >= 1)
        finally:
            retained.close()
    finally:
        broker.stop()
    assert json.loads(message.payload)["id"] == alert.id


async def test_a_refused_backlog_batch_is_retried_while_live_readings_flow(
    tmp_path: Path,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    unique_name: str,
) -> None:
    broker = AclMosquitto(tmp_path / "broker")  # not started: the gateway builds a backlog
    broker.acl_file.parent.mkdir(parents=True)
    backlog_topic = f"{topic_prefix}/v1/{SITE}/{GATEWAY}/backlog"
    broker.acl_file.write_text(f"topic deny {backlog_topic}\ntopic readwrite #\n")
    factory = MockFactory()
    gateway = Gateway(gateway_config(tmp_path, broker, topic_prefix), pin_factory=factory)
    consumer = Consumer(
        consumer_config(
            broker, influxd, client_id=f"c-{unique_name}", prefix=topic_prefix,
            database=influx_db,
        )
    )  # fmt: skip
    try:
        async with running(gateway):
            await wait_until(lambda: gateway.stats().readings == 2)
            await toggle(factory, DOOR_PIN, 3)  # 1 + 6 door readings, stored, not sent
            await wait_until(lambda: gateway.outbox.last_id == 8)
            broker.start()
            consumer.start()
            batches = Recorder(broker, backlog_topic)
            try:
                await wait_until(lambda: gateway.publisher.connected.is_set(), timeout=15)
                await wait_until(lambda: gateway.stats().publisher.held == 8)
                await toggle(factory, SEAT_PIN, 2)  # live readings go on meanwhile
                await wait_until(lambda: count(influxd, influx_db, "seat") == 5, timeout=15)
                refused = gateway.publisher.refusal_snapshot()
                assert (refused.by_kind, refused.held) == ({("backlog", 0x87): 1}, 8)
                broker.acl_file.write_text("topic readwrite #\n")
                broker.reload()
                await wait_until(lambda: count(influxd, influx_db, "door") == 7, timeout=15)
                await wait_until(lambda: len(gateway.outbox) == 0)
                await asyncio.sleep(0.5)  # a second batch would show now
                received = batches.snapshot()
            finally:
                batches.close()
            stats = gateway.stats().publisher
    finally:
        factory.reset()
        consumer.stop()
        broker.stop()
    # The batch of the 8 stored readings (the seat's first one too) went out once.
    assert [len(json.loads(m.payload)["readings"]) for m in received] == [8]
    assert (stats.refused, stats.held, stats.backlog_batches) == (1, 0, 1)


async def test_a_gateway_whose_door_readings_are_refused_raises_publish_refused_until_fixed(
    tmp_path: Path, topic_prefix: str
) -> None:
    broker = AclMosquitto(tmp_path / "broker")
    broker.acl_file.parent.mkdir(parents=True)
    door_topics = f"{topic_prefix}/v1/{ALERT_SITE}/{GATEWAY}/door/#"
    broker.acl_file.write_text(f"topic deny {door_topics}\ntopic readwrite #\n")
    broker.start()
    factory = MockFactory()
    config = gateway_config(tmp_path, broker, topic_prefix).model_copy(
        update={"site": ALERT_SITE, "link_report_interval": timedelta(seconds=0.3)}
    )
    gateway = Gateway(config, pin_factory=factory)
    rules = {"publish_refused": {"for": 0, "keep_firing_for": 1}}
    try:
        async with (
            watching(broker, topic_prefix) as watch,
            engine_running(alerts_config(broker, topic_prefix, rules=rules)),
            running(gateway),
        ):
            await toggle(factory, DOOR_PIN, 2)
            fired = await watch.until("publish_refused", "firing", timeout=20)
            broker.acl_file.write_text("topic readwrite #\n")
            broker.reload()
            await watch.until("publish_refused", "resolved", timeout=20)
    finally:
        factory.reset()
        broker.stop()
    assert fired["gateway"] == GATEWAY
    assert "door 0x87 Not authorized" in fired["summary_en"]
    assert "door 0x87 未授权" in fired["summary_zh"]
