"""The whole pipe: emulated board on a pty → gateway → Mosquitto → consumer → InfluxDB.

What lands in InfluxDB is compared, by InfluxQL, with exactly what the emulator put on the
wire (its journal): every seat change in order, the counter totals, every door event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from gpiozero.pins.mock import MockFactory

from central.consumer.service import Consumer
from central.visitors import increases
from devstack import InfluxdProcess, MosquittoProcess
from edge.config import GatewayConfig
from edge.gateway import Gateway
from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort
from firmware_bridge.messages import Door, People, Seat, Window
from tests.mqtt_helpers import running, wait_until

SITE = "shancheng-xinyuan2"
DEVICE = "xinyuan2-a"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def gateway_config(
    broker: MosquittoProcess, prefix: str, state_dir: Path, **extra: object
) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "site": SITE,
            "gateway": "gw1",
            "state_dir": state_dir,
            "broker": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
            **extra,
        }
    )


def influx_series(influxd: InfluxdProcess, db: str, q: str) -> list[dict[str, object]]:
    return influxd.rows(q, db)


def board_gateway(broker: MosquittoProcess, prefix: str, tmp_path: Path) -> tuple[Path, Gateway]:
    """A gateway reading one board through a stable link (like /dev/serial/by-id)."""
    link = tmp_path / "usb-qihe_board"
    serial = [{"path": str(link), "device": DEVICE}]
    return link, Gateway(gateway_config(broker, prefix, tmp_path, serial=serial))


async def play_board_through_pipe(
    broker: MosquittoProcess,
    prefix: str,
    tmp_path: Path,
    *,
    sim_hours: float,
    start_hour: int,
    **emulator_options: Any,
) -> tuple[BookHouseEmulator, Gateway]:
    """A board plays ``sim_hours`` of a day at 1800x into a gateway; returns both afterwards."""
    emulator = BookHouseEmulator(
        EmulatorConfig(
            device_id=DEVICE,
            speed=1800,
            report_interval_s=300,
            start=datetime(2026, 11, 28, start_hour, 0, tzinfo=SHANGHAI),
            **emulator_options,
        )
    )
    link, gateway = board_gateway(broker, prefix, tmp_path)
    async with PtyPort(link) as port, running(gateway):
        # pyserial empties the input buffer when it opens: attach once the gateway listens.
        await asyncio.wait_for(gateway.serial_sources[0].connected.wait(), 10)
        async with emulator.attach(port):
            await asyncio.sleep(sim_hours * 3600 / emulator.config.speed)
        intact = sum(1 for entry in emulator.journal if not entry.corrupted)
        await wait_until(lambda: gateway.serial_sources[0].counters.frames == intact)
        await wait_until(lambda: len(gateway.outbox) == 0)
    return emulator, gateway


def expected_from_journal(emulator: BookHouseEmulator) -> dict[str, list[object]]:
    """Per sensor, the values the board put on the wire intact, in order."""
    expected: dict[str, list[object]] = defaultdict(list)
    for entry in emulator.journal:
        if entry.corrupted:
            continue
        match entry.frame.message:
            case Seat(seat, occupied):
                expected[f"seat {DEVICE}.{seat}"].append(int(occupied))
            case Door(door, is_open):
                expected[f"door {DEVICE}.{door}"].append(int(is_open))
            case People(counter, in_total, out_total):
                expected[f"people {DEVICE}.{counter}"].append((in_total, out_total))
    return expected


def expected_from_produced(emulator: BookHouseEmulator) -> dict[str, list[object]]:
    """Per sensor, every report the board produced and kept until it was acknowledged."""
    expected: dict[str, list[object]] = defaultdict(list)
    for report in emulator.produced_reports():
        assert report.fate not in ("evicted", "reset"), report
        match report.frame.message:
            case Seat(seat, occupied):
                expected[f"seat {DEVICE}.{seat}"].append(int(occupied))
            case Door(door, is_open):
                expected[f"door {DEVICE}.{door}"].append(int(is_open))
            case People(counter, in_total, out_total):
                expected[f"people {DEVICE}.{counter}"].append((in_total, out_total))
    return expected


async def settles_to(expected: object, actual: Callable[[], object], timeout: float = 15) -> None:
    """Wait until ``actual()`` equals ``expected``; otherwise fail showing the difference."""
    with contextlib.suppress(TimeoutError):
        await wait_until(lambda: actual() == expected, timeout=timeout)
    assert actual() == expected


def landed(influxd: InfluxdProcess, db: str) -> dict[str, list[object]]:
    got: dict[str, list[object]] = defaultdict(list)
    for row in influxd.rows('SELECT "occupied" FROM "seat" GROUP BY "sensor"', db):
        got[f"seat {row['sensor']}"].append(row["occupied"])
    for row in influxd.rows('SELECT "open" FROM "door" GROUP BY "sensor"', db):
        got[f"door {row['sensor']}"].append(row["open"])
    for row in influxd.rows('SELECT "in_total", "out_total" FROM "people" GROUP BY "sensor"', db):
        got[f"people {row['sensor']}"].append((row["in_total"], row["out_total"]))
    return got


@pytest.mark.integration
async def test_a_simulated_afternoon_lands_in_influxdb_exactly_as_the_board_sent_it(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    consumer: Consumer,
    tmp_path: Path,
) -> None:
    emulator, gateway = await play_board_through_pipe(
        mosquitto, topic_prefix, tmp_path, sim_hours=3, start_hour=14, seats=12, seed=11
    )
    expected = expected_from_journal(emulator)
    seat_changes = sum(len(v) for k, v in expected.items() if k.startswith("seat"))
    assert seat_changes > 24, "a busy afternoon should move more than the initial seat states"
    await settles_to(expected, lambda: landed(influxd, influx_db))

    # The totals are the board's own, and the series carry the site's identity.
    state = emulator.state.house
    last = influxd.rows('SELECT LAST("in_total"), "out_total" FROM "people"', influx_db)[0]
    assert (last["last"], last["out_total"]) == (state.in_total, state.out_total)
    sites = influxd.rows('SHOW TAG VALUES FROM "seat" WITH KEY = "site"', influx_db)
    assert [row["value"] for row in sites] == [SITE]
    assert gateway.serial_sources[0].counters.lost == 0


@pytest.mark.integration
async def test_line_noise_costs_only_the_frames_it_hit(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    consumer: Consumer,
    tmp_path: Path,
) -> None:
    emulator, gateway = await play_board_through_pipe(
        mosquitto,
        topic_prefix,
        tmp_path,
        sim_hours=2,
        start_hour=15,
        seats=8,
        seed=5,
        noise_rate=0.2,
    )
    corrupted = sum(1 for e in emulator.journal if e.corrupted)
    assert corrupted > 0
    await settles_to(expected_from_journal(emulator), lambda: landed(influxd, influx_db))
    counters = gateway.serial_sources[0].counters
    assert counters.crc_errors + counters.malformed >= corrupted
    assert counters.frames == sum(1 for e in emulator.journal if not e.corrupted)


@pytest.mark.integration
async def test_a_gpio_door_contact_lands_in_influxdb(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    consumer: Consumer,
    tmp_path: Path,
) -> None:
    factory = MockFactory()
    config = gateway_config(
        mosquitto,
        topic_prefix,
        tmp_path,
        gpio=[
            {
                "pin": 17,
                "kind": "door",
                "sensor": "entrance",
                "pull_up": True,
                "active_high": True,
                "debounce": 0.02,
            }
        ],
    )
    gateway = Gateway(config, pin_factory=factory)
    try:
        async with running(gateway):
            pin = factory.pin(17)
            await wait_until(lambda: gateway.stats().publisher.published >= 1)
            for level in (False, True, False):  # shut, open, shut (the pull-up idles high: open)
                (pin.drive_high if level else pin.drive_low)()
                await asyncio.sleep(0.1)

            def door_values() -> list[object]:
                rows = influxd.rows(
                    'SELECT "open" FROM "door" WHERE "sensor" = \'entrance\'', influx_db
                )
                return [row["open"] for row in rows]

            await wait_until(lambda: door_values() == [1, 0, 1, 0], timeout=10)
            row = influxd.rows('SELECT * FROM "door"', influx_db)[0]
            assert (row["site"], row["gateway"], row["device"]) == (SITE, "gw1", "gpio")
    finally:
        factory.reset()


@pytest.mark.integration
async def test_with_acknowledged_reports_noise_costs_nothing_at_all(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    consumer: Consumer,
    tmp_path: Path,
) -> None:
    emulator = BookHouseEmulator(
        EmulatorConfig(
            device_id=DEVICE,
            seats=8,
            speed=1800,
            seed=9,
            report_interval_s=300,
            noise_rate=0.2,
            retransmit_after=timedelta(milliseconds=300),
            start=datetime(2026, 11, 28, 15, 0, tzinfo=SHANGHAI),
        )
    )
    link, gateway = board_gateway(mosquitto, topic_prefix, tmp_path)
    async with PtyPort(link) as port, running(gateway):
        await asyncio.wait_for(gateway.serial_sources[0].connected.wait(), 10)
        async with emulator.attach(port):
            await asyncio.sleep(2 * 3600 / emulator.config.speed)
            emulator.pause_simulation()
            emulator.set_noise(0.0)
            await wait_until(lambda: emulator.unacknowledged == 0, timeout=15)
        await wait_until(lambda: len(gateway.outbox) == 0)
    assert sum(1 for entry in emulator.journal if entry.corrupted) > 0
    assert sum(1 for entry in emulator.journal if entry.resent) > 0
    expected = expected_from_produced(emulator)
    await settles_to(expected, lambda: landed(influxd, influx_db))
    # Every report came back; only a WINDOW the noise destroyed stays lost (never resent).
    windows_lost = sum(
        1
        for entry in emulator.journal
        if entry.corrupted and isinstance(entry.frame.message, Window)
    )
    assert gateway.serial_sources[0].counters.lost == windows_lost


@pytest.mark.integration
async def test_visitors_derived_from_influxdb_stay_right_across_a_board_reboot(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    consumer: Consumer,
    tmp_path: Path,
) -> None:
    emulator = BookHouseEmulator(
        EmulatorConfig(
            device_id=DEVICE,
            seats=2,
            simulate=False,
            retransmit_after=timedelta(milliseconds=300),
            start=datetime(2026, 11, 28, 10, 0, tzinfo=SHANGHAI),
        )
    )
    link, gateway = board_gateway(mosquitto, topic_prefix, tmp_path)
    entered = [3, 5, 2, 7, 1]
    async with PtyPort(link) as port, running(gateway):
        await asyncio.wait_for(gateway.serial_sources[0].connected.wait(), 10)
        async with emulator.attach(port):
            for step, people in enumerate(entered):
                emulator.count_people(entered=people, left=people // 2)
                await asyncio.sleep(0.1)
                if step == 2:
                    emulator.reboot()  # the totals start again from 0
                    await asyncio.sleep(0.1)
            await wait_until(lambda: emulator.unacknowledged == 0, timeout=10)
        await wait_until(lambda: len(gateway.outbox) == 0)

    def derived() -> int:
        rows = influxd.rows('SELECT "in_total" FROM "people"', influx_db)
        return sum(increases(int(row["in_total"]) for row in rows))

    await settles_to(sum(entered), derived)
    # The board itself only knows since boot.
    assert emulator.state.house.in_total == sum(entered[3:])
