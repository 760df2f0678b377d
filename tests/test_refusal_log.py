"""Refused messages are logged in bounded lines: the first of each problem, then a summary per
interval. Driven with an injected clock: no waiting, no wall time."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from central.consumer.intake import to_delivery
from central.refusal_log import RefusalLog
from qihe.contract import TopicTree

T0 = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)
LOGGER = "central.test_refusal_log"
TREE = TopicTree("qihe")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def seat(sensor: str, **changes: object) -> bytes:
    document = {"schema": 1, "kind": "seat", "site": "qibin-taoyuan", "gateway": "gw1",
                "device": "board-a", "sensor": sensor, "ts": "2026-11-28T01:02:03Z",
                "occupied": True, **changes}  # fmt: skip
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


def bad_message(i: int) -> tuple[str, bytes]:
    """Message ``i`` of a flood: three kinds of problem, every message on its own topic."""
    sensor = f"board-a.{i}"
    topic = f"qihe/v1/qibin-taoyuan/gw1/seat/{sensor}"
    match i % 3:
        case 0:
            return topic, seat(sensor, occupied="true")
        case 1:  # a topic the consumer subscribes to, with a sensor level that is no id
            return f"{topic}=x", seat(sensor)
        case _:
            return topic, seat(sensor, schema=...)


def refuse(log: RefusalLog, topic: str, payload: bytes, now: datetime) -> None:
    delivery = to_delivery(
        TREE, mid=1, qos=1, connection=1, topic=topic, payload=payload, received_at=now
    )
    assert delivery.reason is not None and delivery.reason_key is not None
    log.refused(topic, delivery.reason, delivery.reason_key)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_a_flood_on_varying_topics_gives_one_line_per_problem_and_a_summary_per_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    log = RefusalLog(logging.getLogger(LOGGER), "consumer", clock=clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for i in range(9_500):  # one every 15 ms: 142.5 s
            clock.now = T0 + timedelta(milliseconds=15 * i)
            refuse(log, *bad_message(i), clock.now)
        log.flush()  # the consumer's stop
    logged = lines(caplog)
    assert len(logged) == 6
    assert [line.split(" / ")[1].split(" on ")[0] for line in logged[:3]] == [
        "refusing a message"
    ] * 3
    assert "qihe/v1/qibin-taoyuan/gw1/seat/board-a.0: payload: seat.occupied: " in logged[0]
    assert "qihe/v1/qibin-taoyuan/gw1/seat/board-a.1=x: topic: " in logged[1]
    assert "board-a.2: payload: seat.schema: Field required" in logged[2]
    # Messages 3..4003 (4001) counted from 0.045 s; the one at 60.045 s makes it due. Equal
    # counts are listed by name.
    assert logged[3] == (
        "consumer: 过去 60 秒又拒收 4001 条消息 / 4001 more bad messages in the last 60 s: "
        "1334 × seat.occupied: bool_type; 1334 × topic; 1333 × seat.schema: missing"
    )
    assert logged[4] == (
        "consumer: 过去 60 秒又拒收 4001 条消息 / 4001 more bad messages in the last 60 s: "
        "1334 × seat.occupied: bool_type; 1334 × seat.schema: missing; 1333 × topic"
    )
    # 8005..9499 (1495) at the stop, 22.4 s after the first of them.
    assert logged[5] == (
        "consumer: 过去 22 秒又拒收 1495 条消息 / 1495 more bad messages in the last 22 s: "
        "499 × topic; 498 × seat.occupied: bool_type; 498 × seat.schema: missing"
    )


def test_a_single_refusal_is_logged_once_and_never_summarised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    log = RefusalLog(logging.getLogger(LOGGER), "live", clock=clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        refuse(log, *bad_message(0), clock.now)
        clock.now += timedelta(hours=1)
        log.tick()
        log.flush()
    assert len(lines(caplog)) == 1


def test_a_due_summary_is_logged_by_the_tick_without_another_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    log = RefusalLog(logging.getLogger(LOGGER), "alerts", clock=clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for i in (0, 3, 6):
            refuse(log, *bad_message(i), clock.now)
        clock.now += timedelta(seconds=59)
        log.tick()
        assert len(lines(caplog)) == 1
        clock.now += timedelta(seconds=1)
        log.tick()
        log.tick()
    assert lines(caplog)[1:] == [
        "alerts: 过去 60 秒又拒收 2 条消息 / 2 more bad messages in the last 60 s: "
        "2 × seat.occupied: bool_type"
    ]


def test_a_summary_names_the_five_most_frequent_problems_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    log = RefusalLog(logging.getLogger(LOGGER), "consumer", clock=clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for key in range(8):
            for _ in range(key + 2):  # key k: one first line, k + 1 counted
                log.refused("t", "r", f"problem {key}")
        log.flush()
    assert lines(caplog)[8:] == [
        "consumer: 过去 0 秒又拒收 36 条消息 / 36 more bad messages in the last 0 s: "
        "8 × problem 7; 7 × problem 6; 6 × problem 5; 5 × problem 4; 4 × problem 3; "
        "6 × 3 other reasons"
    ]
