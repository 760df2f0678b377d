"""The C firmware's host build (``firmware/build/host/qihe-board``) alone on its pty.

Spoken to over its pty with the Python codec, as a gateway would: the commands and their
effects, malformed input, the window of held reports (RESEND, REPORT_ACK, WINDOW) and the
input logic (debounce, beam direction, supply hysteresis); the doctor's serial check; the
program's arguments and ``docs/firmware.md``'s tables of them. The board against the real
pipe is ``tests/test_firmware_pipe.py``.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import select
import subprocess
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from edge.config import SerialPortConfig
from edge.doctor import check_serial
from firmware_bridge import cobs
from firmware_bridge.codec import FrameDecoder, encode
from firmware_bridge.emulator.window import ReportWindow
from firmware_bridge.messages import (
    Ack,
    Door,
    Fault,
    FaultCode,
    Frame,
    Heartbeat,
    Hello,
    Identify,
    Message,
    MessageType,
    Nack,
    NackReason,
    People,
    Ping,
    Reboot,
    ReportAck,
    Resend,
    Seat,
    SensorKind,
    SensorRef,
    SetReportInterval,
    Window,
)
from tests.firmware_build import firmware_build
from tests.firmware_host import DEVICE, REPORTS, HostBoard, wait_for
from tests.test_protocol_vectors import MALFORMED

#: Types the board takes from the gateway: a malformed one is dropped, never NACKed.
BOARD_BOUND = {
    MessageType.PING,
    MessageType.SET_REPORT_INTERVAL,
    MessageType.IDENTIFY,
    MessageType.REBOOT,
    MessageType.REPORT_ACK,
    MessageType.RESEND,
}


@pytest.fixture
def boards() -> Iterator[list[HostBoard]]:
    """Boards a test starts are stopped at its end, whatever happened."""
    started: list[HostBoard] = []
    yield started
    for board in started:
        board.stop()


# -- talking to the board directly ----------------------------------------------------------


class PtyPeer:
    """The gateway's end of the board's pty, spoken with the Python codec."""

    def __init__(self, link: Path) -> None:
        self.fd = os.open(link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.raw = bytearray()
        self._decoder = FrameDecoder()
        self.frames: list[Frame] = []
        self._seq = 0

    def close(self) -> None:
        os.close(self.fd)

    def send(self, message: Message, seq: int | None = None) -> int:
        """Send one frame; returns its seq (ours, counting up unless given)."""
        if seq is None:
            seq, self._seq = self._seq, self._seq + 1
        os.write(self.fd, encode(Frame(seq, message)))
        return seq

    def send_raw(self, data: bytes) -> None:
        for at in range(0, len(data), 1024):  # the pty takes a few KB at a time
            chunk = data[at : at + 1024]
            while chunk:
                select.select([], [self.fd], [], 1.0)
                try:
                    chunk = chunk[os.write(self.fd, chunk) :]
                except BlockingIOError:
                    self.poll()  # let the board's replies drain while it reads ours

    def poll(self) -> list[Frame]:
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self.fd, 4096):
                self.raw += chunk
                self.frames += [f for f in self._decoder.feed(chunk) if isinstance(f, Frame)]
        return self.frames

    def wait(
        self, predicate: Callable[[list[Frame]], bool], what: str, timeout: float = 10.0
    ) -> list[Frame]:
        wait_for(lambda: predicate(self.poll()), timeout, what)
        return self.frames

    def wait_message(self, wanted: Message, timeout: float = 10.0) -> int:
        """Wait until ``wanted`` arrives; its index in :attr:`frames`."""
        self.wait(lambda fs: any(f.message == wanted for f in fs), f"{wanted}", timeout)
        return next(i for i, f in enumerate(self.frames) if f.message == wanted)

    def wire_frames(self) -> list[bytes]:
        """The raw bytes of every frame read so far, ``00 COBS 00``, in order."""
        return [b"\x00" + piece + b"\x00" for piece in bytes(self.raw).split(b"\x00") if piece]


@pytest.fixture
def peers() -> Iterator[list[PtyPeer]]:
    opened: list[PtyPeer] = []
    yield opened
    for peer in opened:
        peer.close()


def alone(
    tmp_path: Path,
    boards: list[HostBoard],
    peers: list[PtyPeer],
    *,
    seats: int = 4,
    interval: int = 60,
    retransmit: int = 0,
    boot: int = 1000,
    extra: Sequence[str] = (),
) -> tuple[HostBoard, PtyPeer]:
    """A board with a test on its pty instead of a gateway."""
    board = HostBoard(
        tmp_path, seats=seats, interval=interval, retransmit=retransmit, boot=boot, extra=extra
    ).start()
    boards.append(board)
    peer = PtyPeer(board.link)
    peers.append(peer)
    return board, peer


def replies(frames: Sequence[Frame]) -> list[Message]:
    return [f.message for f in frames if isinstance(f.message, Ack | Nack)]


M = TypeVar("M")


def messages_of(frames: Sequence[Frame], kind: type[M]) -> list[M]:
    return [f.message for f in frames if isinstance(f.message, kind)]


# -- the board alone ----------------------------------------------------------------------


def test_hello_comes_first_with_the_sensors_boot_number_and_the_present_state(
    tmp_path: Path, boards: list[HostBoard], peers: list[PtyPeer]
) -> None:
    board, peer = alone(tmp_path, boards, peers, seats=3, interval=1, retransmit=0, boot=4242)
    frames = peer.wait(lambda fs: len(messages_of(fs, Heartbeat)) >= 3, "three heartbeats")
    assert [f.seq for f in frames] == list(range(len(frames)))  # from 0, one by one
    seat = SensorKind.SEAT
    sensors = (*(SensorRef(seat, i) for i in (1, 2, 3)), SensorRef(SensorKind.PEOPLE, 1))
    hello = Hello(DEVICE, (1, 0, 0), 1, (*sensors, SensorRef(SensorKind.DOOR, 1)), boot=4242)
    assert [f.message for f in frames[:8]] == [
        hello,
        Seat(1, False),
        Seat(2, False),
        Seat(3, False),
        Door(1, False),
        Heartbeat(0, 5000),
        People(1, 0, 0),
        # every report interval: a heartbeat, and the counter's totals again after it
        Heartbeat(1, 5000),
    ]
    assert frames[8].message == People(1, 0, 0)
    assert [m.uptime_s for m in messages_of(frames, Heartbeat)][:3] == [0, 1, 2]
    assert board.running


def test_seats_door_and_the_beam_pair_are_debounced_and_counted_by_direction(
    tmp_path: Path, boards: list[HostBoard], peers: list[PtyPeer]
) -> None:
    board, peer = alone(tmp_path, boards, peers, retransmit=0)
    peer.wait(lambda fs: len(fs) >= 8, "the boot reports")
    board.drive(
        # blips shorter than the 50 ms debounce: nothing
        *("seat 2 1", "wait 10", "seat 2 0", "wait 100"),
        *("beam outer 1", "wait 10", "beam outer 0", "wait 100"),
        # someone looks in and backs out: outer only, then clear
        *("beam outer 1", "wait 100", "beam outer 0", "wait 100"),
        # someone steps in halfway and turns round: outer, both, outer, clear
        *("beam outer 1", "wait 100", "beam inner 1", "wait 100"),
        *("beam inner 0", "wait 100", "beam outer 0", "wait 100"),
        # out by hand: inner, both, outer, clear
        *("beam inner 1", "wait 100", "beam outer 1", "wait 100"),
        *("beam inner 0", "wait 100", "beam outer 0", "wait 100"),
        # hesitating on the way in: outer, both, outer, both, inner, clear
        *("beam outer 1", "wait 100", "beam inner 1", "wait 100", "beam inner 0", "wait 100"),
        *("beam inner 1", "wait 100", "beam outer 0", "wait 100", "beam inner 0", "wait 100"),
        "beam in",
        "beam out",
        *("seat 1 1", "wait 100", "door open", "wait 100", "door closed", "wait 100"),
        "seat 3 1",
    )
    frames = peer.wait(lambda fs: Seat(3, True) in [f.message for f in fs], "seat 3 taken")[8:]
    assert messages_of(frames, People) == [
        People(1, 0, 1),
        People(1, 1, 1),
        People(1, 2, 1),
        People(1, 2, 2),
    ]
    assert messages_of(frames, Seat) == [Seat(1, True), Seat(3, True)]
    assert messages_of(frames, Door) == [Door(1, True), Door(1, False)]
    assert "bad input line" not in board.log()


@pytest.mark.parametrize(
    ("options", "sensor"),
    [
        ((), SensorRef(SensorKind.PEOPLE, 1)),
        (("--no-counter",), SensorRef(SensorKind.DOOR, 1)),
        (("--no-counter", "--no-door"), None),
    ],
    ids=["on-the-counter", "on-the-door", "seats-only-none"],
)
def test_supply_low_is_raised_and_cleared_with_hysteresis_never_on_a_seat(
    tmp_path: Path,
    boards: list[HostBoard],
    peers: list[PtyPeer],
    options: tuple[str, ...],
    sensor: SensorRef | None,
) -> None:
    board, peer = alone(tmp_path, boards, peers, retransmit=0, interval=1, extra=options)
    board.drive(
        *("supply 3000", "wait 100", "supply 5000", "wait 1500"),  # a dip under the 1 s hold
        *("supply 3300", "wait 1500"),  # low: raised
        *("supply 3420", "wait 1500"),  # above 3400 but within the 50 mV hysteresis: still low
        *("supply 3460", "wait 1500"),  # above 3450: cleared
        "seat 1 1",
    )
    frames = peer.wait(lambda fs: Seat(1, True) in [f.message for f in fs], "the script's end")
    faults = messages_of(frames, Fault)
    if sensor is None:
        assert faults == []
    else:
        code = FaultCode.SUPPLY_LOW
        assert faults == [Fault(sensor, code, True), Fault(sensor, code, False)]
    # the heartbeats carry the voltage whatever the board's sensors
    volts = {m.supply_mv for m in messages_of(frames, Heartbeat)}
    assert {3300, 3420, 3460} <= volts


def test_commands_are_acknowledged_and_take_effect(
    tmp_path: Path, boards: list[HostBoard], peers: list[PtyPeer]
) -> None:
    board, peer = alone(tmp_path, boards, peers, retransmit=0, boot=500)
    peer.wait(lambda fs: len(fs) >= 8, "the boot reports")
    ping = peer.send(Ping())
    too_long = peer.send(SetReportInterval(3601))
    longest = peer.send(SetReportInterval(3600))
    interval = peer.send(SetReportInterval(2))
    blink = peer.send(Identify(1))
    not_a_command = peer.send(Seat(1, True))  # a board → gateway type
    peer.send(ReportAck(3))  # not commands: never answered
    peer.send(Resend())
    last = peer.send(Ping())
    peer.wait_message(Ack(last))
    assert replies(peer.frames) == [
        Ack(ping),
        Nack(too_long, NackReason.BAD_ARGUMENT),
        Ack(longest),
        Ack(interval),
        Ack(blink),
        Nack(not_a_command, NackReason.UNKNOWN_COMMAND),
        Ack(last),
    ]

    # IDENTIFY 1: the LED blinks (2 Hz) for a second, then stays off
    def blinked() -> bool:
        log = board.log()
        return log.count("LED on") >= 2 and log.rfind("LED off") > log.rfind("LED on")

    wait_for(blinked, 5, "the LED to blink and go off")

    # REBOOT: ACK, then a new boot: HELLO numbered 0, a new boot number, the new interval
    reboot = peer.send(Reboot())
    at = peer.wait_message(Ack(reboot))
    frames = peer.wait(lambda fs: any(isinstance(f.message, Hello) for f in fs[at:]), "HELLO")
    hello = next(f for f in frames[at:] if isinstance(f.message, Hello))
    assert hello.seq == 0
    assert isinstance(hello.message, Hello)
    assert (hello.message.boot, hello.message.report_interval_s) == (501, 2)
    assert frames[at + 1] is hello  # the first frame of the new boot
    # ... and the heartbeat now comes every 2 s (the next one, at least, comes)
    peer.wait(lambda fs: len(messages_of(fs[at:], Heartbeat)) >= 2, "a heartbeat after boot")

    # stdin closed: the board runs on
    board.close_stdin()
    wait_for(lambda: "stdin closed" in board.log(), 5, "stdin closed")
    still = peer.send(Ping())
    peer.wait_message(Ack(still))

    # SIGTERM: a clean stop that removes the link
    assert board.stop() == 0
    assert not board.link.exists() and not board.link.is_symlink()


def test_malformed_frames_are_dropped_or_nacked_as_the_spec_says_and_the_board_goes_on(
    tmp_path: Path, boards: list[HostBoard], peers: list[PtyPeer]
) -> None:
    board, peer = alone(tmp_path, boards, peers, retransmit=0)
    peer.wait(lambda fs: len(fs) >= 8, "the boot reports")
    expected: list[Message] = []
    for vector in MALFORMED:
        peer.send_raw(vector.wire)
        if vector.kind in ("unknown_type", "payload"):
            # a good CRC: the header can be trusted; a type the board does not take is NACKed
            body = cobs.decode(vector.wire.strip(b"\x00"))
            ref = int.from_bytes(body[2:4], "big")
            if body[1] not in BOARD_BOUND:
                expected.append(Nack(ref, NackReason.UNKNOWN_COMMAND))
    peer.send_raw(b"\x01\x02\x03 line noise \xff\xfe")  # garbage without a delimiter
    peer.send_raw(b"\x00" + bytes(range(1, 256)) * 2)  # an over-long run
    peer.send_raw(encode(Frame(7, Seat(1, True)))[:-4])  # a frame cut short...
    ping = peer.send(Ping(), seq=4242)  # ... its rest lost: the PING's leading 00 ends it
    peer.wait_message(Ack(ping))
    assert expected, "the vectors include unknown types"
    assert replies(peer.frames) == [*expected, Ack(ping)]
    assert board.running


def test_random_bytes_never_stall_the_board(
    tmp_path: Path, boards: list[HostBoard], peers: list[PtyPeer]
) -> None:
    board, peer = alone(tmp_path, boards, peers, retransmit=0)
    rng = random.Random(20261128)
    # zeros are rare in line noise: mostly long runs, now and then a delimiter
    noise = bytes(0 if rng.random() < 0.01 else rng.randrange(1, 256) for _ in range(200_000))
    peer.send_raw(noise)
    ping = peer.send(Ping(), seq=77)
    peer.wait_message(Ack(ping), timeout=20)
    assert board.running


def test_held_reports_are_resent_byte_identical_after_a_window_and_acks_forget_them(
    tmp_path: Path, boards: list[HostBoard], peers: list[PtyPeer]
) -> None:
    # a timer that never fires within the test: bursts come only from RESEND
    board, peer = alone(
        tmp_path, boards, peers, retransmit=60_000, boot=77, extra=("--window", "8")
    )
    peer.wait(lambda fs: len(fs) >= 8, "the boot reports")
    first = peer.wire_frames()
    assert len(first) == 8  # HELLO, 4 seats, door, heartbeat, counter: the window is full

    peer.send(Resend())
    peer.wait(lambda fs: len(fs) >= 17, "a resend burst")
    assert peer.frames[8] == Frame(8, Window(boot=77, dropped=0, held=0xFF))
    assert peer.wire_frames()[9:17] == first  # oldest first, byte for byte

    # a ninth report: the oldest HEARTBEAT (6) is given up, not the HELLO
    board.drive("seat 1 1")
    peer.wait(lambda fs: len(fs) >= 18, "seat 1 taken")
    assert peer.frames[17] == Frame(9, Seat(1, True))

    # REPORT_ACK(3) forgets 0-3; the board owes the gateway its drop: a WINDOW follows
    peer.send(ReportAck(3))
    peer.wait(lambda fs: len(fs) >= 19, "a WINDOW after the ack")
    held = sum(1 << (10 - 1 - s) for s in (4, 5, 7, 9))
    assert peer.frames[18] == Frame(10, Window(boot=77, dropped=1, held=held))

    # an ack covering that WINDOW confirms the count: no WINDOW after acks from here on
    peer.send(ReportAck(10))
    ping = peer.send(Ping())
    peer.wait_message(Ack(ping))
    assert [f.message for f in peer.frames[19:]] == [Ack(ping)]

    # an ack for a number this boot never used is ignored (it would cover seq 12 otherwise)
    board.drive("seat 2 1")
    peer.wait(lambda fs: Seat(2, True) in [f.message for f in fs], "seat 2 taken")
    peer.send(ReportAck(5000))
    # a second RESEND within half a timeout of the last burst starts none
    peer.send(Resend())
    ping = peer.send(Ping())
    peer.wait_message(Ack(ping))
    board.drive("status")
    wait_for(lambda: len(board.statuses()) == 1, 5, "the status line")
    status = board.statuses()[0]
    assert (status["held"], status["dropped"], status["owes_window"]) == ("1", "1", "no")
    assert status["bursts"] == "1"
    assert messages_of(peer.poll()[19:], Window) == []


def test_a_full_window_gives_up_heartbeats_first_then_the_oldest_as_the_reference_does(
    tmp_path: Path, boards: list[HostBoard], peers: list[PtyPeer]
) -> None:
    board, peer = alone(
        tmp_path,
        boards,
        peers,
        seats=1,
        interval=1,
        retransmit=60_000,
        boot=9,
        extra=("--window", "4"),
    )
    peer.wait(lambda fs: len(messages_of(fs, Heartbeat)) >= 4, "four heartbeats")
    peer.send(Resend())
    frames = peer.wait(lambda fs: any(isinstance(f.message, Window) for f in fs), "a burst")
    at = next(i for i, f in enumerate(frames) if isinstance(f.message, Window))
    frames = peer.wait(lambda fs: len(fs) >= at + 5, "the burst")

    # The emulator's window (the reference) fed the same reports gives the same burst.
    reference = ReportWindow(retransmit_after=3600.0, limit=4, clock=lambda: 0.0)
    for frame in frames[:at]:
        assert isinstance(frame.message, REPORTS)
        reference.numbered(frame.seq)
        reference.produce(frame, boot=1, sim_time=datetime(2026, 11, 28, tzinfo=UTC))
    window = frames[at]
    reference.numbered(window.seq)
    held = reference.held()
    assert reference.dropped > 0
    assert window.message == Window.of(window.seq, 9, reference.dropped, (f.seq for f in held))
    assert frames[at + 1 : at + 1 + len(held)] == held
    assert board.running


def test_the_doctors_serial_check_gets_an_ack_to_its_ping(
    tmp_path: Path, boards: list[HostBoard]
) -> None:
    board = HostBoard(tmp_path, retransmit=0).start()
    boards.append(board)
    result = check_serial(SerialPortConfig(path=str(board.link), device=DEVICE), timeout=5.0)
    assert result.outcome == "pass", result.line()
    wait_for(lambda: Ping() in board.received(), 5, "the doctor's PING")
    assert Ack(0) in [s.frame.message for s in board.sent()]  # the doctor numbers it 0
    assert "ACK" in result.detail


# -- the documentation ----------------------------------------------------------------------

DOC = (Path(__file__).resolve().parents[1] / "docs" / "firmware.md").read_text(encoding="utf-8")


def _doc_section(heading: str) -> str:
    return DOC.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def test_docs_firmware_lists_every_option_of_the_program_and_no_other() -> None:
    helped = subprocess.run(
        [str(firmware_build("host")), "--help"], capture_output=True, text=True, check=True
    ).stdout
    options = set(re.findall(r"^\s+(--[a-z-]+)", helped, re.MULTILINE)) | {"--help"}
    table = _doc_section("## The host program: `qihe-board`")
    documented = set(re.findall(r"^\| `(--[a-z-]+)", table, re.MULTILINE))
    assert documented == options


def test_docs_firmware_lists_every_event_line_the_board_takes() -> None:
    table = _doc_section("### Event lines on standard input")
    documented = set(re.findall(r"^\| `([a-z]+)", table, re.MULTILINE))
    assert documented == {
        "seat", "presence", "beam", "door", "supply", "wait", "unplug", "plug", "status"
    }  # fmt: skip


@pytest.mark.parametrize(
    "argument",
    [("--seats", "65"), ("--interval", "0"), ("--interval", "3601"), ("--device", "Board-A")],
    ids=lambda a: " ".join(a),
)
def test_an_argument_out_of_range_is_one_line_and_exit_code_2(
    tmp_path: Path, argument: tuple[str, str]
) -> None:
    link = tmp_path / "link"
    done = subprocess.run(
        [str(firmware_build("host")), "--link", str(link), *argument],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"qihe-board: 参数错误 bad argument: {argument[0]}")
    assert len(done.stderr.splitlines()) == 1
    assert not link.exists()
