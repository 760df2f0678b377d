"""Several writes in flight, acknowledgements in message order (issue 17).

The window's bookkeeping alone (no I/O), then the consumer against the real Mosquitto and the
real InfluxDB 1.x, with one batch's requests failing through the session's transport seam while
the batch after it is written: nothing is acked out of order, nothing lost, nothing doubled.
"""

from __future__ import annotations

import gzip
import threading
from datetime import timedelta
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from central.consumer.config import ConsumerConfig
from central.consumer.service import Consumer
from central.consumer.window import AckWindow
from central.influx import InfluxV1Writer
from central.influx.config import InfluxV1Config
from devstack import InfluxdProcess, MosquittoProcess
from qihe.contract import TopicTree, encode_payload
from tests.test_consumer import (
    T0_NS,
    acked,
    count,
    make_config,
    publish_reading,
    seat,
    wait_until,
)

# The window alone ---------------------------------------------------------------------------


def test_batches_are_released_in_the_order_taken_whatever_order_they_are_written_in() -> None:
    released: list[str] = []
    window: AckWindow[str] = AckWindow(3, released.append)
    first, second, third = (window.add(name) for name in ("b1", "b2", "b3"))
    window.finish(third, written=True)
    window.finish(second, written=True)
    assert released == []  # b1 is still being written
    window.finish(first, written=True)
    assert released == ["b1", "b2", "b3"]
    assert len(window) == 0


def test_a_batch_never_written_holds_every_batch_after_it() -> None:
    released: list[str] = []
    window: AckWindow[str] = AckWindow(3, released.append)
    first, second, third = (window.add(name) for name in ("b1", "b2", "b3"))
    window.finish(first, written=True)
    window.finish(second, written=False)  # shutdown gave up on it
    window.finish(third, written=True)
    assert released == ["b1"]
    assert window.stalled
    assert window.wait_empty(0)  # nothing more will happen: settled, not empty
    assert len(window) == 2


def test_the_window_has_room_for_its_size_until_a_batch_is_released() -> None:
    window: AckWindow[str] = AckWindow(2, lambda batch: None)
    first = window.add("b1")
    second = window.add("b2")
    assert not window.wait_for_room(0)
    window.finish(second, written=True)  # written, but waits behind b1: still no room
    assert not window.wait_for_room(0)
    window.finish(first, written=True)
    assert window.wait_for_room(0)


def test_a_batchs_turn_comes_once_every_batch_before_it_is_released() -> None:
    window: AckWindow[str] = AckWindow(2, lambda batch: None)
    first = window.add("b1")
    second = window.add("b2")
    assert window.wait_turn(first)  # the head's turn is now
    turns: list[bool] = []
    waiter = threading.Thread(target=lambda: turns.append(window.wait_turn(second)))
    waiter.start()
    window.finish(first, written=True)
    waiter.join(5)
    assert turns == [True]


def test_no_turn_comes_behind_a_batch_that_is_never_written() -> None:
    window: AckWindow[str] = AckWindow(2, lambda batch: None)
    first = window.add("b1")
    second = window.add("b2")
    turns: list[bool] = []
    waiter = threading.Thread(target=lambda: turns.append(window.wait_turn(second)))
    waiter.start()
    window.finish(first, written=False)
    waiter.join(5)
    assert turns == [False]


def test_a_window_of_no_batches_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one batch"):
        AckWindow(0, lambda batch: None)


# The consumer, real broker and InfluxDB --------------------------------------------------------


class FailingBatch(httpx.BaseTransport):
    """Passes requests to the real InfluxDB, except writes holding ``marker``: those fail as
    if InfluxDB could not be reached, until ``heal`` is set."""

    def __init__(self, marker: bytes) -> None:
        self._real = httpx.HTTPTransport()
        self._marker = marker
        self.heal = threading.Event()
        self.failed = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        held = request.url.path == "/write" and self._marker in request.read()
        if held and not self.heal.is_set():
            self.failed += 1
            raise httpx.ConnectError("refused by the test", request=request)
        return self._real.handle_request(request)

    def close(self) -> None:
        self._real.close()


def overlap_config(
    mosquitto: MosquittoProcess, influxd: InfluxdProcess, database: str, name: str, **top: Any
) -> ConsumerConfig:
    # Batches of exactly 5 points: the writer waits (up to 1 s) for 5 before writing.
    return make_config(
        mosquitto, influxd, prefix=f"test/{name}", database=database, client_id=f"c-{name}",
        batch_size=5, flush_interval=2, flush_idle=1, writes_in_flight=2, **top,
    )  # fmt: skip


def publish_all(client: mqtt.Client, tree: TopicTree, sensors: range) -> None:
    """Every reading at once (QoS 1), then wait for the broker to have them all."""
    infos = []
    for i in sensors:
        reading = seat(f"board-a.{i}", i % 2 == 0)
        topic = tree.reading(reading.site, reading.gateway, reading.kind, reading.sensor)
        infos.append(client.publish(topic, encode_payload(reading), qos=1))
    for info in infos:
        info.wait_for_publish(5)


def test_a_batch_written_during_an_earlier_batchs_retry_is_acked_only_after_it(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    unique_name: str,
    publisher: mqtt.Client,
) -> None:
    config = overlap_config(mosquitto, influxd, influx_db, unique_name)
    assert isinstance(config.influx, InfluxV1Config)
    tree = TopicTree(config.mqtt.topic_prefix)
    transport = FailingBatch(b"sensor=board-a.0,")  # the first batch: board-a.0 to .4
    writer = InfluxV1Writer(config.influx, transport=transport)
    with Consumer(config, writer=writer) as consumer:
        publish_all(publisher, tree, range(10))
        wait_until(
            lambda: consumer.stats().written_points == 5 and transport.failed >= 2,
            "the second batch written while the first one fails",
        )
        held = consumer.stats()
        # Written but not acked: its PUBACKs would overtake the first batch's.
        assert (held.received, held.acked, held.pending, held.batches) == (10, 0, 10, 0)
        assert count(influxd, influx_db, "seat", "occupied") == 5
        transport.heal.set()
        wait_until(acked(consumer, 10), "every message acked once the first batch is written")
        stats = consumer.stats()
    assert (stats.written_points, stats.batches, stats.pending) == (10, 2, 0)
    assert count(influxd, influx_db, "seat", "occupied") == 10
    # The broker took every PUBACK: the next session of this client gets nothing again
    # (a redelivered message would come before this new one).
    with Consumer(config) as again:
        publish_reading(publisher, tree, seat("board-a.99", True))
        wait_until(acked(again, 1), "the new message")
        assert again.stats().received == 1


def test_batches_written_behind_one_given_up_at_stop_come_again_and_land_once(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    unique_name: str,
    publisher: mqtt.Client,
) -> None:
    config = overlap_config(
        mosquitto, influxd, influx_db, unique_name, stop_timeout=timedelta(seconds=0.3)
    )
    assert isinstance(config.influx, InfluxV1Config)
    tree = TopicTree(config.mqtt.topic_prefix)
    transport = FailingBatch(b"sensor=board-a.0,")  # never heals
    first = Consumer(config, writer=InfluxV1Writer(config.influx, transport=transport))
    first.start()
    try:
        publish_all(publisher, tree, range(10))
        wait_until(lambda: first.stats().written_points == 5, "the second batch written")
    finally:
        first.stop()
    # The second batch is in InfluxDB, yet unacked like the first: acking it alone would
    # acknowledge messages out of order.
    assert first.stats().acked == 0
    assert count(influxd, influx_db, "seat", "occupied") == 5
    with Consumer(config) as second:  # same session: the broker sends all ten again
        wait_until(acked(second, 10), "all ten redelivered and acked")
        assert second.stats().received == 10
    # The second batch was written twice: the same points, stored once.
    assert count(influxd, influx_db, "seat", "occupied") == 10


def test_gzip_compressed_writes_land_in_influxdb_1x(
    influxd: InfluxdProcess, influx_db: str
) -> None:
    config = InfluxV1Config(api="v1", url=influxd.url, database=influx_db, gzip=True)
    lines = [
        f"seat,device=board-a,gateway=gw1,sensor=board-a.{i},site=s occupied={i % 2}i {T0_NS + i}"
        for i in range(2000)
    ]
    with InfluxV1Writer(config) as writer:
        writer.write(lines)
    assert count(influxd, influx_db, "seat", "occupied") == 2000
    rows = influxd.rows('SELECT SUM("occupied") FROM "seat"', influx_db)
    assert rows[0]["sum"] == 1000


def test_gzip_write_sends_a_compressed_body() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    config = InfluxV1Config(api="v1", url="http://influx.invalid:8086", database="q", gzip=True)
    with InfluxV1Writer(config, transport=httpx.MockTransport(answer)) as writer:
        writer.write(["m f=1i 1"])
    [request] = seen
    assert request.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(request.read()) == b"m f=1i 1\n"
