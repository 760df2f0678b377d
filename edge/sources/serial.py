"""Serial source: a sensor board on a serial port, through the firmware bridge.

The port may vanish (a replugged USB adapter) and come back, perhaps after a
long time: the source reopens it with capped backoff, forever, and counts it.
Each time it opens the port it asks the board for the reports it holds (RESEND,
``docs/protocol.md`` section 8): what the board sent while no one read the port
comes at once, not at the board's next resend timeout.

:meth:`SerialSource.command` sends the board a command (``docs/protocol.md`` section 7),
numbered with the gateway's own seq, and waits for the ACK or NACK that names that seq,
sending the same frame again when none comes.
"""

from __future__ import annotations

import asyncio
import logging

from edge.config import SerialPortConfig
from edge.normalise import FrameNormaliser, LinkCounters
from edge.sequence import SequenceStore, TrackerState
from edge.sources.base import Emit
from edge.stamp_journal import StampJournal
from firmware_bridge.errors import FrameError, SerialLinkError
from firmware_bridge.link import SerialLink
from firmware_bridge.messages import (
    Ack,
    Frame,
    GatewayMessage,
    Hello,
    Identify,
    Nack,
    Ping,
    Reboot,
    ReportAck,
    Resend,
    SetReportInterval,
    Window,
)
from qihe.backoff import Backoff
from qihe.clock import Clock, utc_now
from qihe.contract import LinkReading
from qihe.once import OncePerKey

__all__ = ["BoardCommand", "SerialSource"]

log = logging.getLogger(__name__)

#: The commands a board carries out and answers with ACK or NACK.
BoardCommand = Ping | Identify | Reboot | SetReportInterval


class SerialSource:
    """One board's port: readings go to ``emit``; the board's numbering is kept in ``store``
    (the outbox), which says when it is stored, so the board can be acknowledged."""

    def __init__(
        self,
        port: SerialPortConfig,
        *,
        site: str,
        gateway: str,
        emit: Emit,
        store: SequenceStore,
        clock: Clock = utc_now,
        journal: StampJournal | None = None,
    ) -> None:
        self.name = f"serial:{port.device}"
        self.port = port
        self._emit = emit
        self._store = store
        self._normaliser = FrameNormaliser(site, gateway, port.device, clock=clock)
        self._link: SerialLink | None = None
        self._tx_seq = 0
        self._heard_since_ack = False
        self._registered = False
        self.acks_sent = 0
        self.resends_sent = 0
        self._backoff = Backoff(
            port.reconnect_min.total_seconds(), port.reconnect_max.total_seconds()
        )
        self.connected = asyncio.Event()
        # Once per kind and per id: line noise must not flood the journal of an SD-card Pi.
        self._errors_said = OncePerKey()
        self._hello_ids_said = OncePerKey()
        self._board_dropped = 0
        self._journal = journal
        #: The journal's position when the outbox last took the board's state.
        self._journal_mark = 0
        #: Commands awaiting the board's reply, by the seq of their frame.
        self._replies: dict[int, asyncio.Future[Ack | Nack]] = {}

    @property
    def counters(self) -> LinkCounters:
        return self._normaliser.counters

    def link_reading(self) -> LinkReading:
        return self._normaliser.link_reading(self.port.device)

    def _register(self) -> None:
        """Once: resume the board's numbering from the store, and store it with every commit."""
        if self._registered:
            return
        self._registered = True
        device = self.port.device
        journal = self._journal
        published = [] if journal is None else journal.open()
        self._normaliser.restore(self._store.sequence_state.get(device), published)
        if journal is not None:
            self._normaliser.on_stamp = journal.record
        self._store.track_sequence(device, self._state_to_store)
        self._store.on_commit(self._on_commit)

    def _state_to_store(self) -> TrackerState:
        """The board's state for a commit; the stamps journalled so far go with it."""
        if self._journal is not None:
            self._journal_mark = self._journal.mark()
        return self._normaliser.sequence_state

    def close_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()

    def _on_commit(self, sequences: dict[str, TrackerState]) -> None:
        """Tell the board which of its reports are stored, so it can stop resending them.

        Sent after every commit in which the board spoke: if an ack is lost on the
        wire, the board's resends make us say it again.
        """
        state = sequences.get(self.port.device)
        if state is not None and self._journal is not None:
            self._journal.covered(self._journal_mark)
        link = self._link
        if state is None or link is None or not self._heard_since_ack:
            return
        point = state.ack_point()
        if point is None:
            return
        if self._send(link, ReportAck(point)):
            self._heard_since_ack = False
            self.acks_sent += 1

    def _ask_for_held_reports(self, link: SerialLink) -> None:
        """Right after opening: what the board sent while no one read the port, now.

        Never answered when the board holds nothing, and never retried: the board's own
        resend timer covers a lost RESEND, and a board that predates RESEND answers NACK
        UNKNOWN_COMMAND, a reply that carries no reading.
        """
        if self._send(link, Resend()):
            self.resends_sent += 1

    def _send(self, link: SerialLink, message: GatewayMessage) -> bool:
        """Send one frame numbered with our own seq; False if the port is gone."""
        try:
            link.send(Frame(self._tx_seq, message))
        except SerialLinkError:
            return False
        self._tx_seq = (self._tx_seq + 1) % 0x10000
        return True

    async def command(
        self, message: BoardCommand, *, attempts: int, wait: float
    ) -> Ack | Nack | None:
        """Send ``message`` and return the board's ACK or NACK of it; None when none came
        after ``attempts`` sendings ``wait`` seconds apart (the same frame each time, so a
        late reply to the first still matches). Raise :class:`SerialLinkError` when the port
        is not open."""
        frame = Frame(self._tx_seq, message)
        self._tx_seq = (self._tx_seq + 1) % 0x10000
        reply: asyncio.Future[Ack | Nack] = asyncio.get_running_loop().create_future()
        self._replies[frame.seq] = reply
        try:
            for _ in range(attempts):
                link = self._link
                if link is None:
                    raise SerialLinkError(f"serial port {self.port.path} is not open")
                link.send(frame)
                try:
                    async with asyncio.timeout(wait):
                        return await asyncio.shield(reply)
                except TimeoutError:
                    continue
            return None
        finally:
            del self._replies[frame.seq]

    def _on_event(self, event: Frame | FrameError) -> None:
        self._heard_since_ack = True
        if isinstance(event, FrameError):
            self._normaliser.on_error(event)
            if self._errors_said.first(event.kind):
                log.warning("%s: dropped a bad frame (%s): %s", self.port.path, event.kind, event)
            return
        reading = self._normaliser.on_frame(event)
        if reading is not None:
            self._emit(reading)
        message = event.message
        if isinstance(message, Ack | Nack):
            waiting = self._replies.get(message.ref_seq)
            if waiting is not None and not waiting.done():
                waiting.set_result(message)
        elif isinstance(message, Window):
            self._on_window()
        elif isinstance(message, Hello) and message.device_id != self.port.device:
            self._on_foreign_hello(message.device_id)

    def _on_window(self) -> None:
        """The board said it gave reports up: say so once per rise of its count."""
        dropped = self._normaliser.board_dropped
        if dropped > self._board_dropped:
            log.warning(
                "%s：板子 %s 本次启动已放弃 %d 条未确认的报告（窗口满或过旧）/ "
                "board %s gave up %d unacknowledged reports this boot (window full or too old)",
                self.port.path, self.port.device, dropped, self.port.device, dropped,
            )  # fmt: skip
        self._board_dropped = dropped

    def _on_foreign_hello(self, device_id: str) -> None:
        if not self._hello_ids_said.first(device_id):
            return
        # Once per id: the port's configuration names the board (docs/protocol.md, HELLO).
        log.warning(
            "%s：板子自称 %s，配置为 %s，读数仍记在 %s 名下 / the board calls itself %s, "
            "the port is configured for %s; readings keep the configured name",
            self.port.path, device_id, self.port.device, self.port.device,
            device_id, self.port.device,
        )  # fmt: skip

    async def run(self) -> None:
        self._register()
        opened_before = False
        while True:
            link = SerialLink(self.port.path, self._on_event, baudrate=self.port.baudrate)
            try:
                await link.open()
                self._link = link
                # pyserial emptied the input at open; the board's burst answers from here on.
                self._ask_for_held_reports(link)
                if opened_before:
                    self._normaliser.on_reconnect()
                opened_before = True
                self._backoff.reset()
                self.connected.set()
                log.info("serial port %s open (device %s)", self.port.path, self.port.device)
                await link.wait_closed()
            except SerialLinkError as exc:
                delay = self._backoff.next_delay()
                if self.connected.is_set() or self._backoff.failures == 1:
                    log.warning("%s; retrying in %.1fs", exc, delay)
                self.connected.clear()
                await asyncio.sleep(delay)
            finally:
                self._link = None
                link.close()
