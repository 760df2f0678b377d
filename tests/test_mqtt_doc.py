"""docs/mqtt.md is checked against the wire contract: every example must validate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qihe.contract import (
    READING_KINDS,
    PayloadError,
    TopicError,
    TopicTree,
    encode_batch,
    encode_payload,
    parse_batch,
    parse_reading,
    parse_status,
)

DOC = (Path(__file__).resolve().parent.parent / "docs" / "mqtt.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(json reading|json status|json batch|topics)\n(.*?)```", DOC, flags=re.S)


def blocks(tag: str) -> list[str]:
    return [body for kind, body in BLOCKS if kind == tag]


@pytest.mark.parametrize("example", blocks("json reading"))
def test_every_reading_example_validates_and_round_trips(example: str) -> None:
    reading = parse_reading(example)
    assert parse_reading(encode_payload(reading)) == reading


def test_the_doc_shows_an_example_of_every_reading_kind() -> None:
    shown = {parse_reading(example).kind for example in blocks("json reading")}
    assert shown == set(READING_KINDS)


@pytest.mark.parametrize("example", blocks("json batch"))
def test_the_backlog_batch_example_validates(example: str) -> None:
    batch = parse_batch(example)
    assert batch.historical
    assert [r.kind for r in batch.readings] == ["seat", "people"]


def test_a_batch_may_not_carry_another_gateways_reading() -> None:
    example = blocks("json batch")[0].replace(
        '"gateway": "gw1", "device"', '"gateway": "gw9", "device"', 1
    )
    with pytest.raises(PayloadError, match=r"readings\.0: site/gateway qibin-taoyuan/gw9"):
        parse_batch(example)


def test_encode_batch_keeps_each_reading_byte_for_byte() -> None:
    readings = [parse_reading(example) for example in blocks("json reading")[:3]]
    payload = encode_batch("qibin-taoyuan", "gw1", [encode_payload(r) for r in readings])
    assert parse_batch(payload).readings == tuple(readings)
    assert all(encode_payload(r) in payload for r in readings)


@pytest.mark.parametrize("example", blocks("json status"))
def test_every_status_example_validates(example: str) -> None:
    assert parse_status(example).state in {"online", "offline"}


@pytest.mark.parametrize("topic", blocks("topics")[0].split())
def test_every_example_topic_parses(topic: str) -> None:
    parts = TopicTree("qihe").parse(topic)
    assert parts.site == "qibin-taoyuan"


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        pytest.param(b"not json", "Invalid JSON", id="not-json"),
        pytest.param(b'{"schema": 1, "kind": "sofa"}', "does not match any", id="unknown-kind"),
        pytest.param(
            b'{"schema": 2, "kind": "door", "site": "a", "gateway": "g", "device": "d",'
            b' "sensor": "s", "ts": "2026-11-28T00:00:00Z", "open": true}',
            "schema",
            id="future-schema",
        ),
        pytest.param(
            b'{"schema": 1, "kind": "door", "site": "a/b", "gateway": "g", "device": "d",'
            b' "sensor": "s", "ts": "2026-11-28T00:00:00Z", "open": true}',
            "site",
            id="slash-in-site",
        ),
        pytest.param(
            '{"schema": 1, "kind": "door", "site": "桃园", "gateway": "g", "device": "d",'
            ' "sensor": "s", "ts": "2026-11-28T00:00:00Z", "open": true}'.encode(),
            "site",
            id="chinese-in-id",
        ),
        pytest.param(
            b'{"schema": 1, "kind": "door", "site": "a", "gateway": "g", "device": "d",'
            b' "sensor": "s", "ts": "2026-11-28T00:00:00", "open": true}',
            "ts",
            id="naive-timestamp",
        ),
        pytest.param(
            b'{"schema": 1, "kind": "door", "site": "a", "gateway": "g", "device": "d",'
            b' "sensor": "s", "ts": "2026-11-28T00:00:00Z", "open": true, "extra": 1}',
            "extra",
            id="unknown-field",
        ),
        pytest.param(
            b'{"schema": 1, "kind": "people", "site": "a", "gateway": "g", "device": "d",'
            b' "sensor": "s", "ts": "2026-11-28T00:00:00Z", "in_total": -1, "out_total": 0}',
            "in_total",
            id="negative-counter",
        ),
    ],
)
def test_bad_payloads_are_refused_with_a_reason(payload: bytes, complaint: str) -> None:
    with pytest.raises(PayloadError, match=complaint):
        parse_reading(payload)


@pytest.mark.parametrize(
    "topic",
    [
        "qihe/v1/site/gw1/seat",  # no sensor
        "qihe/v1/site/gw1/sofa/x",  # unknown kind
        "qihe/v1/site/gw1/cmd/board-a",  # a command, not a reading
        "other/v1/site/gw1/status",
        "qihe/v1/si+te/gw1/status",
        "qihe/v1/site/gw1/seat/a/b",
    ],
)
def test_topics_outside_the_tree_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        TopicTree("qihe").parse(topic)


@pytest.mark.parametrize("hostile", ["a/b", "+", "#", "a b", "", "鹤壁", "_dead_letter"])
def test_ids_that_could_escape_a_topic_level_are_refused(hostile: str) -> None:
    with pytest.raises(TopicError):
        TopicTree("qihe").reading(hostile, "gw1", "seat", "s1")


def test_every_reading_kind_is_either_retained_state_or_periodic_telemetry() -> None:
    from qihe.contract import PERIODIC_KINDS, RETAINED_KINDS

    assert {"heartbeat", "link", "outbox", "system", "air", "battery"} == PERIODIC_KINDS
    assert set(READING_KINDS) == PERIODIC_KINDS | RETAINED_KINDS
