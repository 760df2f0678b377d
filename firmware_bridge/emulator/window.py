"""The board's window of reports not yet acknowledged, and what became of every report.

Spec: ``docs/protocol.md``, section 8. The board keeps each report it sends
(the very :class:`Frame`, so a resend is byte-identical: same seq, same bytes)
until a REPORT_ACK covers it, and sends everything it still holds again, oldest
first, when the retransmit timeout passes without progress, or at once when the
gateway asks with a RESEND (unless the last burst was under half a timeout ago).
The window is bounded: when full, the oldest HEARTBEAT is dropped first, then
the oldest report; and a report falls out once it is :data:`HOLD_HORIZON`
numbers old, so a held report is never far enough behind for the wrap-around
comparison to misread it. A reset empties the window (it lives in RAM).

The window also counts the reports it gave up this boot and whether the gateway
has heard that count: a WINDOW message (``docs/protocol.md``, section 8) carries
it, and it is confirmed once a REPORT_ACK covers that WINDOW's number. Until then
the board owes the gateway a WINDOW.

Beside the window, a ledger records every report once, in production order,
with its fate — what an end-to-end test compares the gateway's store against.

Sans-IO: time comes from an injected clock (real seconds, monotonic), nothing
is sent from here; :class:`~firmware_bridge.emulator.board.Board` drives it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from firmware_bridge.messages import Frame, Heartbeat

__all__ = ["HOLD_HORIZON", "ProducedReport", "ReportWindow", "covers"]

_SEQ_MOD = 0x1_0000
_HALF = 0x8000
#: A report is held only while it is among the last this many numbers the board used.
HOLD_HORIZON = 256

#: What became of a report, as far as the board knows:
#: ``held`` — in the window, not acknowledged yet (it will be sent again);
#: ``acked`` — a REPORT_ACK covered it: the gateway says it is stored;
#: ``evicted`` — dropped from the window unacknowledged (window full, or too old);
#: ``reset`` — still held when the board reset or was powered off (RAM lost);
#: ``untracked`` — retransmission is off: sent once and forgotten.
ReportFate = Literal["held", "acked", "evicted", "reset", "untracked"]


def covers(ack_seq: int, seq: int) -> bool:
    """Whether ``REPORT_ACK(ack_seq)`` covers the report numbered ``seq``: at or behind it."""
    return (ack_seq - seq) % _SEQ_MOD < _HALF


@dataclass(frozen=True, slots=True)
class ProducedReport:
    """One report the board produced, listed once however often it was sent."""

    #: 1 for the first power-up, one more for every reset; seq numbers restart with each boot.
    boot: int
    frame: Frame
    #: Simulated time when the board produced it (a resend keeps the original frame).
    sim_time: datetime
    fate: ReportFate
    #: At least one copy reached the wire intact (a gateway reading the port could decode it).
    on_wire: bool
    #: How often the board put it on the line: 1 + resends, whether or not they got out.
    attempts: int


@dataclass(slots=True, eq=False)  # records are compared by identity
class _Record:
    boot: int
    frame: Frame
    sim_time: datetime
    fate: ReportFate
    on_wire: bool = False
    attempts: int = 1
    in_ledger: bool = True

    def snapshot(self) -> ProducedReport:
        return ProducedReport(
            self.boot, self.frame, self.sim_time, self.fate, self.on_wire, self.attempts
        )


class ReportWindow:
    """Held reports of the current boot, the resend timer, and the ledger of all reports.

    ``retransmit_after`` (seconds) ``None`` turns holding off: every report is
    ``untracked`` and nothing is ever resent. The mutating methods return how many
    reports they acknowledged or dropped, for the board's counters.
    """

    def __init__(
        self,
        *,
        retransmit_after: float | None = None,
        limit: int = 128,
        clock: Callable[[], float] = time.monotonic,
        ledger_limit: int | None = None,
    ) -> None:
        if retransmit_after is not None and retransmit_after <= 0:
            raise ValueError(f"retransmit_after={retransmit_after} must be positive")
        if not 1 <= limit <= HOLD_HORIZON:
            raise ValueError(f"window limit {limit} is outside 1..{HOLD_HORIZON}")
        self.retransmit_after = retransmit_after
        self.limit = limit
        self._clock = clock
        self._ledger_limit = ledger_limit
        self._held: deque[_Record] = deque()
        self._ledger: list[_Record] = []
        # Resends put the very Frame object on the line again, so the line's journal
        # names a report by identity; the ledger keeps each frame alive while listed.
        self._by_frame: dict[int, _Record] = {}
        self._deadline: float | None = None
        #: When the last resend burst of this boot went out (timer or RESEND), for the guard.
        self._last_burst: float | None = None
        #: Reports given up unacknowledged this boot (window full, or too old).
        self.dropped = 0
        self._confirmed_dropped = 0
        #: The pending WINDOW, the first sent with its count and not yet covered by a
        #: REPORT_ACK: its seq and that count.
        self._window: tuple[int, int] | None = None

    @property
    def enabled(self) -> bool:
        return self.retransmit_after is not None

    def __len__(self) -> int:
        """Reports held: sent, not acknowledged, not given up."""
        return len(self._held)

    def held(self) -> list[Frame]:
        """The held frames, oldest first (the order they are resent in)."""
        return [record.frame for record in self._held]

    @property
    def owes_window(self) -> bool:
        """Reports were given up that no acknowledged WINDOW has told the gateway of yet."""
        return self.dropped != self._confirmed_dropped

    def window_sent(self, seq: int) -> None:
        """A WINDOW numbered ``seq`` carrying :attr:`dropped` went out.

        The first WINDOW with a count is the one to be confirmed: an ack that covers it
        also covers every later one, and any of them told the gateway this count.
        """
        if self._window is None or self._window[1] != self.dropped:
            self._window = (seq, self.dropped)

    def produced(self) -> list[ProducedReport]:
        """Every report produced (up to the ledger limit, newest kept), in production order."""
        return [record.snapshot() for record in self._ledger]

    # -- the board tells the window what happened ------------------------------------

    def numbered(self, seq: int) -> int:
        """The board used ``seq`` for a frame; drop held reports now too old. Returns how many."""
        dropped = 0
        while self._held and (seq - self._held[0].frame.seq) % _SEQ_MOD >= HOLD_HORIZON:
            self._leave(self._held.popleft(), "evicted")
            dropped += 1
        if not self._held:
            self._deadline = None
        if self._window is not None and (seq - self._window[0]) % _SEQ_MOD >= HOLD_HORIZON:
            self._window = None  # too old to be told apart from a future number: send another
        self.dropped += dropped
        return dropped

    def produce(self, frame: Frame, *, boot: int, sim_time: datetime) -> int:
        """The board is sending a new report; hold it. Returns how many reports it evicted."""
        record = _Record(boot, frame, sim_time, "held" if self.enabled else "untracked")
        self._ledger.append(record)
        self._by_frame[id(frame)] = record
        self._trim_ledger()
        if not self.enabled:
            return 0
        if not self._held:
            self._deadline = self._now() + self._timeout()
        self._held.append(record)
        if len(self._held) <= self.limit:
            return 0
        # Periodic reports are the cheapest to lose: the next HEARTBEAT says the same.
        victim = next(
            (r for r in self._held if isinstance(r.frame.message, Heartbeat)), self._held[0]
        )
        self._held.remove(victim)
        self._leave(victim, "evicted")
        self.dropped += 1
        return 1

    def ack(self, seq: int) -> int:
        """A REPORT_ACK for ``seq`` arrived: forget what it covers. Returns how many."""
        covered = [record for record in self._held if covers(seq, record.frame.seq)]
        if covered:
            self._held = deque(r for r in self._held if not covers(seq, r.frame.seq))
        for record in covered:
            self._leave(record, "acked")
        if covered:
            self._deadline = self._now() + self._timeout() if self._held else None
        if self._window is not None and covers(seq, self._window[0]):
            self._confirmed_dropped = self._window[1]  # the gateway has stored that count
            self._window = None
        return len(covered)

    def due(self) -> bool:
        """Whether a resend burst is due now (the timeout passed without progress).

        True starts the timer again: the caller numbers a WINDOW (which may let a
        too-old report fall out), then sends :meth:`resend`.
        """
        now = self._now()
        if self._deadline is None or now < self._deadline:
            return False
        self._deadline = now + self._timeout()
        self._last_burst = now
        return True

    def request(self) -> bool:
        """A RESEND arrived: make the burst due now, or at the end of the guard time.

        Only ever moves the timer earlier: to now, or, within half a timeout of the last
        burst, to half a timeout after it, so a gateway restarting in a loop cannot make
        the board resend more than twice as often as its timer would. A board holding
        nothing has nothing to send. Returns whether a burst is due now.
        """
        if self._deadline is None:  # holding off, or nothing held
            return False
        now = self._now()
        guard_end = now if self._last_burst is None else self._last_burst + self._timeout() / 2
        self._deadline = min(self._deadline, max(now, guard_end))
        return self._deadline <= now

    def resend(self) -> list[Frame]:
        """The held frames to send again, oldest first; each counts one more attempt."""
        for record in self._held:
            record.attempts += 1
        return self.held()

    def reset(self) -> int:
        """The board reset or lost power: the window is gone. Returns how many were held."""
        lost = len(self._held)
        while self._held:
            self._leave(self._held.popleft(), "reset")
        self._deadline = self._last_burst = None
        self.dropped = self._confirmed_dropped = 0
        self._window = None
        return lost

    def on_wire(self, frame: Frame) -> None:
        """An intact copy of ``frame`` reached the wire (the line's journal recorded it)."""
        record = self._by_frame.get(id(frame))
        if record is not None and record.frame is frame:
            record.on_wire = True

    # -- internals -----------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock()

    def _timeout(self) -> float:
        assert self.retransmit_after is not None
        return self.retransmit_after

    def _leave(self, record: _Record, fate: ReportFate) -> None:
        record.fate = fate
        if not record.in_ledger:
            self._by_frame.pop(id(record.frame), None)

    def _trim_ledger(self) -> None:
        limit = self._ledger_limit
        if limit is None or len(self._ledger) <= limit:
            return
        cut = len(self._ledger) - limit // 2
        for record in self._ledger[:cut]:
            record.in_ledger = False
            if record.fate != "held":  # a held one is still needed until it leaves the window
                self._by_frame.pop(id(record.frame), None)
        del self._ledger[:cut]
