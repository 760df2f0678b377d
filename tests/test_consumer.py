"""The consumer against a real Mosquitto and a real InfluxDB 1.x: what lands, what is refused,
and what happens while InfluxDB is down."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from central.consumer.config import ConsumerConfig
from central.consumer.points import reading_point, status_point
from central.consumer.service import Consumer
from central.errors import ConsumerStartError, InfluxWriteError
from central.influx import InfluxV1Writer, encode_line
from central.influx.config import InfluxV1Config
from devstack import InfluxdProcess, MosquittoProcess, free_port
from qihe.backoff import Backoff
from qihe.contract import (
    AirReading,
    BatteryReading,
    DeviceReading,
    DoorReading,
    FaultReading,
    GatewayStatus,
    HeartbeatReading,
    LinkReading,
    MotionReading,
    PeopleReading,
    SeatReading,
    TopicTree,
    encode_payload,
)

pytestmark = pytest.mark.integration

SITE = "qibin-taoyuan"
T0 = datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=UTC)
T0_NS = 1_795_827_723_456_789_000


def acked(consumer: Consumer, n: int) -> Callable[[], bool]:
    return lambda: consumer.stats().acked == n


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def make_config(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    *,
    prefix: str,
    database: str,
    client_id: str,
    **top: Any,
) -> ConsumerConfig:
    data: dict[str, Any] = {
        "mqtt": {
            "host": mosquitto.host,
            "port": mosquitto.port,
            "client_id": client_id,
            "topic_prefix": prefix,
            "session_expiry": 300,
            "connect_timeout": 5,
        },
        "influx": {"api": "v1", "url": influxd.url, "database": database, "timeout": 2},
        "flush_interval": 0.3,
        "flush_idle": 0.05,
        "retry_min_delay": 0.05,
        "retry_max_delay": 0.3,
        "stop_timeout": 2,
        **top,
    }
    return ConsumerConfig.model_validate(data)


@pytest.fixture
def tree(topic_prefix: str) -> TopicTree:
    return TopicTree(topic_prefix)


@pytest.fixture
def config(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    topic_prefix: str,
    influx_db: str,
    unique_name: str,
) -> ConsumerConfig:
    return make_config(
        mosquitto, influxd, prefix=topic_prefix, database=influx_db, client_id=f"c-{unique_name}"
    )


class DeadLetters:
    """A plain subscriber to the consumer's dead-letter topic."""

    def __init__(self, mosquitto: MosquittoProcess, topic: str) -> None:
        self.received: list[dict[str, Any]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda c, u, m: self.received.append(json.loads(m.payload))
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect(mosquitto.host, mosquitto.port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        assert self._subscribed.wait(5)

    def by_topic(self) -> dict[str, dict[str, Any]]:
        return {letter["topic"]: letter for letter in self.received}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def dead_letters(
    mosquitto: MosquittoProcess, tree: TopicTree, config: ConsumerConfig
) -> Iterator[DeadLetters]:
    listener = DeadLetters(mosquitto, tree.dead_letter(config.mqtt.client_id))
    yield listener
    listener.close()


def publish(client: mqtt.Client, topic: str, payload: bytes, *, retain: bool = False) -> None:
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)


def seat(sensor: str, occupied: bool, at: datetime = T0, **ids: str) -> SeatReading:
    fields: dict[str, Any] = {"site": SITE, "gateway": "gw1", "device": "board-a", **ids}
    return SeatReading(sensor=sensor, ts=at, occupied=occupied, **fields)


def publish_reading(client: mqtt.Client, tree: TopicTree, reading: Any) -> None:
    topic = tree.reading(reading.site, reading.gateway, reading.kind, reading.sensor)
    publish(client, topic, encode_payload(reading))


def count(influxd: InfluxdProcess, db: str, measurement: str, field: str) -> int:
    rows = influxd.rows(f'SELECT count("{field}") FROM "{measurement}"', db)
    return int(rows[0]["count"]) if rows else 0


def test_every_kind_lands_with_exact_values_and_timestamps(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    tree: TopicTree,
    influxd: InfluxdProcess,
    influx_db: str,
) -> None:
    ids = {"site": SITE, "gateway": "gw1", "device": "board-a"}
    readings = [
        SeatReading(sensor="board-a.3", ts=T0, seq=812, occupied=True, **ids),
        PeopleReading(sensor="board-a.1", ts=T0, seq=813, in_total=130, out_total=121, **ids),
        DoorReading(site=SITE, gateway="gw1", device="gpio", sensor="back-door", ts=T0, open=False),
        MotionReading(
            site=SITE, gateway="gw1", device="gpio", sensor="hall-pir", ts=T0, motion=True
        ),
        HeartbeatReading(sensor="board-a", ts=T0, uptime_s=86400, supply_mv=3710, **ids),
        FaultReading(sensor="board-a.7", ts=T0, code="stuck", active=True, **ids),
        DeviceReading(
            sensor="board-a", ts=T0, firmware="1.0.0", report_interval_s=60,
            sensors=("seat.1", "door.1"), **ids,
        ),
        LinkReading(
            sensor="board-a", ts=T0, frames=5120, crc_errors=3, malformed=1, lost=2,
            duplicates=0, reconnects=1, **ids,
        ),
    ]  # fmt: skip
    status = GatewayStatus(site=SITE, gateway="gw1", state="online", session=7, ts=T0)
    with Consumer(config) as consumer:
        for reading in readings:
            publish_reading(publisher, tree, reading)
        publish(publisher, tree.status(SITE, "gw1"), encode_payload(status))
        wait_until(lambda: consumer.stats().acked == 9, "9 acks")
        stats = consumer.stats()
    assert (stats.received, stats.written_points, stats.invalid, stats.pending) == (9, 9, 0, 0)

    def rows(measurement: str) -> list[dict[str, Any]]:
        return influxd.rows(f'SELECT * FROM "{measurement}"', influx_db)

    board = {"time": T0_NS, "site": SITE, "gateway": "gw1", "device": "board-a"}
    gpio = {**board, "device": "gpio"}
    assert rows("seat") == [{**board, "sensor": "board-a.3", "occupied": 1, "seq": 812}]
    assert rows("people") == [
        {**board, "sensor": "board-a.1", "in_total": 130, "out_total": 121, "seq": 813}
    ]
    assert rows("door") == [{**gpio, "sensor": "back-door", "open": 0}]
    assert rows("motion") == [{**gpio, "sensor": "hall-pir", "motion": 1}]
    assert rows("heartbeat") == [
        {**board, "sensor": "board-a", "uptime_s": 86400, "supply_mv": 3710}
    ]
    assert rows("fault") == [{**board, "sensor": "board-a.7", "code": "stuck", "active": 1}]
    assert rows("device") == [
        {
            **board,
            "sensor": "board-a",
            "firmware": "1.0.0",
            "report_interval_s": 60,
            "sensors": "seat.1,door.1",
        }
    ]
    assert rows("link") == [
        {
            **board,
            "sensor": "board-a",
            "frames": 5120,
            "crc_errors": 3,
            "malformed": 1,
            "lost": 2,
            "duplicates": 0,
            "reconnects": 1,
        }
    ]
    assert rows("gateway_status") == [
        {"time": T0_NS, "site": SITE, "gateway": "gw1", "online": 1, "session": 7}
    ]


def test_occupancy_ratio_is_an_influxql_mean(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    tree: TopicTree,
    influxd: InfluxdProcess,
    influx_db: str,
) -> None:
    with Consumer(config) as consumer:
        for minute, occupied in enumerate([True, True, False, True]):
            publish_reading(
                publisher, tree, seat("board-a.1", occupied, T0 + timedelta(minutes=minute))
            )
        wait_until(lambda: consumer.stats().acked == 4, "4 acks")
    rows = influxd.rows('SELECT MEAN("occupied"), SUM("occupied") FROM "seat"', influx_db)
    assert (rows[0]["mean"], rows[0]["sum"]) == (0.75, 3)


def test_duplicate_delivery_stays_one_point(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    tree: TopicTree,
    influxd: InfluxdProcess,
    influx_db: str,
) -> None:
    reading = seat("board-a.3", True)
    with Consumer(config) as consumer:
        publish_reading(publisher, tree, reading)
        publish_reading(publisher, tree, reading)
        wait_until(lambda: consumer.stats().acked == 2, "2 acks")
        assert consumer.stats().written_points == 2
    assert influxd.rows('SELECT * FROM "seat"', influx_db) == [
        {
            "time": T0_NS,
            "site": SITE,
            "gateway": "gw1",
            "device": "board-a",
            "sensor": "board-a.3",
            "occupied": 1,
        }
    ]


def test_retained_reading_seen_again_by_a_new_session_is_the_same_point(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    tree: TopicTree,
    influxd: InfluxdProcess,
    influx_db: str,
) -> None:
    reading = seat("board-a.4", False)
    publish(
        publisher,
        tree.reading(SITE, "gw1", "seat", "board-a.4"),
        encode_payload(reading),
        retain=True,
    )
    for client_id in (config.mqtt.client_id, config.mqtt.client_id + "-b"):
        again = config.model_copy(
            update={"mqtt": config.mqtt.model_copy(update={"client_id": client_id})}
        )
        with Consumer(again) as consumer:
            wait_until(acked(consumer, 1), "the retained reading")
    assert count(influxd, influx_db, "seat", "occupied") == 1


def _invalid_messages(tree: TopicTree) -> list[tuple[str, bytes, str]]:
    """(topic, payload, what the dead letter's reason must contain)."""

    def topic(sensor: str, kind: str = "seat", site: str = SITE) -> str:
        return f"{tree.root}/{site}/gw1/{kind}/{sensor}"

    def payload(sensor: str, **changes: Any) -> bytes:
        document = json.loads(encode_payload(seat("board-a.1", True)))
        document.update(sensor=sensor, **changes)
        return json.dumps(document, ensure_ascii=False).encode()

    return [
        (topic("bad-json"), b'{"schema": 1, "kind": "seat",', "Invalid JSON"),
        (topic("not-utf8"), b"\xff\xfe\x00seat", "Invalid JSON"),
        (topic("wrong-type"), payload("wrong-type", occupied="maybe"), "occupied"),
        (topic("extra-field"), payload("extra-field", colour="red"), "colour"),
        (topic("board-a.2"), payload("board-a.9"), "payload sensor 'board-a.9' does not match"),
        (topic("site-b", site="xun-weihe"), payload("site-b"), "payload site"),
        (topic("kind-b", kind="door"), payload("kind-b"), "payload kind 'seat'"),
        (topic("slash-id"), payload("a/b"), "sensor: String should match pattern"),
        (topic("x,y=z"), payload("x,y=z"), "topic: sensor 'x,y=z' cannot be used in a topic"),
        (topic("座位1"), payload("座位1"), "topic: sensor '座位1' cannot be used in a topic"),
        (topic("cn-site"), payload("cn-site", site="淇河书屋"), "site: String should match"),
        (
            f"{tree.root}/{SITE}/gw2/status",
            encode_payload(
                GatewayStatus(site=SITE, gateway="gw1", state="online", session=1, ts=T0)
            ),
            "payload gateway 'gw1' does not match the topic's gateway 'gw2'",
        ),
    ]


def test_invalid_messages_are_dead_lettered_with_a_reason_and_neighbours_land(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    tree: TopicTree,
    dead_letters: DeadLetters,
    influxd: InfluxdProcess,
    influx_db: str,
) -> None:
    invalid = _invalid_messages(tree)
    with Consumer(config, clock=lambda: T0) as consumer:
        publish_reading(publisher, tree, seat("board-a.1", True))
        for topic, payload, _ in invalid:
            publish(publisher, topic, payload)
        publish_reading(publisher, tree, seat("board-a.2", False))
        total = len(invalid) + 2
        wait_until(lambda: consumer.stats().acked == total, f"{total} acks")
        wait_until(lambda: len(dead_letters.received) == len(invalid), "all dead letters")
        stats = consumer.stats()
    assert (stats.invalid, stats.dead_lettered, stats.written_points) == (
        len(invalid),
        len(invalid),
        2,
    )
    letters = dead_letters.by_topic()
    for topic, payload, reason in invalid:
        letter = letters[topic]
        assert reason in letter["reason"], (topic, letter["reason"])
        assert letter["received_at"] == "2026-11-28T01:02:03.456789Z"
        if letter["payload_encoding"] == "utf-8":
            assert letter["payload"].encode() == payload
    assert letters[invalid[1][0]]["payload_encoding"] == "base64"
    assert letters[invalid[1][0]]["payload"] == "//4Ac2VhdA=="
    sensors = [row["sensor"] for row in influxd.rows('SELECT * FROM "seat"', influx_db)]
    assert sorted(sensors) == ["board-a.1", "board-a.2"]


def test_refusals_are_logged_once_per_topic(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    tree: TopicTree,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = tree.reading(SITE, "gw1", "seat", "noisy")
    with caplog.at_level(logging.WARNING, logger="central"), Consumer(config) as consumer:
        for _ in range(5):
            publish(publisher, topic, b"garbage")
        wait_until(lambda: consumer.stats().acked == 5, "5 acks")
    refusals = [r for r in caplog.records if topic in r.getMessage()]
    assert len(refusals) == 1
    assert consumer.stats().invalid == 5


def test_nothing_is_acked_while_influxdb_is_down_and_everything_lands_once_after(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    unique_name: str,
    publisher: mqtt.Client,
    tree: TopicTree,
) -> None:
    # max_pending is also our MQTT Receive Maximum: the broker holds back the rest.
    config = make_config(
        mosquitto, influxd, prefix=topic_prefix, database=influx_db,
        client_id=f"c-{unique_name}", max_pending=10,
    )  # fmt: skip
    with Consumer(config) as consumer:
        influxd.stop()
        try:
            for i in range(30):
                publish_reading(publisher, tree, seat(f"board-a.{i}", i % 2 == 0))
            wait_until(
                lambda: consumer.stats().received == 10 and consumer.stats().write_errors >= 3,
                "a full window and failed writes",
            )
            time.sleep(0.2)  # nothing more may come while those 10 are unacked
            held = consumer.stats()
            assert (held.received, held.acked, held.written_points) == (10, 0, 0)
            assert held.retries >= 3
        finally:
            influxd.start()
        wait_until(lambda: consumer.stats().acked == 30, "30 acks after InfluxDB came back")
        stats = consumer.stats()
    assert (stats.received, stats.written_points, stats.pending) == (30, 30, 0)
    assert count(influxd, influx_db, "seat", "occupied") == 30


def test_messages_unwritten_at_stop_come_back_to_the_next_session(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    tree: TopicTree,
    influxd: InfluxdProcess,
    influx_db: str,
) -> None:
    config = config.model_copy(update={"stop_timeout": timedelta(seconds=0.3)})
    first = Consumer(config)
    first.start()
    influxd.stop()
    try:
        for i in range(5):
            publish_reading(publisher, tree, seat(f"board-a.{i}", True))
        wait_until(lambda: first.stats().received == 5, "5 messages in hand")
        first.stop()
        assert first.stats().acked == 0
    finally:
        influxd.start()
    with Consumer(config) as second:  # same client id: the broker's session redelivers
        wait_until(lambda: second.stats().acked == 5, "5 redelivered and acked")
    assert count(influxd, influx_db, "seat", "occupied") == 5


def test_point_influxdb_refuses_is_dead_lettered_and_the_rest_of_its_batch_lands(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    tree: TopicTree,
    dead_letters: DeadLetters,
    influxd: InfluxdProcess,
    influx_db: str,
) -> None:
    # "open" becomes a string field in this shard, so the consumer's integer open=0i conflicts.
    conflict = f'door,device=gpio,gateway=gw1,sensor=front,site={SITE} open="stuck" {T0_NS}'
    response = httpx.post(
        f"{influxd.url}/write", params={"db": influx_db, "precision": "ns"}, content=conflict
    )
    assert response.status_code == 204
    config = config.model_copy(update={"flush_idle": timedelta(seconds=0.3)})
    door = DoorReading(
        site=SITE, gateway="gw1", device="gpio", sensor="back-door", ts=T0, open=False
    )
    with Consumer(config) as consumer:
        for i in range(4):
            publish_reading(publisher, tree, seat(f"board-a.{i}", True))
        publish_reading(publisher, tree, door)
        for i in range(4, 8):
            publish_reading(publisher, tree, seat(f"board-a.{i}", True))
        wait_until(lambda: consumer.stats().acked == 9, "9 acks")
        wait_until(lambda: len(dead_letters.received) == 1, "the dead letter")
        stats = consumer.stats()
    assert (stats.written_points, stats.rejected_points, stats.dead_lettered) == (8, 1, 1)
    assert count(influxd, influx_db, "seat", "occupied") == 8
    [letter] = dead_letters.received
    assert letter["topic"] == tree.reading(SITE, "gw1", "door", "back-door")
    assert letter["reason"].startswith("influxdb: partial write: field type conflict")
    assert json.loads(letter["payload"])["open"] is False


def test_missing_v1_database_is_created_at_start(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    topic_prefix: str,
    unique_name: str,
    publisher: mqtt.Client,
    tree: TopicTree,
) -> None:
    database = f"new_{unique_name}"
    config = make_config(
        mosquitto, influxd, prefix=topic_prefix, database=database, client_id=f"c-{unique_name}"
    )
    with Consumer(config) as consumer:
        publish_reading(publisher, tree, seat("board-a.1", True))
        wait_until(lambda: consumer.stats().acked == 1, "1 ack")
    assert count(influxd, database, "seat", "occupied") == 1


def test_start_fails_with_one_clear_error_when_the_broker_is_unreachable(
    config: ConsumerConfig,
) -> None:
    port = free_port()
    mqtt_config = config.mqtt.model_copy(
        update={"port": port, "connect_timeout": timedelta(seconds=0.3)}
    )
    consumer = Consumer(config.model_copy(update={"mqtt": mqtt_config}))
    with pytest.raises(ConsumerStartError, match=rf"broker 127\.0\.0\.1:{port}: no answer"):
        consumer.start()
    consumer.stop()  # harmless after a failed start


def test_stats_snapshot_is_frozen(config: ConsumerConfig) -> None:
    stats = Consumer(config).stats()
    with pytest.raises(AttributeError):
        stats.received = 1  # type: ignore[misc]


def test_cli_run_stops_cleanly_on_sigterm(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    tree: TopicTree,
    influxd: InfluxdProcess,
    influx_db: str,
    tmp_path: Path,
) -> None:
    path = tmp_path / "consumer.yaml"
    path.write_text(yaml.safe_dump(json.loads(config.model_dump_json())))
    qihe = Path(sys.executable).with_name("qihe")
    proc = subprocess.Popen(
        [str(qihe), "consumer", "run", "--config", str(path)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "consuming" in line:
                break
        publish_reading(publisher, tree, seat("board-a.1", True))
        wait_until(lambda: count(influxd, influx_db, "seat", "occupied") == 1, "the point")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 0, stderr
        assert "SIGTERM received, stopping" in stderr
        assert "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_settings_error_holds_messages_until_fixed_and_logs_an_error(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    topic_prefix: str,
    unique_name: str,
    publisher: mqtt.Client,
    tree: TopicTree,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = f"later_{unique_name}"
    config = make_config(
        mosquitto, influxd, prefix=topic_prefix, database=database, client_id=f"c-{unique_name}"
    )
    influx = config.influx.model_copy(update={"create_database": False})
    consumer = Consumer(config.model_copy(update={"influx": influx}))
    with caplog.at_level(logging.ERROR, logger="central"), consumer:
        publish_reading(publisher, tree, seat("board-a.1", True))
        wait_until(lambda: consumer.stats().write_errors >= 2, "refused writes")
        assert (consumer.stats().acked, consumer.stats().dead_lettered) == (0, 0)
        influxd.create_database(database)  # the operator fixes it
        wait_until(acked(consumer, 1), "the held message")
    assert count(influxd, database, "seat", "occupied") == 1
    assert any("database not found" in r.getMessage() for r in caplog.records)


def test_a_consumer_starts_once(config: ConsumerConfig) -> None:
    consumer = Consumer(config)
    consumer.start()
    consumer.stop()
    with pytest.raises(RuntimeError, match="starts once"):
        consumer.start()


# The retry policy and the v1 writer's error mapping --------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_backoff_doubles_up_to_its_cap_with_jitter(seed: int) -> None:
    backoff = Backoff(0.5, 4.0, random.Random(seed))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert 0.25 <= backoff.next_delay() <= 0.5


def v1_writer(url: str, database: str, **changes: Any) -> InfluxV1Writer:
    data = {"api": "v1", "url": url, "database": database, "create_database": False, **changes}
    return InfluxV1Writer(InfluxV1Config.model_validate(data))


def test_v1_partial_write_is_a_point_refusal_and_stores_the_good_lines(
    influxd: InfluxdProcess, influx_db: str
) -> None:
    writer = v1_writer(influxd.url, influx_db)
    try:
        with pytest.raises(InfluxWriteError) as caught:
            writer.write(["m f=1i 1", "m f=oops 2", "m f=3i 3"])
    finally:
        writer.close()
    error = caught.value
    assert (error.status, error.retryable, error.rejects_points) == (400, False, True)
    assert error.detail.startswith("partial write: unable to parse 'm f=oops 2'")
    assert [row["f"] for row in influxd.rows('SELECT "f" FROM "m"', influx_db)] == [1, 3]


def test_v1_missing_database_is_a_settings_error(influxd: InfluxdProcess) -> None:
    writer = v1_writer(influxd.url, "no_such_db")
    try:
        with pytest.raises(InfluxWriteError) as caught:
            writer.write(["m f=1i 1"])
    finally:
        writer.close()
    error = caught.value
    assert (error.status, error.retryable, error.rejects_points) == (404, False, False)
    assert error.detail == 'database not found: "no_such_db"'


def test_v1_nothing_listening_is_retryable() -> None:
    writer = v1_writer(f"http://127.0.0.1:{free_port()}", "qihe")
    try:
        with pytest.raises(InfluxWriteError) as caught:
            writer.write(["m f=1i 1"])
    finally:
        writer.close()
    assert (caught.value.status, caught.value.retryable) == (None, True)


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (401, False), (403, False)]
)
def test_v1_http_errors_map_to_retryability(status: int, retryable: bool) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.params["precision"] == "ns"
        assert request.headers["Authorization"] == "Basic d3JpdGVyOnNlY3JldA=="  # writer:secret
        return httpx.Response(status, json={"error": "nope"}, headers={"Retry-After": "2"})

    config = InfluxV1Config.model_validate(
        {"api": "v1", "url": "http://influx.test:8086", "database": "qihe",
         "username": "writer", "password": "secret", "retention_policy": "one_year"}
    )  # fmt: skip
    writer = InfluxV1Writer(config, transport=httpx.MockTransport(answer))
    with pytest.raises(InfluxWriteError) as caught:
        writer.write(["m f=1i 1"])
    writer.close()
    assert (caught.value.status, caught.value.retryable) == (status, retryable)
    assert (caught.value.detail, caught.value.retry_after) == ("nope", 2.0)


# docs/influxdb.md ---------------------------------------------------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "influxdb.md"


def _doc_queries() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return re.findall(r"```influxql\n(.*?)\n```", text, flags=re.DOTALL)


def test_docs_have_example_queries() -> None:
    assert len(_doc_queries()) >= 8


@pytest.mark.parametrize("query", _doc_queries(), ids=lambda q: q.split(" FROM ")[1].split()[0])
def test_docs_example_query_answers_on_real_influxdb(
    query: str, influxd: InfluxdProcess, influx_db: str
) -> None:
    # The queries' now() is the server's (a run under faketime moves only this process's).
    at = influxd.server_now().replace(microsecond=0) - timedelta(minutes=10)
    ids = {"site": SITE, "gateway": "gw1", "device": "board-a"}
    daycare = {"site": "qixian-qiyuan-daycare", "gateway": "gw1", "device": "gpio"}
    points = [
        reading_point(seat("board-a.1", True, at)),
        reading_point(PeopleReading(sensor="board-a.1", ts=at, in_total=9, out_total=4, **ids)),
        reading_point(DoorReading(sensor="back-door", ts=at, open=True, **ids)),
        reading_point(MotionReading(sensor="hall-pir", ts=at, motion=True, **daycare)),
        reading_point(FaultReading(sensor="board-a.7", ts=at, code="stuck", active=True, **ids)),
        reading_point(HeartbeatReading(sensor="board-a", ts=at, uptime_s=1, supply_mv=3300, **ids)),
        *(
            reading_point(
                LinkReading(
                    sensor="board-a", ts=at - timedelta(hours=hours), frames=9,
                    crc_errors=2 - hours, malformed=0, lost=0, duplicates=0, reconnects=0, **ids,
                )
            )
            for hours in (0, 2)  # a difference needs two hours
        ),
        status_point(GatewayStatus(site=SITE, gateway="gw1", state="online", session=3, ts=at)),
        reading_point(AirReading(sensor="air-1", ts=at, co2_ppm=870, temperature_c=22.4, **ids)),
        reading_point(BatteryReading(sensor="front-door", ts=at, percent=64, **ids)),
    ]  # fmt: skip
    body = "\n".join(encode_line(p) for p in points)
    response = httpx.post(f"{influxd.url}/write", params={"db": influx_db}, content=body)
    assert response.status_code == 204, response.text
    assert influxd.rows(query, influx_db)  # runs, and finds the data


def test_unusable_ca_file_is_one_clear_start_error(config: ConsumerConfig) -> None:
    mqtt_config = config.mqtt.model_copy(update={"tls": True, "ca_file": Path(__file__)})
    consumer = Consumer(config.model_copy(update={"mqtt": mqtt_config}))
    with pytest.raises(ConsumerStartError, match=r"cannot set up TLS with .*test_consumer\.py"):
        consumer.start()


def test_acked_messages_are_not_redelivered_to_the_next_session(
    config: ConsumerConfig, publisher: mqtt.Client, tree: TopicTree
) -> None:
    with Consumer(config) as first:
        for i in range(3):
            publish_reading(publisher, tree, seat(f"board-a.{i}", True))
        wait_until(acked(first, 3), "3 acks")
    with Consumer(config) as second:  # same client id, same session
        # Redelivered messages would come before this new one.
        publish_reading(publisher, tree, seat("board-a.9", True))
        wait_until(acked(second, 1), "the new message")
        assert second.stats().received == 1
