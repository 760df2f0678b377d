"""Readings taken before the clock is trusted are held, then given their true time."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from gpiozero.pins.mock import MockFactory

from devstack import MosquittoProcess
from edge.clock import ClockGuard, KernelClockSync
from edge.config import GatewayConfig
from edge.gateway import Gateway
from edge.outbox import Outbox
from qihe.contract import SeatReading, encode_payload, parse_reading
from tests.mqtt_helpers import Recorder, running, wait_until

WRONG = datetime(2020, 1, 1, tzinfo=UTC)  # a Pi that booted from an old saved time
HEBI = ZoneInfo("Asia/Shanghai")


class PiClock:
    """A Pi's wall clock: the old saved time until NTP sets it, then ``true_time`` (stopped,
    so the test says exactly when "now" is); also the kernel's "synchronised" flag."""

    def __init__(self, true_time: datetime) -> None:
        self.true_time = true_time
        self.on = False

    def __call__(self) -> datetime:
        return self.true_time if self.on else WRONG

    def synchronised(self) -> bool:
        return self.on


def seat(n: int) -> SeatReading:
    return SeatReading(
        site="s",
        gateway="g",
        device="d",
        sensor="d.1",
        occupied=n % 2 == 0,
        ts=WRONG + timedelta(seconds=n),
        seq=n,
    )


async def test_held_readings_are_not_published_until_restamped(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_readings=100, boot="boot-1")
    await box.open()
    box.put(seat(0), untrusted_at=1000.0)
    box.put(seat(1), untrusted_at=1001.5)
    await box.close()
    box = Outbox(tmp_path / "o.sqlite3", max_readings=100, boot="boot-1")
    await box.open()
    assert await box.fetch(after=0, limit=10) == []
    assert await box.latest_states(box.last_id) == []
    await box.restamp(offset=1_795_000_000.0)  # wall = monotonic + offset
    rows = [parse_reading(r.payload) for r in await box.fetch(after=0, limit=10)]
    assert [r.seq for r in rows] == [0, 1]
    assert [r.ts.timestamp() for r in rows] == [1_795_001_000.0, 1_795_001_001.5]
    await box.close()


@pytest.mark.parametrize("mono", [1000.0, 1001.25], ids=["whole-second", "fraction"])
@pytest.mark.parametrize("where", ["in-store", "in-memory"])
async def test_a_restamped_reading_is_written_as_the_source_would_have_written_it(
    tmp_path: Path, mono: float, where: str
) -> None:
    """Its stored JSON is the contract's one form: byte for byte what ``encode_payload``
    gives the same reading stamped with its true time (no fraction when it is zero)."""
    box = Outbox(tmp_path / "o.sqlite3", max_readings=100, boot="boot-1")
    await box.open()
    box.put(seat(0), untrusted_at=mono)
    if where == "in-store":
        await box._commit()
    await box.restamp(offset=1_795_000_000.0)
    await box._commit()
    (row,) = await box.fetch(after=0, limit=10)
    await box.close()
    true_time = datetime.fromtimestamp(1_795_000_000.0 + mono, UTC)
    assert row.payload == encode_payload(seat(0).model_copy(update={"ts": true_time}))


async def test_held_readings_of_an_earlier_boot_are_dropped_and_counted(tmp_path: Path) -> None:
    first = Outbox(tmp_path / "o.sqlite3", max_readings=100, boot="boot-1")
    await first.open()
    first.put(seat(0), untrusted_at=5.0)
    first.put(seat(1))  # taken with a trusted clock
    await first.close()
    second = Outbox(tmp_path / "o.sqlite3", max_readings=100, boot="boot-2")
    await second.open()
    await second.restamp(offset=1_795_000_000.0)
    assert [parse_reading(r.payload).seq for r in await second.fetch(after=0, limit=10)] == [1]
    assert second.dropped["untrusted_clock"] == 1
    await second.close()


@pytest.mark.parametrize(
    "set_at",
    [
        datetime(2026, 11, 28, 16, 0, tzinfo=UTC),  # midnight in Hebi
        datetime(2026, 11, 30, 16, 0, tzinfo=UTC),  # 1 December in Hebi
        datetime(2026, 12, 31, 16, 0, tzinfo=UTC),  # New Year 2027 in Hebi
    ],
    ids=["local-midnight", "month-end", "year-end"],
)
async def test_a_gateway_holds_readings_until_ntp_then_publishes_their_true_time(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path, set_at: datetime
) -> None:
    """NTP sets the clock at a local midnight: a door opened before it keeps the day it was
    opened on (its true time is worked back from the monotonic clock)."""
    factory = MockFactory()
    pi = PiClock(set_at)
    config = GatewayConfig.model_validate(
        {
            "site": "qixian-qiyuan-daycare",
            "gateway": "gw1",
            "state_dir": tmp_path,
            "broker": {
                "host": mosquitto.host,
                "port": mosquitto.port,
                "topic_prefix": topic_prefix,
            },
            "gpio": [{"pin": 17, "kind": "door", "sensor": "entrance", "debounce": 0.01}],
            "clock": {"require_sync": True, "poll": 0.05},
            "outbox": {"commit_interval": 0.05},
        }
    )
    recorder = Recorder(mosquitto, f"{topic_prefix}/v1/+/+/door/+")
    gateway = Gateway(config, pin_factory=factory, clock=pi, clock_trust=pi)
    try:
        async with running(gateway):
            await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
            before_open = time.monotonic()
            factory.pin(17).drive_high()
            await wait_until(lambda: gateway.stats().readings == 2)
            after_open = time.monotonic()
            await asyncio.sleep(0.3)
            assert recorder.snapshot() == []  # nothing goes out with a 2020 timestamp
            before_set = time.monotonic()
            pi.on = True
            doors = await recorder.until(lambda ms: len(ms) == 2)
            after_set = time.monotonic()
    finally:
        recorder.close()
        factory.reset()
    assert [json.loads(m.payload)["open"] for m in doors] == [False, True]
    opened = datetime.fromisoformat(json.loads(doors[1].payload)["ts"])
    # True time = the clock when set, less the monotonic time between opening and setting.
    earliest = set_at - timedelta(seconds=after_set - before_open)
    latest = set_at - timedelta(seconds=before_set - after_open)
    assert earliest - timedelta(microseconds=1) <= opened <= latest + timedelta(microseconds=1)
    assert opened.utcoffset() == timedelta(0)  # UTC on the wire
    assert opened.astimezone(HEBI).date() == (set_at - timedelta(days=1)).astimezone(HEBI).date()


def test_the_kernel_check_answers_without_privileges() -> None:
    assert KernelClockSync().synchronised() in (True, False)


async def test_a_trusted_clock_needs_no_restamp() -> None:
    class Always:
        def synchronised(self) -> bool:
            return True

    guard = ClockGuard(Always())
    assert guard.untrusted_stamp() is None
    called: list[float] = []

    async def record(offset: float) -> None:
        called.append(offset)

    await guard.run(record)
    assert called == []
