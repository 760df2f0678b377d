"""The C firmware's host build (``firmware/build/host/qihe-board``) on a pty.

Two kinds of test. Against the REAL pipe — the board's pty → ``qihe gateway run`` →
Mosquitto → consumer → InfluxDB — every reading the board produced lands exactly once and in
order, also across a gateway SIGKILL and restart and a pulled cable (the board resends what
the gateway has not acknowledged). The board runs with ``--trace``: it logs every frame it
writes and every chunk it reads, so what it produced (each report's first sending) is known
exactly and is compared, by sensor and frame number, with the points in InfluxDB
(``tests/fault_harness.py``'s :func:`compare`).

And the board alone, spoken to over its pty with the Python codec: the commands and their
effects, malformed input, the window of held reports (RESEND, REPORT_ACK, WINDOW) and the
input logic (debounce, beam direction, supply hysteresis).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import select
import signal
import subprocess
import time
import urllib.error
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
import yaml

from central.consumer.config import ConsumerConfig
from central.consumer.service import Consumer
from devstack import DevStackError, InfluxdProcess, MosquittoProcess
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
from tests.fault_harness import (
    MEASUREMENTS,
    Landed,
    Produced,
    ServiceProcess,
    compare,
    points_of,
    reading_of,
)
from tests.firmware_build import firmware_build
from tests.test_protocol_vectors import MALFORMED

SITE = "qibin-taoyuan"
DEVICE = "taoyuan-c"
#: Report types: held, resent, and turned into readings.
REPORTS = (Hello, Seat, People, Door, Heartbeat, Fault)
#: Types the board takes from the gateway: a malformed one is dropped, never NACKed.
BOARD_BOUND = {
    MessageType.PING,
    MessageType.SET_REPORT_INTERVAL,
    MessageType.IDENTIFY,
    MessageType.REBOOT,
    MessageType.REPORT_ACK,
    MessageType.RESEND,
}
_TRACE = re.compile(r"^qihe-board \[[0-9.]+\]: (tx|rx)((?: [0-9A-F]{2})+)$")


def covers(ack: int, seq: int) -> bool:
    return (ack - seq) % 0x10000 < 0x8000


async def eventually(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait (without blocking the loop) until ``predicate()``; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


# -- the board process --------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One frame the board wrote: which boot (0 = the first), the frame, its exact bytes."""

    boot: int
    frame: Frame
    wire: bytes


class HostBoard:
    """``qihe-board`` as a child process: event lines on its stdin, its log in a file."""

    def __init__(
        self,
        folder: Path,
        *,
        seats: int = 4,
        interval: int = 60,
        retransmit: int = 500,
        boot: int = 1000,
        extra: Sequence[str] = (),
    ) -> None:
        self.binary = firmware_build("host")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "serial").mkdir(exist_ok=True)
        self.link = folder / "serial" / "usb-qihe_board-c-if00"
        self.log_path = folder / "board.log"
        self.args = [
            str(self.binary),
            *("--link", str(self.link), "--device", DEVICE, "--seats", str(seats)),
            *("--interval", str(interval), "--retransmit", str(retransmit)),
            *("--boot", str(boot), "--trace", *extra),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> HostBoard:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(lambda: "board started" in self.log(), 10, "the board to start")
        assert self.link.is_symlink()
        return self

    def drive(self, *lines: str) -> None:
        """Event lines to the board's stdin (they take effect in order, waits included)."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write("".join(f"{line}\n" for line in lines).encode())
        self.process.stdin.flush()

    def close_stdin(self) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int:
        """SIGTERM (the clean stop) and the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=10)
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        return code

    def log(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return self.log_path.read_text(errors="replace")
        return ""

    # -- what the trace says ---------------------------------------------------------------

    def _trace(self) -> tuple[list[bytes], bytes]:
        tx: list[bytes] = []
        rx = bytearray()
        for line in self.log().splitlines():
            match = _TRACE.match(line)
            if match is None:
                continue
            data = bytes.fromhex(match[2].replace(" ", ""))
            if match[1] == "tx":
                tx.append(data)  # the core writes one whole frame per call
            else:
                rx += data
        return tx, bytes(rx)

    def sent(self) -> list[Sent]:
        """Every frame the board wrote, resends included, in order."""
        out: list[Sent] = []
        boot, boot_number = -1, None
        for wire in self._trace()[0]:
            (frame,) = FrameDecoder().feed(wire)
            assert isinstance(frame, Frame), frame
            message = frame.message
            if isinstance(message, Hello) and message.boot != boot_number:
                boot, boot_number = boot + 1, message.boot
            out.append(Sent(boot, frame, wire))
        return out

    def produced(self, boot: int | None = None) -> list[Frame]:
        """Each report once, at its first sending, in order (of one boot: the last one)."""
        sent = self.sent()
        if boot is None:
            boot = sent[-1].boot if sent else 0
        seen: set[int] = set()
        out: list[Frame] = []
        for item in sent:
            fresh = item.frame.seq not in seen
            if item.boot == boot and isinstance(item.frame.message, REPORTS) and fresh:
                seen.add(item.frame.seq)
                out.append(item.frame)
        return out

    def resent(self) -> int:
        sent = [s for s in self.sent() if isinstance(s.frame.message, REPORTS)]
        return len(sent) - len({(s.boot, s.frame.seq) for s in sent})

    def received(self) -> list[Message]:
        """Every good frame the board read (the gateway's REPORT_ACKs, RESENDs, PINGs)."""
        return [f.message for f in FrameDecoder().feed(self._trace()[1]) if isinstance(f, Frame)]

    def last_ack(self) -> int | None:
        acks = [m.seq for m in self.received() if isinstance(m, ReportAck)]
        return acks[-1] if acks else None

    def statuses(self) -> list[dict[str, str]]:
        """The ``status`` lines the board logged, as field dicts."""
        out = []
        for line in self.log().splitlines():
            if "status: " in line:
                fields = line.split("status: ", 1)[1].split(", ")
                out.append(dict(field.rsplit(" ", 1) for field in fields if " " in field))
        return out


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


# -- the whole pipe -------------------------------------------------------------------------


@pytest.fixture
def consumer(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    unique_name: str,
) -> Iterator[Consumer]:
    config = ConsumerConfig.model_validate(
        {
            "mqtt": {
                "host": mosquitto.host,
                "port": mosquitto.port,
                "client_id": f"consumer-{unique_name}",
                "topic_prefix": topic_prefix,
            },
            "influx": {"api": "v1", "url": influxd.url, "database": influx_db},
            "flush_interval": 0.2,
        }
    )
    consumer = Consumer(config)
    consumer.start()
    yield consumer
    consumer.stop()


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
    boards: list[HostBoard],
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    consumer: Consumer,
) -> Iterator[FirmwarePipe]:
    board = HostBoard(tmp_path, retransmit=500, interval=60).start()
    boards.append(board)
    pipe = FirmwarePipe(tmp_path, board, mosquitto, influxd, topic_prefix, influx_db)
    yield pipe
    pipe.gateway.stop()


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
    assert documented == {"seat", "beam", "door", "supply", "wait", "unplug", "plug", "status"}


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
