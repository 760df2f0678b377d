"""Backlog batches: many readings in one message, written together, acknowledged once."""

from __future__ import annotations

from datetime import timedelta

import paho.mqtt.client as mqtt

from central.consumer.config import ConsumerConfig
from central.consumer.service import Consumer
from devstack import InfluxdProcess
from qihe.contract import TopicTree, encode_batch, encode_payload
from tests.test_consumer import (  # the consumer suite's fixtures and helpers
    T0,
    DeadLetters,
    config,
    dead_letters,
    publish,
    seat,
    tree,
    wait_until,
)

__all__ = ["config", "dead_letters", "tree"]  # fixtures, re-used by name


def batch_of(n: int) -> list[bytes]:
    return [
        encode_payload(seat(f"board-a.{i % 5}", i % 2 == 0, T0 + timedelta(seconds=i)))
        for i in range(n)
    ]


def test_a_backlog_batch_lands_every_reading_and_is_acked_once(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    tree: TopicTree,
    influxd: InfluxdProcess,
    influx_db: str,
) -> None:
    with Consumer(config) as consumer:
        publish(
            publisher,
            tree.backlog("qibin-taoyuan", "gw1"),
            encode_batch("qibin-taoyuan", "gw1", batch_of(700)),
        )
        wait_until(lambda: consumer.stats().acked == 1, "the batch acked")
        stats = consumer.stats()
    assert (stats.received, stats.written_points) == (1, 700)
    rows = influxd.rows('SELECT "occupied" FROM "seat"', influx_db)
    assert len(rows) == 700
    assert [row["occupied"] for row in rows[:4]] == [1, 0, 1, 0]


def test_a_batch_for_another_gateway_than_its_topic_is_dead_lettered_whole(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    tree: TopicTree,
    dead_letters: DeadLetters,
    influxd: InfluxdProcess,
    influx_db: str,
) -> None:
    with Consumer(config) as consumer:
        publish(
            publisher,
            tree.backlog("qibin-taoyuan", "gw2"),
            encode_batch("qibin-taoyuan", "gw1", batch_of(3)),
        )
        publish(
            publisher,
            tree.backlog("qibin-taoyuan", "gw1"),
            encode_batch("qibin-taoyuan", "gw1", batch_of(2)),
        )
        wait_until(lambda: consumer.stats().acked == 2, "both acked")
        wait_until(lambda: len(dead_letters.received) == 1, "one dead letter")
    letter = dead_letters.received[0]
    assert letter["topic"].endswith("/gw2/backlog")
    assert "does not match the topic's gateway 'gw2'" in letter["reason"]
    assert len(influxd.rows('SELECT * FROM "seat"', influx_db)) == 2


def test_a_malformed_batch_is_dead_lettered_with_the_reading_at_fault(
    config: ConsumerConfig, publisher: mqtt.Client, tree: TopicTree, dead_letters: DeadLetters
) -> None:
    readings = batch_of(3)
    readings[1] = readings[1].replace(b'"occupied":false', b'"occupied":"maybe"')
    with Consumer(config) as consumer:
        publish(
            publisher,
            tree.backlog("qibin-taoyuan", "gw1"),
            encode_batch("qibin-taoyuan", "gw1", readings),
        )
        wait_until(lambda: consumer.stats().acked == 1, "acked")
        wait_until(lambda: len(dead_letters.received) == 1, "dead letter")
    assert "readings.1" in dead_letters.received[0]["reason"]
