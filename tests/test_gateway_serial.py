"""A board on a pty pair → serial source → gateway → a real Mosquitto."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import tty
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from devstack import MosquittoProcess
from edge.config import GatewayConfig
from edge.gateway import Gateway
from firmware_bridge import cobs
from firmware_bridge.codec import FrameDecoder, encode, encode_body
from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort
from firmware_bridge.messages import (
    Door,
    Frame,
    Heartbeat,
    Hello,
    Message,
    Nack,
    NackReason,
    People,
    ReportAck,
    Resend,
    Seat,
    SensorKind,
    SensorRef,
    Window,
)
from tests.mqtt_helpers import Received, Recorder, running, wait_until


class PtyBoard:
    """The board's end of a pty pair, reachable through a stable symlink like /dev/serial/by-id."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.slave = -1
        self._decoder = FrameDecoder()
        self._heard: list[Frame] = []
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

    def acks(self) -> list[int]:
        """The REPORT_ACK numbers the gateway sent so far, in order."""
        return [m.seq for m in self.heard() if isinstance(m, ReportAck)]

    def heard(self) -> list[Message]:
        """Every message the gateway sent so far, in order."""
        os.set_blocking(self.master, False)
        try:
            while chunk := os.read(self.master, 4096):
                self._heard += [f for f in self._decoder.feed(chunk) if isinstance(f, Frame)]
        except BlockingIOError:
            pass
        return [f.message for f in self._heard]

    def heard_frames(self) -> list[Frame]:
        self.heard()
        return list(self._heard)


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


def after(reading: dict[str, object], moment: datetime) -> bool:
    return datetime.fromisoformat(str(reading["ts"])) > moment


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


# -- what the board still holds (WINDOW), a gateway that joins mid-stream, a foreign HELLO ------


def covers(ack: int, seq: int) -> bool:
    return (ack - seq) % 0x10000 < 0x8000


async def test_a_window_lets_the_ack_pass_a_report_the_board_gave_up_and_its_count_is_published(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    board: PtyBoard,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(mosquitto, f"{topic_prefix}/#")
    gateway = Gateway(serial_config(mosquitto, topic_prefix, tmp_path, board.link))
    try:
        async with running(gateway):
            await wait_until(lambda: gateway.serial_sources[0].connected.is_set())
            hello = dataclasses.replace(HELLO, boot=7)
            board.send(Frame(0, hello), Frame(1, Seat(1, True)), Frame(3, Seat(1, False)))
            await wait_until(lambda: 1 in board.acks())  # 2 never came: the ack waits at 1
            board.send(Frame(4, Window.of(4, 7, 1, [3])))  # the board gave 2 up, holds 3
            await wait_until(lambda: 4 in board.acks())
            link = await recorder.until(
                lambda ms: any(r.get("board_dropped") == 1 for r in kinds(ms, "link"))
            )
            assert not any(covers(ack, 2) for ack in board.acks()[: board.acks().index(4)])
            assert [r["seq"] for r in kinds(recorder.snapshot(), "seat")] == [1, 3]
            assert kinds(link, "link")[-1]["lost"] == 1  # counted lost, and said why
    finally:
        recorder.close()
    said = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert len(said) == 1
    assert "board board-a gave up 1 unacknowledged reports this boot" in said[0]


async def test_a_gateway_joining_mid_stream_acknowledges_nothing_it_has_not_stored(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path, board: PtyBoard
) -> None:
    recorder = Recorder(mosquitto, f"{topic_prefix}/#")
    gateway = Gateway(serial_config(mosquitto, topic_prefix, tmp_path, board.link))
    try:
        async with running(gateway):
            await wait_until(lambda: gateway.serial_sources[0].connected.is_set())
            board.send(Frame(40, Seat(1, True)))  # 0..39 went out before the port was open
            await wait_until(lambda: len(board.acks()) >= 1)
            before_window = board.acks()
            # The resend burst: what the board holds (its HELLO, 39 and 40), then the resends.
            hello = dataclasses.replace(HELLO, boot=9)
            board.send(Frame(41, Window.of(41, 9, 0, [0, 39, 40])))
            board.send(Frame(0, hello), Frame(39, Seat(2, True)), Frame(40, Seat(1, True)))
            await wait_until(lambda: 41 in board.acks())
            # Acknowledged means stored; publishing follows in store order. A link report
            # made after the acknowledgement lands after a repeated 40 would have.
            stored = datetime.now(UTC)
            await recorder.until(lambda ms: any(after(r, stored) for r in kinds(ms, "link")))
            seats = [(r["sensor"], r["seq"]) for r in kinds(recorder.snapshot(), "seat")]
    finally:
        recorder.close()
    assert not any(covers(ack, seq) for ack in before_window for seq in range(40))
    assert seats == [("board-a.1", 40), ("board-a.2", 39)]  # 40 once: the resend is a repeat
    assert [r["sensor"] for r in kinds(recorder.snapshot(), "device")] == ["board-a"]


async def test_a_hello_naming_another_board_is_logged_once_and_the_port_names_the_board(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    board: PtyBoard,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(mosquitto, f"{topic_prefix}/#")
    gateway = Gateway(serial_config(mosquitto, topic_prefix, tmp_path, board.link))
    stranger = dataclasses.replace(HELLO, device_id="board-b", boot=3)
    try:
        async with running(gateway):
            await wait_until(lambda: gateway.serial_sources[0].connected.is_set())
            board.send(Frame(0, stranger), Frame(1, Seat(1, True)), Frame(0, stranger))
            await wait_until(lambda: len(kinds(recorder.snapshot(), "seat")) == 1)
            await wait_until(lambda: gateway.serial_sources[0].counters.duplicates == 1)
            got = recorder.snapshot()
    finally:
        recorder.close()
    assert [r["sensor"] for r in kinds(got, "device")] == ["board-a"]
    assert [r["sensor"] for r in kinds(got, "seat")] == ["board-a.1"]
    said = [r.getMessage() for r in caplog.records if "calls itself" in r.getMessage()]
    assert len(said) == 1
    assert "the board calls itself board-b, the port is configured for board-a" in said[0]


# -- RESEND: a gateway that opens the port asks for what the board holds --------------------


def board_readings(messages: list[Received]) -> list[tuple[str, int]]:
    """(topic's kind and sensor, seq) of every board reading published, in order."""
    out = []
    for m in messages:
        payload = json.loads(m.payload) if m.payload.startswith(b"{") else {}
        if "seq" in payload:
            out.append((m.topic.split("/", 4)[-1], payload["seq"]))
    return out


async def test_a_gateway_that_opens_the_port_gets_the_reports_the_board_holds_at_once(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    link = tmp_path / "usb-qihe_board-a"
    emulator = BookHouseEmulator(
        EmulatorConfig(
            device_id="board-a",
            seats=2,
            simulate=False,
            report_interval_s=3600,
            # An hour: only the gateway's RESEND can bring the reports within the test.
            retransmit_after=timedelta(hours=1),
            start=datetime(2026, 11, 28, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")),
        )
    )
    recorder = Recorder(mosquitto, f"{topic_prefix}/#")
    gateway = Gateway(serial_config(mosquitto, topic_prefix, tmp_path / "state", link))
    source = gateway.serial_sources[0]
    try:
        async with PtyPort(link) as port, emulator.attach(port):
            emulator.set_seat(1, True)
            emulator.count_people(entered=2)  # nobody reads the port yet: all of it is held
            held = [r.frame.seq for r in emulator.produced_reports()]
            async with running(gateway):
                await wait_until(lambda: emulator.unacknowledged == 0)
                published = board_readings(recorder.snapshot())
                produced = [r.frame.seq for r in emulator.produced_reports()]
            counters = emulator.board.counters
    finally:
        recorder.close()
    assert len(held) == 10  # HELLO and the state of 5 sensors; seat 1, the door open, 2 people
    assert sorted(seq for _, seq in published) == produced  # each once, none missing
    assert (counters.resend_requests, counters.windows, counters.resent) == (1, 1, len(held))
    assert source.resends_sent == 1
    assert source.counters.lost == 0


async def test_a_board_that_predates_resend_nacks_it_and_the_gateway_carries_on(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    board: PtyBoard,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(mosquitto, f"{topic_prefix}/#")
    gateway = Gateway(serial_config(mosquitto, topic_prefix, tmp_path, board.link))
    source = gateway.serial_sources[0]
    try:
        async with running(gateway):
            await wait_until(source.connected.is_set)
            await wait_until(lambda: len(board.heard()) == 1)
            (request,) = board.heard_frames()
            nack = Nack(request.seq, NackReason.UNKNOWN_COMMAND)
            board.send(Frame(0, HELLO), Frame(1, nack), Frame(2, Seat(1, True)))
            await wait_until(lambda: 2 in board.acks())
            seats = [(r["sensor"], r["seq"]) for r in kinds(recorder.snapshot(), "seat")]
            heard = board.heard()
    finally:
        recorder.close()
    assert request.message == Resend()
    assert seats == [("board-a.1", 2)]
    assert [m for m in heard if isinstance(m, Resend)] == [Resend()]  # never retried
    assert (source.counters.lost, source.counters.malformed, source.counters.frames) == (0, 0, 3)
    assert source.resends_sent == 1
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
