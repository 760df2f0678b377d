"""``BookHouseEmulator``: the model, the board and a port, run on the event loop.

Usage::

    port = PtyPort(link="/tmp/qihe/serial-taoyuan-1")
    await port.open()                       # the gateway may open port.path now
    async with emu.attach(port):            # power-up: HELLO + state, then the day goes by
        emu.set_seat(3, True)               # sent at once
        await emu.unplug(2.0)               # yank the adapter for two seconds

With ``retransmit_after`` set the board holds every report until the gateway's
REPORT_ACK covers it and sends what it still holds again when that much real
time passes without progress, or at once when the gateway asks with a RESEND
(``docs/protocol.md``, section 8). :meth:`BookHouseEmulator.produced_reports` lists
every report once, with its fate, for tests that check nothing was lost.

Simulated time runs at ``config.speed`` sim-seconds per real second from
``config.start``. Open the port (and the gateway) before attaching if the
gateway must see HELLO: bytes sent before a reader opens the port are flushed by
pyserial, as with a real adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from firmware_bridge.emulator.board import Board
from firmware_bridge.emulator.config import EmulatorConfig
from firmware_bridge.emulator.line import DroppedFrame, JournalEntry, Line
from firmware_bridge.emulator.model import BookHouseModel, HouseState
from firmware_bridge.emulator.noise import LineNoise
from firmware_bridge.emulator.port import Port
from firmware_bridge.emulator.window import ProducedReport, ReportWindow
from firmware_bridge.errors import SerialLinkError
from firmware_bridge.messages import Frame, Report

__all__ = [
    "BookHouseEmulator",
]

log = logging.getLogger(__name__)

_RECONNECT_FIRST_S = 0.5
_RECONNECT_MAX_S = 10.0


@dataclass(frozen=True, slots=True)
class EmulatorState:
    """A snapshot: the house as the sensors see it, and the board and its line."""

    house: HouseState
    next_seq: int
    plugged: bool
    silent: bool
    noise_rate: float
    sent: int
    corrupted: int
    dropped: int
    commands: int
    malformed_in: int
    #: Reports held until a REPORT_ACK covers them (0 when retransmission is off).
    unacknowledged: int
    #: Frames sent again by the retransmit timer.
    resent: int
    #: Held reports forgotten because a REPORT_ACK covered them.
    acked_reports: int
    #: Held reports given up unacknowledged (window full, or too old).
    window_dropped: int
    #: WINDOW frames sent: first in every resend burst, and after acks while drops are unheard.
    windows: int = 0
    #: The board gave up reports that no acknowledged WINDOW has told the gateway of yet.
    owes_window: bool = False


class BookHouseEmulator:
    """One emulated sensor board. The constructor does no I/O; :meth:`attach` runs it."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config = config or EmulatorConfig()
        self.model = BookHouseModel(
            seats=config.seats,
            start=config.start,
            seed=config.seed,
            report_interval_s=config.report_interval_s,
            simulate=config.simulate,
            hours=config.opening_hours(),
            door_hold=config.door_hold,
            stuck_report_after=config.stuck_report_after,
            counter=config.counter,
            door=config.door,
            presence_seats=config.presence_seats,
            lunch_away=config.lunch_away,
        )
        self.model.set_supply(config.supply_mv)
        for seat in config.stuck_seats:
            self.model.set_stuck(seat, report=not config.stuck_silent)
        retransmit_after = config.retransmit_after
        window = ReportWindow(
            retransmit_after=None if retransmit_after is None else retransmit_after.total_seconds(),
            limit=config.ack_window,
            # Real, monotonic time (the event loop's clock): the timeout is not simulated.
            clock=time.monotonic,
            ledger_limit=config.journal_limit,
        )
        self.board = Board(
            self.model, config.device_id, first_seq=config.initial_seq, window=window
        )
        self.line = Line(
            LineNoise(random.Random(f"noise-{config.seed}"), config.noise_rate),
            max_pending=config.max_pending_frames,
            journal_limit=config.journal_limit,
        )
        self.line.silent = config.silent
        self.line.on_record = self._on_record
        self._port: Port | None = None
        self._unplugged = False
        self._lost = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._real_base = 0.0
        self._sim_base = config.start
        self._powered_before = False

    # -- what a test or the demo reads -------------------------------------------

    @property
    def journal(self) -> list[JournalEntry]:
        """Every frame that went onto the wire, in order (``corrupted`` ones were noised)."""
        return self.line.journal

    @property
    def dropped(self) -> list[DroppedFrame]:
        """Frames produced but never put on the wire (silent, unplugged, overflow)."""
        return self.line.dropped

    @property
    def unacknowledged(self) -> int:
        """Reports the board holds until a REPORT_ACK covers them; wait for 0 to see all stored."""
        return self.board.unacknowledged

    def produced_reports(self) -> list[ProducedReport]:
        """Every report the board produced, once each, in production order.

        Listed whether or not any copy reached the wire, however often it was resent;
        ``boot`` tells boots apart (seq restarts at each), ``on_wire`` says whether an
        intact copy ever got out. ``fate`` is what the board knows became of it:
        ``acked`` (the gateway said it is stored), ``held`` (it will be sent again until
        acknowledged), ``evicted`` or ``reset`` (given up: lost unless a copy got
        through, so it may or may not be in the gateway's store), ``untracked``
        (retransmission off). So a gateway that acknowledges must end up storing every
        report that is not ``evicted`` or ``reset``, once, in this order; wait for
        :attr:`unacknowledged` to reach 0 first. With ``journal_limit`` only the newest
        are kept.
        """
        return self.board.window.produced()

    def reports_on_wire(self) -> list[ProducedReport]:
        """The produced reports of which at least one intact copy reached the wire."""
        return [report for report in self.produced_reports() if report.on_wire]

    @property
    def sim_now(self) -> datetime:
        """Simulated time now (UTC); the model catches up at the next step."""
        if self._loop is None:
            return self.model.now
        elapsed = self._loop.time() - self._real_base
        return self._sim_base + timedelta(seconds=elapsed * self.config.speed)

    @property
    def state(self) -> EmulatorState:
        """A snapshot as of the last simulation step (at most one tick old)."""
        counters = self.line.counters
        return EmulatorState(
            house=self.model.state(),
            next_seq=self.board.next_seq,
            plugged=self.line.connected,
            silent=self.line.silent,
            noise_rate=self.line.noise.rate,
            sent=counters.sent,
            corrupted=counters.corrupted,
            dropped=sum(counters.dropped.values()),
            commands=self.board.counters.commands,
            malformed_in=self.board.counters.malformed,
            unacknowledged=self.board.unacknowledged,
            resent=self.board.counters.resent,
            acked_reports=self.board.counters.acked_reports,
            window_dropped=self.board.counters.window_dropped,
            windows=self.board.counters.windows,
            owes_window=self.board.window.owes_window,
        )

    # -- running ---------------------------------------------------------------

    @asynccontextmanager
    async def attach(self, port: Port) -> AsyncIterator[BookHouseEmulator]:
        """Plug the board into ``port``, power it up, and run until the block ends.

        A port that is not open yet is opened here and closed again at the end. Leaving
        the block powers the board off; attaching again boots it afresh (HELLO, seq 0).
        """
        if self._port is not None:
            raise RuntimeError("emulator is already attached to a port")
        self._loop = asyncio.get_running_loop()
        self._real_base = self._loop.time()
        self._sim_base = self.model.now
        self._port = port
        opened_here = not port.is_open
        try:
            if opened_here:
                await port.open()
            _discard_input(port.fd)
            self._plug_in()
            self._send(self.board.reboot() if self._powered_before else self.board.power_up())
            self._powered_before = True
            body_error: BaseException | None = None
            try:
                async with asyncio.TaskGroup() as tasks:
                    ticker = tasks.create_task(self._tick_forever(), name="emulator-ticker")
                    keeper = tasks.create_task(self._keep_connected(), name="emulator-reconnect")
                    try:
                        yield self
                    except BaseException as exc:
                        body_error = exc
                        raise
                    finally:
                        self._advance()
                        ticker.cancel()
                        keeper.cancel()
            except BaseExceptionGroup as group:
                # The TaskGroup wraps an error of the caller's block; hand it back unwrapped.
                if body_error is not None and list(group.exceptions) == [body_error]:
                    raise body_error from body_error.__cause__
                raise
        finally:
            self.line.disconnect()
            self.board.power_off()
            if opened_here:
                port.close()
            self._port = None
            self._loop = None

    async def run(self, port: Port) -> None:
        """Run on ``port`` until cancelled."""
        async with self.attach(port):
            await asyncio.Event().wait()

    async def _tick_forever(self) -> None:
        pause = self.config.tick.total_seconds()
        while True:
            await asyncio.sleep(pause)
            self._advance()

    def _advance(self) -> None:
        if self._loop is not None:
            # Resends first: oldest first on the wire, and a report produced in this very
            # step is not sent twice in a row.
            self._resend_due()
            self._send(self.board.emit(self.model.step(self.sim_now)))

    def _resend_due(self) -> None:
        burst = self.board.resend_due()
        self._send(burst[:1])  # the WINDOW: a new frame, not a resend
        self._send(burst[1:], resent=True)

    def _send(self, frames: list[Frame], *, resent: bool = False) -> None:
        now = self.model.now
        for frame in frames:
            self.line.send(frame, now, resent=resent)

    def _on_record(self, entry: JournalEntry) -> None:
        if not entry.corrupted:
            self.board.window.on_wire(entry.frame)

    def _report(self, reports: list[Report]) -> None:
        self._send(self.board.emit(reports))

    def _plug_in(self) -> None:
        assert self._port is not None
        self.line.connect(self._port.fd, self._receive, self._on_line_failure)

    def _receive(self, data: bytes) -> None:
        self._advance()
        self._send(self.board.receive(data))
        self._resend_due()  # a RESEND makes the burst due at once

    def _on_line_failure(self, exc: OSError) -> None:
        if self._port is not None:
            self._port.close()
        self._lost.set()

    async def _keep_connected(self) -> None:
        """Reopen a port that failed under us (a real adapter unplugged), with capped backoff."""
        while True:
            await self._lost.wait()
            self._lost.clear()
            delay = _RECONNECT_FIRST_S
            while self._port is not None and not self.line.connected and not self._unplugged:
                try:
                    await self._port.open()
                    self._plug_in()
                    log.info("serial port %s is back", self._port.name)
                except SerialLinkError as exc:
                    log.warning("%s; retrying in %.1f s", exc, delay)
                    await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                    delay = min(delay * 2, _RECONNECT_MAX_S)

    # -- manual control ----------------------------------------------------------

    def set_seat(self, seat: int, occupied: bool) -> None:
        """Seat ``seat`` (1-based) becomes occupied or free; its SEAT frame is sent at once."""
        self._advance()
        self._report(self.model.set_seat(seat, occupied))

    def set_presence(self, seat: int, present: bool) -> None:
        """Someone is at seat ``seat`` or nobody is (books stay); SEAT_PRESENCE is sent at once.

        Raises :class:`~firmware_bridge.errors.NoSuchSensorError` for a seat without a
        presence channel (beyond ``presence_seats``).
        """
        self._advance()
        self._report(self.model.set_presence(seat, present))

    def count_people(self, *, entered: int = 0, left: int = 0) -> None:
        """People pass the entrance now; a PEOPLE frame (and door frames) per passage.

        Raises :class:`~firmware_bridge.errors.NoSuchSensorError` on a board configured
        without a counter (``counter=False``).
        """
        self._advance()
        self._report(self.model.count_people(entered=entered, left=left))

    def pause_simulation(self) -> None:
        """Freeze the visitors; heartbeats and manual changes go on."""
        self._advance()
        self.model.pause()

    def resume_simulation(self) -> None:
        self._advance()
        self.model.resume()

    def reboot(self) -> None:
        """Power-cycle the board: seq from 0, uptime and totals reset, HELLO and state again.

        Reports held for REPORT_ACK are lost with the board's RAM (fate ``reset``).
        """
        self._advance()
        self._send(self.board.reboot())

    # -- faults ------------------------------------------------------------------

    def set_noise(self, rate: float) -> None:
        """Noise bursts with probability ``rate`` (0..1) per frame sent."""
        self.line.noise.rate = rate

    def set_stuck(self, seat: int, stuck: bool = True, *, report: bool = True) -> None:
        """Seat ``seat``'s sensor sticks at occupied; ``report=False`` never raises FAULT STUCK."""
        self._advance()
        self._report(self.model.set_stuck(seat, stuck, report=report))

    def set_silent(self, silent: bool = True) -> None:
        """A silent board keeps its state and obeys commands but nothing it sends gets out."""
        self._advance()
        self.line.silent = silent

    def set_supply(self, supply_mv: int | None) -> None:
        """Hold the supply voltage (low supply: e.g. 3250 mV); ``None``: back to the drain curve."""
        self._advance()
        self.model.set_supply(supply_mv)

    async def unplug(self, seconds: float | None = None, *, power_cycle: bool = False) -> None:
        """Unplug the port; replug after ``seconds`` (``None``: stay out until :meth:`replug`).

        With ``power_cycle`` the board was powered through the cable and reboots when replugged.
        """
        if self._port is None:
            raise RuntimeError("emulator is not attached")
        self._advance()
        self._unplugged = True
        self.line.disconnect()
        self._port.close()
        if seconds is not None:
            await asyncio.sleep(seconds)
            await self.replug(power_cycle=power_cycle)

    async def replug(self, *, power_cycle: bool = False) -> None:
        """Plug the port in again: a new pty (the link follows), or the device reopened."""
        if self._port is None:
            raise RuntimeError("emulator is not attached")
        # What the board sent while unplugged is dropped, not delayed (a board that holds
        # reports sends them again at its next resend).
        self._advance()
        await self._port.open()
        self._unplugged = False
        if not self.line.connected:
            self._plug_in()
        if power_cycle:
            self._send(self.board.reboot())


def _discard_input(fd: int) -> None:
    """A board powering up starts with an empty receive buffer.

    Whatever a gateway wrote to the port before (a RESEND when it opened the port) never
    reached a board that was not running yet.
    """
    os.set_blocking(fd, False)  # as the line sets it next
    # Stops at "would block" (drained) or at a failing port, which the line then reports.
    with contextlib.suppress(OSError):
        while os.read(fd, 4096):
            pass
