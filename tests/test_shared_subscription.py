"""Two consumers share the load through an MQTT shared subscription (``mqtt.shared_group``):
the broker gives each message to one of them, so every reading is written exactly once —
nothing lost, nothing doubled — against a real Mosquitto and a real InfluxDB 1.x."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from pydantic import ValidationError

from central.consumer.config import ConsumerConfig
from central.consumer.service import Consumer
from central.influx import PointWriter, open_writer
from devstack import InfluxdProcess, MosquittoProcess
from qihe.contract import SeatReading, TopicTree, encode_batch, encode_payload
from tests.test_consumer import make_config, wait_until

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
GATEWAYS = 10
READINGS_PER_GATEWAY = 150


class RecordingWriter:
    """The real InfluxDB writer, keeping a copy of every line it wrote: who wrote what."""

    def __init__(self, inner: PointWriter) -> None:
        self._inner = inner
        self.lines: list[str] = []
        self._lock = threading.Lock()

    @property
    def target(self) -> str:
        return self._inner.target

    def prepare(self) -> None:
        self._inner.prepare()

    def write(self, lines: Sequence[str]) -> None:
        self._inner.write(lines)
        with self._lock:
            for chunk in [lines] if isinstance(lines, str) else lines:
                self.lines.extend(chunk.splitlines())

    def close(self) -> None:
        self._inner.close()


def _reading(gateway: int, n: int) -> SeatReading:
    return SeatReading(
        site=f"site-{gateway:02d}",
        gateway="gw1",
        device="board-1",
        sensor=f"seat-{n % 40 + 1}",
        ts=T0 + timedelta(milliseconds=n),
        occupied=n % 2 == 0,
    )


def _member(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    stack: ExitStack,
    *,
    prefix: str,
    database: str,
    client_id: str,
) -> tuple[Consumer, RecordingWriter]:
    """A started consumer of the shared group ``writers``, and the record of what it wrote."""
    config = make_config(mosquitto, influxd, prefix=prefix, database=database, client_id=client_id)
    config = config.model_copy(
        update={"mqtt": config.mqtt.model_copy(update={"shared_group": "writers"})}
    )
    writer = RecordingWriter(open_writer(config.influx))
    return stack.enter_context(Consumer(config, writer=writer)), writer


def _shared_consumers(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    stack: ExitStack,
    *,
    prefix: str,
    database: str,
    name: str,
) -> list[tuple[Consumer, RecordingWriter]]:
    return [
        _member(
            mosquitto, influxd, stack, prefix=prefix, database=database, client_id=f"{name}-{m}"
        )
        for m in ("a", "b")
    ]


def test_two_consumers_in_one_shared_group_write_every_reading_exactly_once(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    publisher: mqtt.Client,
    topic_prefix: str,
    influx_db: str,
    unique_name: str,
) -> None:
    tree = TopicTree(topic_prefix)
    with ExitStack() as stack:
        pair = _shared_consumers(
            mosquitto, influxd, stack, prefix=topic_prefix, database=influx_db, name=unique_name
        )
        # Live single-reading messages from ten gateways, and one packed backlog batch each.
        messages = 0
        for gateway in range(GATEWAYS):
            readings = [_reading(gateway, n) for n in range(READINGS_PER_GATEWAY)]
            for reading in readings[:100]:
                topic = tree.reading(reading.site, reading.gateway, reading.kind, reading.sensor)
                publisher.publish(topic, encode_payload(reading), qos=1)
                messages += 1
            batch = encode_batch(
                f"site-{gateway:02d}", "gw1", [encode_payload(r) for r in readings[100:]]
            )
            publisher.publish(tree.backlog(f"site-{gateway:02d}", "gw1"), batch, qos=1)
            messages += 1

        consumers = [consumer for consumer, _ in pair]
        wait_until(
            lambda: sum(c.stats().acked for c in consumers) >= messages,
            "both consumers to ack every message",
            timeout=30,
        )

    received = [consumer.stats().received for consumer, _ in pair]
    assert all(count > 0 for count in received), f"one consumer got nothing: {received}"
    assert sum(received) == messages, f"a message was delivered twice or lost: {received}"
    written = [set(writer.lines) for _, writer in pair]
    assert all(len(set(w.lines)) == len(w.lines) for _, w in pair), "a line written twice"
    assert not written[0] & written[1], "a reading was written by both consumers"
    total = GATEWAYS * READINGS_PER_GATEWAY
    assert len(written[0] | written[1]) == total
    rows = influxd.rows("SELECT COUNT(occupied) FROM seat", influx_db)
    assert rows[0]["count"] == total


def test_a_shared_group_name_must_be_a_plain_identifier(
    mosquitto: MosquittoProcess, influxd: InfluxdProcess
) -> None:
    config = make_config(mosquitto, influxd, prefix="qihe", database="db", client_id="c")
    data = config.model_dump(mode="json")
    data["mqtt"]["password"] = None
    for hostile in ("a/b", "a+", "#", "has space", ""):
        data["mqtt"]["shared_group"] = hostile
        with pytest.raises(ValidationError, match="shared_group"):
            ConsumerConfig.model_validate(data)


def test_a_member_that_is_away_gets_its_share_when_it_returns_and_nothing_is_doubled(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    publisher: mqtt.Client,
    topic_prefix: str,
    influx_db: str,
    unique_name: str,
) -> None:
    """Mosquitto 2.0 keeps dealing messages to a member whose session persists while it is
    disconnected: that share waits in its session (for ``session_expiry``) and is written
    when it comes back — late, not lost and not doubled (docs/benchmarks.md, scaling out)."""
    tree = TopicTree(topic_prefix)

    def publish(first: int, count: int) -> None:
        for n in range(first, first + count):
            reading = _reading(0, n)
            topic = tree.reading(reading.site, reading.gateway, reading.kind, reading.sensor)
            publisher.publish(topic, encode_payload(reading), qos=1)

    with ExitStack() as stack:
        (a, a_writer), (b, b_writer) = _shared_consumers(
            mosquitto, influxd, stack, prefix=topic_prefix, database=influx_db, name=unique_name
        )
        publish(0, 100)
        wait_until(lambda: a.stats().acked + b.stats().acked >= 100, "the first 100", 20)
        a.stop()
        before = b.stats().acked
        publish(100, 100)
        wait_until(lambda: b.stats().acked - before >= 30, "b to take messages while a is away")
        time.sleep(0.5)  # the rest of b's share
        # The broker dealt a share to a's session too: it is not written yet.
        waiting = 200 - a.stats().acked - b.stats().acked
        assert waiting > 0
        back, back_writer = _member(
            mosquitto,
            influxd,
            stack,
            prefix=topic_prefix,
            database=influx_db,
            client_id=f"{unique_name}-a",
        )
        wait_until(lambda: back.stats().acked >= waiting, "a's share to arrive when it returns", 20)

    lines = a_writer.lines + b_writer.lines + back_writer.lines
    assert len(lines) == len(set(lines)) == 200
    rows = influxd.rows("SELECT COUNT(occupied) FROM seat", influx_db)
    assert rows[0]["count"] == 200
