"""Refused publishes without a broker: the per-sensor retry queue, the counters, the doctor file."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from central.consumer.points import reading_line
from edge.config import GatewayConfig
from edge.doctor import check_refusals
from edge.gateway import Gateway
from edge.outbox import StoredReading
from edge.refusals import HeldReadings, RefusalCounter, read_refusals, write_refusals
from qihe.contract import PayloadError, parse_reading
from qihe.mqtt import PublishRefusedError

NOT_AUTHORIZED = PublishRefusedError("qihe/v1/s/gw1/door/entrance", 0x87, "Not authorized")
QUOTA = PublishRefusedError("qihe/v1/s/gw1/seat/a.1", 0x97, "Quota exceeded")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def row(id_: int, kind: str = "door", sensor: str = "entrance") -> StoredReading:
    return StoredReading(id_, kind, sensor, b"{}")


def held_readings(clock: FakeClock) -> HeldReadings:
    return HeldReadings(minimum=1.0, maximum=8.0, clock=clock, rng=random.Random(7))


def test_a_refused_reading_is_retried_only_after_its_backoff() -> None:
    clock = FakeClock()
    held = held_readings(clock)
    held.refused(row(1), NOT_AUTHORIZED)
    assert held.due() == []
    due = held.next_due()
    assert due is not None and 100.5 <= due <= 101.0  # half the first step, up to all of it
    clock.now = due
    assert held.due() == [row(1)]
    assert held.due() == []  # on the wire: not handed out twice


def test_later_readings_of_a_held_sensor_wait_behind_it_and_follow_in_order() -> None:
    clock = FakeClock()
    held = held_readings(clock)
    held.refused(row(1), NOT_AUTHORIZED)
    for later in (row(3), row(5)):
        assert held.blocks(later)
        held.hold(later)
    assert not held.blocks(row(4, "seat", "a.1"))  # other sensors flow
    assert len(held) == 3
    clock.now += 10
    sent = []
    while batch := held.due():
        [oldest] = batch
        sent.append(oldest.id)
        held.accepted(oldest)
    assert sent == [1, 3, 5]
    assert len(held) == 0 and not held.blocks(row(6))


def test_a_retry_refused_again_backs_off_twice_as_long_up_to_the_cap() -> None:
    clock = FakeClock()
    held = held_readings(clock)
    held.refused(row(1), NOT_AUTHORIZED)
    ceilings = []
    for _ in range(6):
        clock.now = held.next_due() or clock.now
        [retry] = held.due()
        held.retry_refused(retry, NOT_AUTHORIZED)
        due = held.next_due()
        assert due is not None
        ceilings.append(due - clock.now)
    # Jitter between half the ceiling and the ceiling: 2, 4, 8, 8, 8, 8 (cap 8).
    for delay, ceiling in zip(ceilings, (2, 4, 8, 8, 8, 8), strict=True):
        assert ceiling / 2 <= delay <= ceiling


def test_a_sensor_accepted_again_starts_its_backoff_from_the_minimum() -> None:
    clock = FakeClock()
    held = held_readings(clock)
    held.refused(row(1), NOT_AUTHORIZED)
    held.hold(row(2))
    for _ in range(3):
        clock.now = held.next_due() or clock.now
        [retry] = held.due()
        held.retry_refused(retry, NOT_AUTHORIZED)
    clock.now = held.next_due() or clock.now
    [first] = held.due()
    held.accepted(first)
    assert held.next_due() == clock.now  # the next one at once
    [second] = held.due()
    held.retry_refused(second, NOT_AUTHORIZED)
    due = held.next_due()
    assert due is not None and 0.5 <= due - clock.now <= 1.0


def test_a_retry_cut_off_by_a_lost_connection_is_due_again() -> None:
    clock = FakeClock()
    held = held_readings(clock)
    held.refused(row(1), NOT_AUTHORIZED)
    clock.now += 5
    [retry] = held.due()
    held.released(retry)
    assert held.due() == [row(1)]


def test_refusals_are_counted_by_kind_and_reason_once_per_message() -> None:
    counter = RefusalCounter(clock=FakeClock())
    counter.count("door", NOT_AUTHORIZED)
    counter.count("door", NOT_AUTHORIZED)
    counter.count("door", NOT_AUTHORIZED, again=True)  # a retry of one counted already
    counter.count("seat", QUOTA)
    snapshot = counter.snapshot(held=2)
    assert snapshot.total == 3
    assert snapshot.by_kind == {("door", 0x87): 2, ("seat", 0x97): 1}
    assert snapshot.held == 2
    assert snapshot.describe() == ("door 0x87 Not authorized ×2, seat 0x97 Quota exceeded ×1")


def test_each_reason_is_logged_once_per_interval_naming_topic_and_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    counter = RefusalCounter(clock=clock, log_every=60)
    with caplog.at_level(logging.WARNING, logger="edge.refusals"):
        for _ in range(5):
            counter.count("door", NOT_AUTHORIZED)
        counter.count("seat", QUOTA)
        clock.now += 61
        counter.count("door", NOT_AUTHORIZED)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[0].startswith("代理拒绝了发布")
    assert "qihe/v1/s/gw1/door/entrance: 0x87 Not authorized" in lines[0]
    assert "0x97 Quota exceeded" in lines[1]
    assert "(4 more refusals for this reason since the last such line)" in lines[2]


def test_the_doctors_file_reads_back_what_the_gateway_wrote(tmp_path: Path) -> None:
    counter = RefusalCounter(clock=FakeClock())
    counter.count("door", NOT_AUTHORIZED)
    path = tmp_path / "publish-refusals.json"
    write_refusals(path, counter.snapshot(held=1), datetime(2026, 12, 1, tzinfo=UTC))
    back = read_refusals(path)
    assert back is not None
    assert (back.total, back.held, back.by_kind) == (1, 1, {("door", 0x87): 1})
    assert back.names == {0x87: "Not authorized"}
    assert back.last_topic == "qihe/v1/s/gw1/door/entrance"


def test_a_doctors_file_that_makes_no_sense_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "publish-refusals.json"
    path.write_text('{"refused": 1}')
    with pytest.raises(ValueError, match="not what the gateway writes"):
        read_refusals(path)
    assert read_refusals(tmp_path / "absent.json") is None


def test_a_reading_held_behind_a_refused_one_counts_with_its_reason_but_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    held = held_readings(clock)
    counter = RefusalCounter(clock=clock)
    held.refused(row(1), NOT_AUTHORIZED)
    later = row(2)
    reason = held.reason(later)
    assert reason is NOT_AUTHORIZED
    assert held.reason(row(3, "seat", "a.1")) is None
    with caplog.at_level(logging.WARNING, logger="edge.refusals"):
        counter.count("door", reason, quiet=True)
    assert counter.snapshot(held=2).by_kind == {("door", 0x87): 1}
    assert caplog.records == []


def test_an_outbox_reading_writes_its_refusals_as_fields_by_kind_and_reason() -> None:
    reading = parse_reading(
        '{"schema": 1, "kind": "outbox", "site": "s", "gateway": "gw1", "device": "gateway",'
        ' "sensor": "gw1", "ts": "2026-11-28T01:05:00Z", "queued": 9, "dropped_periodic": 0,'
        ' "dropped_state": 0, "dropped_clock": 0, "refused": 8, "refused_held": 7,'
        ' "refusals": [{"kind": "door", "reason": 135, "count": 7},'
        ' {"kind": "backlog", "reason": 151, "count": 1}]}'
    )
    fields = reading_line(reading).split(" ")[1]
    assert fields == (
        "queued=9i,dropped_periodic=0i,dropped_state=0i,dropped_clock=0i,refused=8i,"
        "refused_held=7i,refused_door_135=7i,refused_backlog_151=1i"
    )


def test_an_outbox_reading_of_an_older_gateway_writes_no_refusal_fields() -> None:
    reading = parse_reading(
        '{"schema": 1, "kind": "outbox", "site": "s", "gateway": "gw1", "device": "gateway",'
        ' "sensor": "gw1", "ts": "2026-11-28T01:05:00Z", "queued": 9, "dropped_periodic": 0,'
        ' "dropped_state": 0, "dropped_clock": 0}'
    )
    assert "refused" not in reading_line(reading)


@pytest.mark.parametrize(
    ("refusal", "why"),
    [
        ('{"kind": "door", "reason": 16, "count": 1}', "0x10 is a success, not a refusal"),
        ('{"kind": "door", "reason": 135, "count": 0}', "a refusal counted is at least one"),
        ('{"kind": "batch", "reason": 135, "count": 1}', "not a kind of topic"),
        ('{"kind": "door", "reason": "135", "count": 1}', "a reason code is a number"),
    ],
)
def test_a_refusal_entry_that_cannot_be_is_refused_by_the_contract(refusal: str, why: str) -> None:
    with pytest.raises(PayloadError):
        parse_reading(
            '{"schema": 1, "kind": "outbox", "site": "s", "gateway": "gw1", "device": "gateway",'
            ' "sensor": "gw1", "ts": "2026-11-28T01:05:00Z", "queued": 9, "dropped_periodic": 0,'
            f' "dropped_state": 0, "dropped_clock": 0, "refusals": [{refusal}]}}'
        )


def written(tmp_path: Path, *, held: int, refusals: int) -> Path:
    counter = RefusalCounter(clock=FakeClock())
    for _ in range(refusals):
        counter.count("door", NOT_AUTHORIZED)
    path = tmp_path / "publish-refusals.json"
    write_refusals(path, counter.snapshot(held=held), datetime(2026, 12, 1, 2, tzinfo=UTC))
    return tmp_path


def test_doctor_fails_while_refused_readings_are_held_and_says_what_to_fix(
    tmp_path: Path,
) -> None:
    result = check_refusals(written(tmp_path, held=7, refusals=7), "qihe/v1/s/gw1")
    assert result.outcome == "fail"
    assert result.line() == (
        "✗ 代理拒绝 broker refusals: 截至 as of 2026-12-01T02:00:00Z: 代理拒绝了 7 条 the broker"
        " refused 7 (door 0x87 Not authorized ×7); 待重试 7 held for a retry — 检查代理的 ACL"
        " check the broker's ACL: the gateway's user must be allowed to write qihe/v1/s/gw1/#;"
        " 修改后重载 then reload it: sudo systemctl reload mosquitto"
    )


def test_doctor_warns_of_past_refusals_with_nothing_held(tmp_path: Path) -> None:
    result = check_refusals(written(tmp_path, held=0, refusals=2), "qihe/v1/s/gw1")
    assert (result.outcome, result.ok) == ("warn", True)


def test_doctor_passes_a_gateway_that_recorded_no_refusal(tmp_path: Path) -> None:
    assert check_refusals(tmp_path, "qihe/v1/s/gw1").outcome == "pass"
    assert check_refusals(written(tmp_path, held=0, refusals=0), "qihe/v1/s/gw1").ok


def test_doctor_warns_of_a_refusal_file_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "publish-refusals.json").write_text("{not json")
    result = check_refusals(tmp_path, "qihe/v1/s/gw1")
    assert result.outcome == "warn"
    assert "无法读取 unreadable" in result.detail


async def test_a_state_folder_that_takes_no_file_is_logged_and_the_gateway_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_folder = tmp_path / "state"
    not_a_folder.write_text("a file where the state folder should be")
    config = GatewayConfig.model_validate(
        {
            "site": "s",
            "gateway": "gw1",
            "state_dir": not_a_folder,
            "broker": {"host": "127.0.0.1"},
            "gpio": [{"pin": 17, "kind": "door", "sensor": "entrance"}],
        }
    )
    gateway = Gateway(config, pin_factory=MockFactory())
    gateway.publisher.refusals.count("door", NOT_AUTHORIZED)
    with caplog.at_level(logging.WARNING, logger="edge.gateway"):
        await gateway.save_refusals()
    [line] = [r.getMessage() for r in caplog.records if r.name == "edge.gateway"]
    assert line.startswith("无法写入拒绝计数 cannot write the refusal counters to ")
