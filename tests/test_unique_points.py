"""Two readings of one sensor are two InfluxDB points, whatever the clock says.

A point's identity is measurement + tags + time, so every source stamps through
``edge.stamps.Stamper``: a sensor's stamps only grow, and a serial link leaves one free
microsecond per sequence number for the late fillers of a gap (``docs/influxdb.md``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from central.consumer.service import Consumer
from devstack import InfluxdProcess, MosquittoProcess
from edge.clock import ClockGuard
from edge.config import GatewayConfig, GpioInputConfig
from edge.gateway import Gateway
from edge.normalise import FrameNormaliser
from edge.sources.gpio import GpioSource
from edge.stamps import Stamper, from_micros, micros
from firmware_bridge.messages import Frame, Hello, Seat, SensorKind, SensorRef
from qihe.contract import Reading, SeatReading
from tests.mqtt_helpers import running, wait_until
from tests.test_consumer import make_config
from tests.test_gateway_serial import PtyBoard

#: A clock that never moves: the worst case for point identity.
FROZEN = datetime(2026, 12, 31, 15, 59, 59, 999_999, tzinfo=UTC)


def frozen() -> datetime:
    return FROZEN


def seat(seq: int, index: int, occupied: bool) -> Frame:
    return Frame(seq=seq, message=Seat(seat=index, occupied=occupied))


def test_a_stamper_on_a_frozen_clock_still_gives_growing_stamps() -> None:
    stamps = Stamper(frozen)
    assert [stamps() for _ in range(3)] == [
        FROZEN,
        FROZEN + timedelta(microseconds=1),
        FROZEN + timedelta(microseconds=2),
    ]


def test_a_stamper_follows_the_clock_when_it_is_ahead_and_steps_when_it_goes_back() -> None:
    now = [FROZEN]
    stamps = Stamper(lambda: now[0])
    first = stamps.next_us()
    now[0] = FROZEN + timedelta(seconds=1)
    assert stamps.next_us() == first + 1_000_000
    now[0] = FROZEN - timedelta(hours=1)  # the clock stepped back (NTP)
    assert stamps.next_us(step=5) == first + 1_000_005


def test_micros_round_trip_exactly_across_the_year_end() -> None:
    moment = datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    assert from_micros(micros(moment)) == moment
    assert from_micros(micros(moment) + 1) == datetime(2027, 1, 1, tzinfo=UTC)


def test_two_changes_of_one_seat_decoded_in_the_same_microsecond_get_two_times() -> None:
    normaliser = FrameNormaliser("qibin-taoyuan", "gw1", "taoyuan-a", clock=frozen)
    first = normaliser.on_frame(seat(1, 3, True))
    second = normaliser.on_frame(seat(2, 3, False))
    assert isinstance(first, SeatReading) and isinstance(second, SeatReading)
    assert second.ts > first.ts


def test_late_gap_fillers_fall_strictly_between_their_neighbours_on_a_frozen_clock() -> None:
    normaliser = FrameNormaliser("qibin-taoyuan", "gw1", "taoyuan-a", clock=frozen)
    stamps: dict[int, datetime] = {}
    # 1 arrives, 2 and 3 are lost to noise, 4 reveals the gap, the board resends 2 and 3.
    for seq, occupied in ((1, True), (4, False), (2, False), (3, True)):
        reading = normaliser.on_frame(seat(seq, 3, occupied))
        assert reading is not None
        stamps[seq] = reading.ts
    assert stamps[1] < stamps[2] < stamps[3] < stamps[4]


def test_a_new_boot_keeps_its_stamps_after_the_old_boots() -> None:
    normaliser = FrameNormaliser("qibin-taoyuan", "gw1", "taoyuan-a", clock=frozen)
    before = normaliser.on_frame(seat(500, 1, True))
    hello = Hello("taoyuan-a", (1, 0, 0), 60, (SensorRef(SensorKind.SEAT, 1),), boot=7)
    normaliser.on_frame(Frame(seq=0, message=hello))
    after = normaliser.on_frame(seat(1, 1, False))
    assert before is not None and after is not None
    assert after.ts > before.ts


def test_a_board_restarted_unseen_gets_stamps_after_its_old_boots_even_for_its_resends() -> None:
    normaliser = FrameNormaliser("qibin-taoyuan", "gw1", "taoyuan-a", clock=frozen)
    old = [normaliser.on_frame(seat(seq, 1, seq % 2 == 0)) for seq in (5000, 5001)]
    # The board rebooted, its HELLO was lost: frame 3 of the new boot, then its resends.
    new = [normaliser.on_frame(seat(seq, 1, seq % 2 == 0)) for seq in (3, 1, 2)]
    stamps = [r.ts for r in old + new if r is not None]
    assert len(stamps) == 5 and len(set(stamps)) == 5
    assert max(stamps[:2]) < min(stamps[2:])
    assert stamps[3] < stamps[4] < stamps[2]  # the resends 1 and 2 fall before 3, in order


def test_held_readings_keep_distinct_times_once_the_clock_is_set() -> None:
    class NeverSynchronised:
        def synchronised(self) -> bool:
            return False

    guard = ClockGuard(NeverSynchronised(), monotonic=lambda: 1234.5)
    stamps = [guard.untrusted_stamp() for _ in range(1000)]
    assert all(isinstance(s, float) for s in stamps)
    offset = 1_798_732_800.0 - 1234.5  # the Shanghai new year, as NTP would tell it
    true_times = {datetime.fromtimestamp(s + offset, UTC) for s in stamps if s is not None}
    assert len(true_times) == 1000


def test_two_gpio_edges_in_one_microsecond_are_two_readings() -> None:
    readings: list[Reading] = []
    source = GpioSource(
        (),
        site="shancheng-dongxiang",
        gateway="gw1",
        emit=readings.append,
        pin_factory=MockFactory(),
        clock=frozen,
    )
    config = GpioInputConfig.model_validate({"pin": 27, "kind": "seat", "sensor": "seat-1"})
    first, second = source._reading(config, True), source._reading(config, False)
    assert second.ts > first.ts


@pytest.mark.integration
async def test_two_changes_of_one_seat_in_one_serial_write_land_as_two_points(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    unique_name: str,
    tmp_path: Path,
) -> None:
    board = PtyBoard(tmp_path / "usb-qihe_board-a")
    config = GatewayConfig.model_validate(
        {
            "site": "qibin-taoyuan",
            "gateway": "gw1",
            "state_dir": tmp_path / "state",
            "broker": {
                "host": mosquitto.host,
                "port": mosquitto.port,
                "topic_prefix": topic_prefix,
            },
            "serial": [{"path": str(board.link), "device": "taoyuan-a"}],
        }
    )
    consumer = Consumer(
        make_config(
            mosquitto,
            influxd,
            prefix=topic_prefix,
            database=influx_db,
            client_id=f"consumer-{unique_name}",
        )
    )
    consumer.start()
    # The gateway's clock is frozen: every frame is decoded "at the same time".
    gateway = Gateway(config, clock=frozen)
    try:
        async with running(gateway):
            await asyncio.wait_for(gateway.serial_sources[0].connected.wait(), 10)
            hello = Hello("taoyuan-a", (1, 0, 0), 60, (SensorRef(SensorKind.SEAT, 3),), boot=1)
            board.send(
                Frame(seq=0, message=hello),
                seat(1, 3, True),
                seat(2, 3, False),
                seat(3, 3, True),
            )

            def seat_points() -> list[object]:
                rows = influxd.rows('SELECT "occupied" FROM "seat"', influx_db)
                return [row["occupied"] for row in rows]

            await wait_until(lambda: len(seat_points()) >= 3, timeout=15)
            # All three, in the board's order: none overwrote another.
            assert seat_points() == [True, False, True]
    finally:
        consumer.stop()
        board.unplug()
