"""The C firmware's host build (``firmware/build/host/qihe-board``) against the REAL pipe.

The board's pty → ``qihe gateway run`` → Mosquitto → consumer → InfluxDB: every reading the
board produced lands exactly once and in order, also across a gateway SIGKILL and restart and
a pulled cable (the board resends what the gateway has not acknowledged). What the board
produced (each report's first sending, from its ``--trace``) is compared, by sensor and frame
number, with the points in InfluxDB (``tests/fault_harness.py``'s :func:`compare`). The board
alone on its pty is ``tests/test_firmware_board.py``.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from central.consumer.service import Consumer
from devstack import DevStackError, InfluxdProcess, MosquittoProcess
from firmware_bridge.messages import Fault, Frame
from tests.fault_harness import (
    MEASUREMENTS,
    Landed,
    Produced,
    ServiceProcess,
    compare,
    points_of,
    reading_of,
)
from tests.firmware_host import DEVICE, HostBoard

SITE = "qibin-taoyuan"


def covers(ack: int, seq: int) -> bool:
    return (ack - seq) % 0x10000 < 0x8000


async def eventually(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait (without blocking the loop) until ``predicate()``; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


class FirmwarePipe:
    """The host board → ``qihe gateway run`` (a child process) → broker → consumer → InfluxDB."""

    def __init__(
        self,
        folder: Path,
        board: HostBoard,
        broker: MosquittoProcess,
        influxd: InfluxdProcess,
        prefix: str,
        database: str,
    ) -> None:
        self.board = board
        self.influxd = influxd
        self.database = database
        config = {
            "site": SITE,
            "gateway": "gw1",
            "state_dir": str(folder / "gateway-state"),
            "broker": {
                "host": broker.host,
                "port": broker.port,
                "topic_prefix": prefix,
                "keepalive": 5,
                "reconnect_min": 0.2,
                "reconnect_max": 2,
            },
            "serial": [
                {
                    "path": str(board.link),
                    "device": DEVICE,
                    "reconnect_min": 0.05,
                    "reconnect_max": 0.5,
                }
            ],
        }
        (folder / "gateway.yaml").write_text(yaml.safe_dump(config))
        self.gateway = ServiceProcess(
            "gateway",
            ["gateway", "run", "--config", str(folder / "gateway.yaml")],
            folder / "gateway.log",
            f"serial port {board.link} open",
        )

    def landed(self) -> list[Landed]:
        names = ", ".join(f'"{m}"' for m in MEASUREMENTS)
        try:
            answer = self.influxd.query(f'SELECT * FROM {names} GROUP BY "sensor"', self.database)
        except (DevStackError, urllib.error.URLError, OSError):
            return []
        return points_of(answer)

    async def run_script(self, *lines: str, timeout: float = 60) -> None:
        """Drive the board and wait until every line took effect (its ``status`` marker)."""
        before = len(self.board.statuses())
        self.board.drive(*lines, "status")
        await eventually(lambda: len(self.board.statuses()) > before, timeout, "the script")

    async def acknowledged(self, timeout: float = 30) -> None:
        """Until a REPORT_ACK covered everything the board produced and it owes no WINDOW."""

        def done() -> bool:
            produced, ack = self.board.produced(), self.board.last_ack()
            return ack is not None and all(covers(ack, f.seq) for f in produced)

        await eventually(done, timeout, "the gateway to acknowledge every report")

    async def finish(self, timeout: float = 30) -> list[Produced]:
        """Power the board off once all is acknowledged; wait until InfluxDB holds it all."""
        await self.acknowledged(timeout)
        assert self.board.stop() == 0
        produced = [r for r in map(_reading, self.board.produced()) if r is not None]
        # what a REPORT_ACK covered is stored: it lands (a report made after the last ack,
        # if any, was lost with the board's RAM at power-off: spec section 8)
        ack = self.board.last_ack()
        assert ack is not None
        wanted = {(r.sensor, r.seq) for r in produced if covers(ack, r.seq)}

        def landed_all() -> bool:
            return wanted <= {(p.sensor, p.seq) for p in self.landed()}

        try:
            await eventually(landed_all, timeout, "InfluxDB to hold every acknowledged reading")
        except AssertionError as exc:
            have = {(p.sensor, p.seq) for p in self.landed()}
            raise AssertionError(f"{exc}; not landed: {sorted(wanted - have)[:20]}") from None
        await asyncio.sleep(1.0)  # a late redelivery would show up as a second point
        return produced


def _reading(frame: Frame) -> Produced | None:
    """The reading a frame becomes in InfluxDB. A fault is named ``device.kind.index`` there
    (``edge/normalise.py``); ``reading_of`` predates that and is right for the others."""
    message = frame.message
    if isinstance(message, Fault):
        name = f"fault {DEVICE}.{message.sensor.kind.name.lower()}.{message.sensor.index}"
        return Produced(name, frame.seq, (message.code.name.lower(), int(message.active)))
    return reading_of(frame, DEVICE)


def assert_landed_once_in_order(produced: list[Produced], landed: list[Landed]) -> None:
    result = compare(produced, landed)
    detail = f"{result}\nmissing {result.missing[:10]}\nextra {result.extra[:10]}"
    assert (result.lost, result.duplicated, result.unexpected, result.out_of_order) == (
        0,
        0,
        0,
        0,
    ), detail
    assert result.landed == len(produced)


def values(produced: Sequence[Produced], sensor: str) -> list[tuple[object, ...]]:
    return [r.value for r in produced if r.sensor == sensor]


def toggles(steps: int, seats: int = 4, *, every: int = 100) -> list[str]:
    """A steady stream: a seat toggled every step, someone in or out every fifth step."""
    occupied = [False] * seats
    lines: list[str] = []
    for step in range(steps):
        if step % 5 == 4:
            lines.append("beam in" if (step // 5) % 2 == 0 else "beam out")
        else:
            seat = step % seats
            occupied[seat] = not occupied[seat]
            lines += [f"seat {seat + 1} {int(occupied[seat])}", f"wait {every}"]
    return lines


@pytest.fixture
def pipe(
    tmp_path: Path,
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    consumer: Consumer,
) -> Iterator[FirmwarePipe]:
    board = HostBoard(tmp_path, retransmit=500, interval=60).start()
    try:
        pipe = FirmwarePipe(tmp_path, board, mosquitto, influxd, topic_prefix, influx_db)
        yield pipe
        pipe.gateway.stop()
    finally:
        board.stop()  # the board is stopped at the end, whatever happened


@pytest.mark.integration
async def test_every_reading_the_firmware_produces_lands_in_influxdb_once_in_order(
    pipe: FirmwarePipe,
) -> None:
    # the board talks before the gateway starts (fresh state): RESEND brings what it missed
    await pipe.gateway.start()
    await pipe.run_script(
        *("seat 1 1", "wait 100", "seat 2 1", "wait 100"),
        *("beam in", "beam in", "door open", "wait 100", "beam out", "door closed", "wait 100"),
        *("seat 1 0", "wait 100", "supply 3300", "wait 1200", "supply 5000", "wait 1200"),
        *("seat 3 1", "wait 100"),
    )
    produced = await pipe.finish()
    assert_landed_once_in_order(produced, pipe.landed())

    # ... and what the board produced is what it was driven to see
    device = f"device {DEVICE}"
    assert values(produced, device) == [("1.0.0",)]
    assert values(produced, f"seat {DEVICE}.1") == [(0,), (1,), (0,)]
    assert values(produced, f"seat {DEVICE}.2") == [(0,), (1,)]
    assert values(produced, f"seat {DEVICE}.3") == [(0,), (1,)]
    assert values(produced, f"door {DEVICE}.1") == [(0,), (1,), (0,)]
    people = values(produced, f"people {DEVICE}.1")
    assert people == [(0, 0), (1, 0), (2, 0), (2, 1)]
    faults = values(produced, f"fault {DEVICE}.people.1")
    assert faults == [("supply_low", 1), ("supply_low", 0)]
    assert pipe.gateway.running


@pytest.mark.integration
@pytest.mark.timeout(180)
async def test_a_gateway_killed_and_restarted_loses_nothing_the_firmware_resends(
    pipe: FirmwarePipe,
) -> None:
    await pipe.gateway.start()
    script = asyncio.ensure_future(pipe.run_script(*toggles(80)))  # about 13 s of readings
    await asyncio.sleep(2)
    pipe.gateway.kill()  # SIGKILL: whatever it had read but not stored is gone
    await asyncio.sleep(1.5)
    await pipe.gateway.start()
    await asyncio.sleep(2)
    pipe.gateway.stop()  # and a clean stop
    await asyncio.sleep(1.0)
    await pipe.gateway.start()
    await script
    produced = await pipe.finish()
    assert_landed_once_in_order(produced, pipe.landed())
    assert len(produced) > 60
    assert pipe.board.resent() > 0


@pytest.mark.integration
@pytest.mark.timeout(180)
async def test_a_cable_unplugged_and_plugged_back_loses_nothing_the_firmware_resends(
    pipe: FirmwarePipe,
) -> None:
    await pipe.gateway.start()
    ready = pipe.gateway.ready_count()
    await pipe.run_script(*toggles(15), "unplug", *toggles(15), "plug")
    await pipe.gateway.wait_ready(ready)  # the gateway holds the port again
    await pipe.run_script(*toggles(15))
    produced = await pipe.finish()
    assert_landed_once_in_order(produced, pipe.landed())
    log = pipe.board.log()
    assert "unplugged" in log and "plugged in" in log
    # reports made while the cable was out reached InfluxDB by resending
    out = log.split("拔出串口 unplugged")[1].split("重新插入 plugged in")[0]
    assert " tx " in out
    assert pipe.board.resent() > 0
