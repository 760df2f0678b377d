"""A board on a pty pair → serial source → gateway → a real Mosquitto."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import GatewayConfig
from edge.gateway import Gateway
from firmware_bridge import cobs
from firmware_bridge.codec import encode, encode_body
from firmware_bridge.messages import (
    Door,
    Frame,
    Heartbeat,
    Hello,
    People,
    Seat,
    SensorKind,
    SensorRef,
)
from qihe.devstack import MosquittoProcess
from tests.mqtt_helpers import Received, Recorder, running, wait_until


class PtyBoard:
    """The board's end of a pty pair, reachable through a stable symlink like /dev/serial/by-id."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.slave = -1
        self.plug()

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tmp = self.link.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.slave))
        tmp.replace(self.link)

    def unplug(self) -> None:
        self.link.unlink(missing_ok=True)
        os.close(self.master)
        os.close(self.slave)

    def send(self, *frames: Frame) -> None:
        os.write(self.master, b"".join(encode(f) for f in frames))

    def send_raw(self, data: bytes) -> None:
        os.write(self.master, data)


@pytest.fixture
def board(tmp_path: Path) -> Iterator[PtyBoard]:
    board = PtyBoard(tmp_path / "usb-qihe_board-a")
    yield board
    if board.link.exists():
        board.unplug()


def serial_config(
    broker: MosquittoProcess, prefix: str, state_dir: Path, link: Path
) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "site": "qibin-taoyuan",
            "gateway": "gw1",
            "state_dir": state_dir,
            "broker": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
            "serial": [
                {
                    "path": str(link),
                    "device": "board-a",
                    "reconnect_min": 0.05,
                    "reconnect_max": 0.2,
                }
            ],
            "link_report_interval": 0.2,
        }
    )


def kinds(messages: list[Received], kind: str) -> list[dict[str, object]]:
    return [json.loads(m.payload) for m in messages if f"/{kind}/" in m.topic]


HELLO = Hello(
    "board-a", (1, 0, 0), 60, (SensorRef(SensorKind.SEAT, 1), SensorRef(SensorKind.DOOR, 1))
)


async def test_frames_from_a_board_become_readings_on_their_topics(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path, board: PtyBoard
) -> None:
    recorder = Recorder(mosquitto, f"{topic_prefix}/#")
    gateway = Gateway(serial_config(mosquitto, topic_prefix, tmp_path, board.link))
    try:
        async with running(gateway):
            await wait_until(lambda: gateway.serial_sources[0].connected.is_set())
            board.send(
                Frame(0, HELLO),
                Frame(1, Seat(1, True)),
                Frame(2, People(1, 130, 121)),
                Frame(3, Door(1, True)),
                Frame(4, Heartbeat(3600, 3710)),
            )
            await wait_until(lambda: len(kinds(recorder.snapshot(), "heartbeat")) == 1)
            got = recorder.snapshot()
            base = f"{topic_prefix}/v1/qibin-taoyuan/gw1"
            seat = next(m for m in got if m.topic == f"{base}/seat/board-a.1")
            assert json.loads(seat.payload)["occupied"] is True
            assert json.loads(seat.payload)["seq"] == 1
            people = kinds(got, "people")[0]
            assert (people["in_total"], people["out_total"]) == (130, 121)
            assert kinds(got, "door")[0]["open"] is True
            device = kinds(got, "device")[0]
            assert device["firmware"] == "1.0.0"
            assert device["sensors"] == ["seat.1", "door.1"]
            # State is retained for late subscribers; periodic telemetry is not.
            late = Recorder(mosquitto, f"{base}/#")
            retained = await late.until(lambda ms: len(ms) >= 5)
            await asyncio.sleep(0.2)
            late.close()
            assert sorted(m.topic.removeprefix(base) for m in late.snapshot() if m.retain) == [
                "/device/board-a",
                "/door/board-a.1",
                "/people/board-a.1",
                "/seat/board-a.1",
                "/status",
            ]
            assert retained
    finally:
        recorder.close()


async def test_noise_lost_and_repeated_frames_are_counted_and_cost_nothing_else(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path, board: PtyBoard
) -> None:
    recorder = Recorder(mosquitto, f"{topic_prefix}/#")
    gateway = Gateway(serial_config(mosquitto, topic_prefix, tmp_path, board.link))
    try:
        async with running(gateway):
            await wait_until(lambda: gateway.serial_sources[0].connected.is_set())
            body = bytearray(encode_body(Frame(11, Seat(2, True))))
            body[5] ^= 0x40  # flips a payload bit: the CRC no longer matches
            corrupted = b"\x00" + cobs.encode(bytes(body)) + b"\x00"
            board.send(Frame(10, Seat(1, True)))
            board.send_raw(b"\x13\x37line noise" + bytes(corrupted))
            board.send(Frame(10, Seat(1, True)))  # a repeat of frame 10
            board.send(Frame(14, Seat(3, True)))  # 11 corrupted, 12 and 13 never arrived
            await wait_until(lambda: len(kinds(recorder.snapshot(), "seat")) == 2)
            await wait_until(lambda: gateway.serial_sources[0].counters.lost == 3)
            counters = gateway.serial_sources[0].counters
            assert (counters.crc_errors, counters.duplicates) == (1, 1)
            assert counters.malformed >= 1  # the noise before the corrupted frame
            seats = [s["sensor"] for s in kinds(recorder.snapshot(), "seat")]
            assert seats == ["board-a.1", "board-a.3"]
            link = await recorder.until(lambda ms: len(kinds(ms, "link")) >= 1)
            assert kinds(link, "link")[-1]["crc_errors"] == 1
    finally:
        recorder.close()


async def test_an_unplugged_port_is_reopened_when_it_comes_back(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path, board: PtyBoard
) -> None:
    recorder = Recorder(mosquitto, f"{topic_prefix}/#")
    gateway = Gateway(serial_config(mosquitto, topic_prefix, tmp_path, board.link))
    source = gateway.serial_sources[0]
    try:
        async with running(gateway):
            await wait_until(source.connected.is_set)
            board.send(Frame(0, HELLO), Frame(1, Seat(1, True)))
            await wait_until(lambda: len(kinds(recorder.snapshot(), "seat")) == 1)
            board.unplug()
            await wait_until(lambda: not source.connected.is_set())
            await asyncio.sleep(0.3)  # a few failed reopen attempts while the port is gone
            board.plug()
            await wait_until(source.connected.is_set)
            rebooted = dataclasses.replace(HELLO, boot=HELLO.boot + 1)  # a new boot's number
            board.send(Frame(0, rebooted), Frame(1, Seat(1, False)))
            await wait_until(lambda: len(kinds(recorder.snapshot(), "seat")) == 2)
            assert [s["occupied"] for s in kinds(recorder.snapshot(), "seat")] == [True, False]
            assert source.counters.reconnects == 1
    finally:
        recorder.close()
