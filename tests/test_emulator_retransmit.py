"""Acknowledged reports over real pty pairs: the board resends what the gateway has not stored."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort
from firmware_bridge.messages import (
    Ack,
    Frame,
    Heartbeat,
    Hello,
    Nack,
    Ping,
    Report,
    ReportAck,
    Resend,
    Seat,
    Window,
)
from tests.test_emulator_pty import SATURDAY_AFTERNOON, Gateway

RESEND = timedelta(milliseconds=300)
POWER_UP = 8  # HELLO, four seats, door, heartbeat, people


class AckingGateway(Gateway):
    """A gateway that stores the board's reports in order, once each, and acknowledges them.

    A report after a gap is not stored: it waits for the board's resend, which brings
    the missing ones first. A repeat is dropped and answered with the current ack. A
    WINDOW's number is never resent, so it is skipped once the reports before it are in.
    """

    def __init__(self, path: str | Path, *, expect: int | None = None) -> None:
        self.stored: list[Frame] = []
        self.next_seq = expect
        self._handled = 0
        self._own_seq = 0
        self._windows: set[int] = set()
        super().__init__(path)

    def _readable(self) -> None:
        super()._readable()
        for frame in self.frames[self._handled :]:
            self._on_frame(frame)
        self._handled = len(self.frames)

    def _on_frame(self, frame: Frame) -> None:
        if isinstance(frame.message, Window):
            self._windows.add(frame.seq)
            self._skip_windows()
            return
        if not isinstance(frame.message, Report):
            return
        if self.next_seq is not None and frame.seq != self.next_seq:
            if (self.next_seq - 1 - frame.seq) % 0x1_0000 < 0x8000:  # a repeat
                self._ack((self.next_seq - 1) % 0x1_0000)
            return
        self.stored.append(frame)
        self.next_seq = (frame.seq + 1) % 0x1_0000
        self._skip_windows()
        self._ack((self.next_seq - 1) % 0x1_0000)

    def _skip_windows(self) -> None:
        while self.next_seq in self._windows:
            self._windows.discard(self.next_seq)
            self.next_seq = (self.next_seq + 1) % 0x1_0000

    def _ack(self, seq: int) -> None:
        self.send(Frame(seq=self._own_seq, message=ReportAck(seq)))
        self._own_seq = (self._own_seq + 1) % 0x1_0000


def _board(**overrides: object) -> BookHouseEmulator:
    fields: dict[str, object] = {
        "seats": 4,
        "simulate": False,
        "report_interval_s": 3600,
        "start": SATURDAY_AFTERNOON,
        "supply_mv": 4000,
        "retransmit_after": RESEND,
    }
    fields.update(overrides)
    return BookHouseEmulator(EmulatorConfig.model_validate(fields))


async def test_without_acks_the_board_resends_the_same_frames_after_the_timeout() -> None:
    emu = _board()
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            async with emu.attach(port):
                await gw.wait_for(lambda: len(gw.frames) == 2 * POWER_UP + 1)
                journal = list(emu.journal)
                produced = emu.produced_reports()

    first, window, again = gw.frames[:POWER_UP], gw.frames[POWER_UP], gw.frames[POWER_UP + 1 :]
    assert again == first
    assert [f.seq for f in first] == list(range(POWER_UP))
    assert (window.seq, window.message) == (
        POWER_UP,
        Window.of(POWER_UP, emu.board.hello().boot, 0, range(POWER_UP)),
    )
    assert [e.resent for e in journal] == [False] * (POWER_UP + 1) + [True] * POWER_UP
    waited = journal[POWER_UP].sent_at - journal[POWER_UP - 1].sent_at
    assert waited >= RESEND - timedelta(milliseconds=60)  # the timer ticks with the emulator
    assert [r.frame for r in produced] == first
    assert all(r.attempts == 2 and r.on_wire and r.fate == "held" for r in produced)
    assert emu.state.resent == POWER_UP
    assert emu.state.next_seq == POWER_UP + 1  # resends take no new numbers; the WINDOW one


async def test_a_report_ack_stops_resending_what_it_covers_across_the_seq_wrap() -> None:
    emu = _board(initial_seq=0xFFFA)
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            async with emu.attach(port):
                await gw.wait_for(lambda: len(gw.frames) >= POWER_UP)
                gw.send(Frame(seq=1, message=ReportAck(0xFFFF)))
                await gw.wait_for(lambda: emu.unacknowledged == 2)
                after_first_ack = len(gw.frames)
                await gw.wait_for(lambda: len(gw.frames) >= after_first_ack + 3)
                gw.send(Frame(seq=2, message=ReportAck(1)))
                await gw.wait_for(lambda: emu.unacknowledged == 0)
                settled = len(gw.frames)
                await asyncio.sleep(2 * RESEND.total_seconds())
                state = emu.state

    assert [f.seq for f in gw.frames[:POWER_UP]] == [*range(0xFFFA, 0x1_0000), 0, 1]
    # The resend burst: a WINDOW numbered 2 (the next number), then the two held reports.
    assert [f.seq for f in gw.frames[after_first_ack:settled]] == [2, 0, 1]
    assert len(gw.frames) == settled  # nothing held, nothing resent
    assert not any(isinstance(m, Ack | Nack) for m in gw.messages)
    assert state.acked_reports == POWER_UP
    assert {r.fate for r in emu.produced_reports()} == {"acked"}


async def test_a_full_window_drops_heartbeats_first_and_counts_them() -> None:
    emu = _board(ack_window=POWER_UP)
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            async with emu.attach(port):
                await gw.wait_for(lambda: len(gw.frames) >= POWER_UP)
                emu.set_seat(1, True)  # the window is full: the heartbeat goes
                emu.set_seat(2, True)  # no heartbeat left: the oldest report (HELLO) goes
                sent = POWER_UP + 2
                await gw.wait_for(lambda: len(gw.frames) >= sent + 1 + POWER_UP)
                state = emu.state
                produced = emu.produced_reports()

    window, resent = gw.frames[sent], gw.frames[sent + 1 : sent + 1 + POWER_UP]
    assert isinstance(window.message, Window)
    assert window.message.dropped == 2  # the board tells the gateway what it gave up
    assert [type(f.message) for f in resent].count(Heartbeat) == 0
    assert not any(isinstance(f.message, Hello) for f in resent)
    assert resent == [r.frame for r in produced if r.fate == "held"]
    assert [type(r.frame.message) for r in produced if r.fate == "evicted"] == [Hello, Heartbeat]
    assert state.window_dropped == 2
    assert state.unacknowledged == POWER_UP


async def test_reports_produced_while_unplugged_come_through_after_replug_as_resends(
    tmp_path: Path,
) -> None:
    link = tmp_path / "usb-qihe-taoyuan-1"
    emu = _board()
    async with PtyPort(link=link) as port, emu.attach(port):
        with AckingGateway(link) as gw:
            await gw.wait_for(lambda: emu.unacknowledged == 0 and len(gw.stored) == POWER_UP)
            await emu.unplug()
            await gw.wait_for(lambda: gw.hung_up)
        emu.set_seat(1, True)
        emu.count_people(entered=1)
        await asyncio.sleep(RESEND.total_seconds() * 1.5)  # resends while unplugged go nowhere
        await emu.replug()
        with AckingGateway(link, expect=gw.next_seq) as gw2:
            await gw2.wait_for(lambda: emu.unacknowledged == 0)
        produced = emu.produced_reports()

    assert {d.reason for d in emu.dropped} == {"unplugged"}
    missed = [
        d.frame for d in emu.dropped if not d.resent and not isinstance(d.frame.message, Window)
    ]
    assert missed == [r.frame for r in produced[POWER_UP:]]
    assert any(d.resent for d in emu.dropped)  # resends went nowhere while unplugged
    assert gw.stored + gw2.stored == [r.frame for r in produced]
    assert all(e.resent for e in emu.journal if e.frame in gw2.stored)
    assert {r.fate for r in produced} == {"acked"}
    assert all(r.on_wire for r in produced)


async def test_with_line_noise_an_acking_gateway_stores_every_report_once_in_order() -> None:
    emu = _board(noise_rate=0.3, seed=4)
    async with PtyPort() as port:
        with AckingGateway(port.path) as gw:
            async with emu.attach(port):
                for n in range(24):
                    emu.set_seat(n % 4 + 1, n % 3 == 0)
                await gw.wait_for(lambda: emu.unacknowledged == 0, timeout=8)
                produced = emu.produced_reports()

    assert any(e.corrupted for e in emu.journal)
    assert emu.state.resent > 0
    assert gw.stored == [r.frame for r in produced]
    assert [r.frame for r in emu.reports_on_wire()] == gw.stored


async def test_reports_held_while_the_board_was_silent_come_out_when_it_speaks_again() -> None:
    emu = _board()
    async with PtyPort() as port:
        with AckingGateway(port.path) as gw:
            async with emu.attach(port):
                await gw.wait_for(lambda: emu.unacknowledged == 0)
                emu.set_silent(True)
                emu.set_seat(3, True)
                await asyncio.sleep(RESEND.total_seconds() * 1.5)
                emu.set_silent(False)
                await gw.wait_for(lambda: emu.unacknowledged == 0)

    assert [(d.frame.message, d.reason) for d in emu.dropped][:1] == [(Seat(3, True), "silent")]
    assert gw.stored[-1].message == Seat(3, True)
    assert [r.frame for r in emu.produced_reports()] == gw.stored


async def test_a_resend_on_the_line_brings_the_burst_at_once_and_it_is_journalled_as_resends() -> (
    None
):
    emu = _board(retransmit_after=timedelta(hours=1))  # the timer cannot be what sends it
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            async with emu.attach(port):
                await gw.wait_for(lambda: len(gw.frames) >= POWER_UP)
                gw.send(Frame(seq=1, message=Resend()))
                await gw.wait_for(lambda: len(gw.frames) >= 2 * POWER_UP + 1)
                journal = list(emu.journal)
                counters = emu.board.counters

    first, window, again = gw.frames[:POWER_UP], gw.frames[POWER_UP], gw.frames[POWER_UP + 1 :]
    assert (window.seq, window.message) == (
        POWER_UP,
        Window.of(POWER_UP, emu.board.hello().boot, 0, range(POWER_UP)),
    )
    assert again == first
    assert [e.resent for e in journal] == [False] * (POWER_UP + 1) + [True] * POWER_UP
    assert (counters.resend_requests, counters.windows, counters.resent) == (1, 1, POWER_UP)
    assert not any(isinstance(m, Ack | Nack) for m in gw.messages)


async def test_a_resend_sent_before_the_board_powered_up_never_reaches_it() -> None:
    emu = _board(retransmit_after=timedelta(hours=1))
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            gw.send(Frame(seq=1, message=Resend()))  # the gateway opened the port first
            await asyncio.sleep(0.05)
            async with emu.attach(port):
                await gw.wait_for(lambda: len(gw.frames) >= POWER_UP)
                gw.send(Frame(seq=2, message=Ping()))  # the board reads what came after
                await gw.wait_for(lambda: Ack(2) in gw.messages)
                counters = emu.board.counters

    assert counters.resend_requests == counters.windows == counters.resent == 0
    assert len(gw.frames) == POWER_UP + 1


@pytest.mark.parametrize("retransmit_after", [RESEND, None], ids=["holding", "not_holding"])
async def test_a_report_ack_gets_no_reply(retransmit_after: timedelta | None) -> None:
    emu = _board(retransmit_after=retransmit_after)
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            async with emu.attach(port):
                await gw.wait_for(lambda: len(gw.frames) >= POWER_UP)
                gw.send(Frame(seq=70, message=ReportAck(3)))
                gw.send(Frame(seq=71, message=ReportAck(5000)))  # never used: ignored
                gw.send(Frame(seq=72, message=Ping()))
                await gw.wait_for(lambda: Ack(72) in gw.messages)
                state = emu.state
                counters = emu.board.counters

    replies = [f for f in gw.frames if isinstance(f.message, Ack | Nack)]
    assert replies == [Frame(seq=POWER_UP, message=Ack(72))]
    assert counters.report_acks == 2
    assert counters.stale_acks == 1
    assert state.malformed_in == 0
    assert state.commands == 1


async def test_by_default_the_board_holds_nothing_and_never_resends() -> None:
    emu = _board(retransmit_after=None)
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            async with emu.attach(port):
                await gw.wait_for(lambda: len(gw.frames) >= POWER_UP)
                await asyncio.sleep(2 * RESEND.total_seconds())
                unacknowledged = emu.unacknowledged

    assert len(gw.frames) == POWER_UP
    assert unacknowledged == 0
    assert {r.fate for r in emu.produced_reports()} == {"untracked"}
    assert not any(e.resent for e in emu.journal)
