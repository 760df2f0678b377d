"""The strict contract at the consumer, against a real Mosquitto and a real InfluxDB 1.x:
wrong-typed payloads never become points, each is dead-lettered naming its field, valid ones
still land, and a flood of them gives a few log lines."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from central.consumer.config import ConsumerConfig
from central.consumer.service import Consumer
from devstack import InfluxdProcess, MosquittoProcess
from qihe.contract import SeatReading, TopicTree, encode_payload
from tests.contract_doc import DOC, READING_KINDS, wrong_field_cases
from tests.test_consumer import DeadLetters, make_config, publish, wait_until
from tests.test_refusal_log import bad_message

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)
SITE = "qibin-taoyuan"
EXAMPLES = [json.loads(body) for body in re.findall(r"```json reading\n(.*?)```", DOC, flags=re.S)]


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


@pytest.fixture
def dead_letters(mosquitto: MosquittoProcess, config: ConsumerConfig) -> Iterator[DeadLetters]:
    tree = TopicTree(config.mqtt.topic_prefix)
    listener = DeadLetters(mosquitto, tree.dead_letter(config.mqtt.client_id))
    yield listener
    listener.close()


def example(kind: str) -> dict[str, Any]:
    return next(dict(e) for e in EXAMPLES if e["kind"] == kind)


def wrong_typed(tree: TopicTree) -> list[tuple[str, bytes, str]]:
    """(topic, payload, the field its dead letter must name): every refused value the doc's
    types give, for every field of every reading kind, each in the doc's example of the kind,
    on that example's own topic (so it is the payload, not the topic, that is refused)."""
    messages = []
    for kind in READING_KINDS:
        good = example(kind)
        topic = tree.reading(good["site"], good["gateway"], kind, good["sensor"])
        for field, value in wrong_field_cases(kind):
            payload = json.dumps({**good, field: value}, ensure_ascii=False).encode()
            messages.append((topic, payload, f"payload: {kind}.{field}"))
    return messages


def seat(n: int) -> SeatReading:
    return SeatReading(site=SITE, gateway="gw1", device="board-a",
                       sensor=f"board-a.{n}", ts=T0, seq=n, occupied=n % 2 == 0)  # fmt: skip


def test_wrong_typed_payloads_become_no_points_and_each_is_dead_lettered_naming_its_field(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    dead_letters: DeadLetters,
    influxd: InfluxdProcess,
    influx_db: str,
) -> None:
    tree = TopicTree(config.mqtt.topic_prefix)
    bad = wrong_typed(tree)
    # One valid reading before every 40 bad ones, and one after the last.
    valid = [seat(n) for n in range(1, (len(bad) + 39) // 40 + 2)]
    with Consumer(config, clock=lambda: T0) as consumer:
        for n, (topic, payload, _) in enumerate(bad):
            if n % 40 == 0:
                reading = valid[n // 40]
                topic_of_valid = tree.reading(SITE, "gw1", "seat", reading.sensor)
                publish(publisher, topic_of_valid, encode_payload(reading))
            publish(publisher, topic, payload)
        publish(publisher, tree.reading(SITE, "gw1", "seat", valid[-1].sensor),
                encode_payload(valid[-1]))  # fmt: skip
        total = len(bad) + len(valid)
        wait_until(lambda: consumer.stats().acked == total, f"{total} acks", timeout=60)
        wait_until(lambda: len(dead_letters.received) == len(bad), "every dead letter")
        stats = consumer.stats()
    assert (stats.received, stats.invalid, stats.dead_lettered, stats.written_points) == (
        len(bad) + len(valid),
        len(bad),
        len(bad),
        len(valid),
    )
    named = [
        letter["reason"].startswith(field)
        for letter, (_, _, field) in zip(dead_letters.received, bad, strict=True)
    ]
    assert named.count(True) == len(bad)
    measurements = [row["name"] for row in influxd.rows("SHOW MEASUREMENTS", influx_db)]
    assert measurements == ["seat"]
    rows = influxd.rows('SELECT "occupied", "seq", "sensor" FROM "seat"', influx_db)
    assert sorted((r["sensor"], r["occupied"], r["seq"]) for r in rows) == sorted(
        (s.sensor, int(s.occupied), s.seq) for s in valid
    )


def test_a_flood_of_bad_messages_on_varying_topics_logs_one_line_per_problem_and_a_summary(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tree = TopicTree(config.mqtt.topic_prefix)
    with caplog.at_level(logging.WARNING, logger="central"):
        with Consumer(config, clock=lambda: T0) as consumer:
            for i in range(300):
                topic, payload = bad_message(i)
                publish(publisher, topic.replace("qihe/v1", tree.root, 1), payload)
            wait_until(lambda: consumer.stats().acked == 300, "300 acks", timeout=30)
        refusals = [r.getMessage() for r in caplog.records if "拒收" in r.getMessage()]
    assert consumer.stats().invalid == 300
    assert len(refusals) == 4
    assert [
        line.startswith("consumer: 拒收消息 / refusing a message on ") for line in refusals
    ] == [
        True,
        True,
        True,
        False,
    ]
    assert refusals[3] == (  # the clock stands still: only the stop logs the summary
        "consumer: 过去 0 秒又拒收 297 条消息 / 297 more bad messages in the last 0 s: "
        "99 × seat.occupied: bool_type; 99 × seat.schema: missing; 99 × topic"
    )
