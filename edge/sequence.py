"""Classify a board's 16-bit frame sequence numbers, with retransmission in mind.

A board numbers its frames; with acknowledged reports (``docs/protocol.md``) it
sends again, with the same numbers, every report the gateway has not
acknowledged as stored. So a number behind the newest one is either a repeat
(drop it: already stored) or fills a gap left by a frame that line noise
destroyed (keep it). The tracker remembers the gaps within a window, tells
which number the gateway may acknowledge (everything up to the first gap), and
gives a gap up as lost once it falls too far behind to ever be resent.

A frame that fills a gap arrives late, after newer frames. Readings are stamped
when they arrive, so a late filler gets the time just before the frame that
revealed its gap (one microsecond per position), which keeps every sensor's
readings in the order the board produced them. The tracker gives every new frame
its stamp: the arrival time, moved later when needed so that the frame before
lies at least one microsecond per number behind it. Then the fillers' stamps are
free, and no two readings of a board share a time (``docs/influxdb.md``).

A board that holds reports says which it still holds in a WINDOW, first in
every resend burst: a gap it no longer holds will never be filled, so the
tracker gives it up at once and the acknowledgement moves past it; the WINDOW's
count of reports the board gave up is kept per boot. A tracker that starts with
no state for a board (a fresh state folder, or the board restarted unseen) has
not seen the numbers before the first frame it meets: the board may still hold
them, so they are open gaps too, until a WINDOW or the boot's HELLO (nothing
precedes a HELLO in its boot) says otherwise. An acknowledgement never covers a
number the gateway has not stored.

Its state is a small value (:class:`TrackerState`, stored as the text of
:meth:`TrackerState.to_json`) that the outbox stores in the same transaction as
the readings, so a gateway killed at any moment resumes exactly where its store
left off. What a serial source needs of that store is :class:`SequenceStore`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from firmware_bridge.messages import WINDOW_SPAN

__all__ = [
    "GIVE_UP_AFTER",
    "CommitListener",
    "SequenceStore",
    "SequenceTracker",
    "TrackerState",
]

_MOD = 0x10000
_HALF = 0x8000
#: A gap this far behind the newest frame is lost for good: a board's resend window
#: (128 reports, ``docs/protocol.md``) cannot reach back that far.
GIVE_UP_AFTER = 256


class Verdict(Enum):
    NEW = "new"
    REPEAT = "repeat"
    RESTART = "restart"  # the board started numbering afresh without a HELLO we saw


@dataclass(frozen=True, slots=True)
class TrackerState:
    """What must survive a restart: the newest number and the open gaps behind it,
    each with the time (µs since the epoch) its filler will be stamped with."""

    last: int | None = None
    gaps: tuple[tuple[int, int], ...] = ()
    #: The boot number of the board's last HELLO: the same number again is a resend.
    boot: int | None = None
    #: Reports this boot of the board gave up unacknowledged, as its last WINDOW said.
    dropped: int = 0

    def to_json(self) -> str:
        """The stored form (a JSON object); the store keeps it as it is, unread."""
        return json.dumps(
            {
                "last": self.last,
                "gaps": [list(gap) for gap in self.gaps],
                "boot": self.boot,
                "dropped": self.dropped,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> TrackerState:
        """Read :meth:`to_json`'s form, also as stored by earlier versions (fewer keys)."""
        data = json.loads(text)
        gaps = tuple((int(seq), int(stamp)) for seq, stamp in data.get("gaps", ()))
        return cls(data.get("last"), gaps, data.get("boot"), int(data.get("dropped", 0)))

    def ack_point(self) -> int | None:
        """The highest number the gateway may acknowledge: everything up to the first gap."""
        if self.last is None:
            return None
        if not self.gaps:
            return self.last
        last = self.last
        oldest = max((seq for seq, _ in self.gaps), key=lambda gap: _behind(last, gap))
        return (oldest - 1) % _MOD


#: Told after every commit each tracked board's sequence state, as stored.
CommitListener = Callable[[dict[str, TrackerState]], None]


class SequenceStore(Protocol):
    """Where a board's sequence state is kept with its readings (the outbox): what a serial
    source needs to resume its board's numbering and to acknowledge what is stored."""

    @property
    def sequence_state(self) -> Mapping[str, TrackerState]:
        """Each board's state as last stored (from before a restart, once opened)."""
        ...

    def track_sequence(self, device: str, state: Callable[[], TrackerState]) -> None:
        """Store ``state()`` of this board with every commit."""
        ...

    def on_commit(self, listener: CommitListener) -> None:
        """Call ``listener`` after every commit with the boards' states as stored."""
        ...


@dataclass(frozen=True, slots=True)
class Observation:
    verdict: Verdict
    #: For a new frame: the time to stamp its reading with (µs since the epoch), unique
    #: among the frames of this tracker and in the board's order. None for a repeat.
    stamp_us: int | None = None


#: The repeat verdict, shared (it is frozen): no allocation per repeated frame.
_REPEAT = Observation(Verdict.REPEAT)


def _behind(newer: int, older: int) -> int:
    return (newer - older) % _MOD


class SequenceTracker:
    def __init__(self, state: TrackerState | None = None) -> None:
        state = state or TrackerState()
        self._last = state.last
        self._gaps: dict[int, int] = dict(state.gaps)
        self._boot = state.boot
        self._dropped = state.dropped
        #: The next frame starts a boot (a new boot's HELLO): no number precedes it.
        self._boot_start = False
        #: The latest stamp given to a new frame (in memory: after a restart the clock has
        #: moved on past every stamp an earlier process gave).
        self._floor_us = 0
        #: Gaps this tracker counted in :attr:`lost` (not the numbers before a fresh start,
        #: not gaps restored from the store, which an earlier process counted).
        self._counted: set[int] = set()
        #: Frames skipped over and not (yet) recovered by a resend.
        self.lost = 0
        #: Gaps given up: too far behind, or a WINDOW said the board no longer holds them.
        self.given_up = 0
        #: The stamps an earlier process published frames with before it was killed, by
        #: (boot, seq): a resend of one gets its stamp again (:meth:`plan`).
        self._plan: dict[tuple[int | None, int], int] = {}
        self._plan_newest = 0

    @property
    def boot(self) -> int | None:
        """The board's boot number, as far as the tracker knows it."""
        return self._boot

    def plan(self, journal: Sequence[tuple[int | None, int, int]]) -> None:
        """Take the stamps an earlier process gave (``edge/stamp_journal.py``: boot, seq,
        stamp, in the order given) after the state this tracker was restored from.

        They are replayed on a copy of this tracker, so the numbers they skipped get the
        stamps their gaps had too; a frame that comes again gets its old stamp, the same
        InfluxDB point as the one published before the kill.
        """
        shadow = SequenceTracker(self.state)
        planned: dict[tuple[int | None, int], int] = {}
        for boot, seq, stamp in journal:
            if boot is not None and boot != shadow._boot:
                shadow.hello(boot, seq)
            seen = shadow.observe(seq, stamp)
            if seen.stamp_us is not None:
                planned[(shadow._boot, seq)] = seen.stamp_us
                self._plan_newest = seq
        for gap, stamp in shadow._gaps.items():
            planned.setdefault((shadow._boot, gap), stamp)
        self._plan = planned

    @property
    def state(self) -> TrackerState:
        return TrackerState(
            self._last, tuple(sorted(self._gaps.items())), self._boot, self._dropped
        )

    @property
    def board_dropped(self) -> int:
        """Reports the board's current boot gave up unacknowledged, as it last said."""
        return self._dropped

    def hello(self, boot: int, seq: int | None = None) -> bool:
        """The board said HELLO with this boot number; True when it is a new boot.

        A new boot starts numbering afresh; a known boot number means the HELLO is a
        resend, to be judged by its sequence number like any frame. So is a HELLO that
        fills an open gap of a tracker that has not learnt the boot yet (it started
        mid-stream): the board resends its HELLO with the reports before the first
        frame this tracker saw.
        """
        if boot == self._boot:
            return False
        if self._boot is None and self._last is not None and seq in self._gaps:
            self._boot = boot
            return False
        self._restart(boot)
        self._boot_start = True
        return True

    def window_boot(self, boot: int) -> bool:
        """A WINDOW names the board's boot; True when it is a new boot whose HELLO was missed.

        Then numbering starts afresh, and the numbers before the WINDOW are open: the
        board may hold them (its HELLO among them), and the WINDOW says which.
        """
        if boot == self._boot:
            return False
        if self._boot is None:  # the first this tracker hears of the board's boot
            self._boot = boot
            return False
        self._restart(boot)
        return True

    def window(self, seq: int, held: int, dropped: int) -> int:
        """Apply the WINDOW numbered ``seq`` (observed just before): give up open gaps the
        board no longer holds, and keep its count of reports given up. Returns how many
        gaps were given up.

        ``held`` is the WINDOW's bitmap: bit ``i`` set means the board holds ``seq - 1 - i``.
        """
        self._dropped = max(self._dropped, dropped)
        if seq != self._last:
            return 0  # not the newest number: its bitmap does not line up with our gaps
        gone = [gap for gap in self._gaps if not _held(held, _behind(seq, gap))]
        for gap in gone:
            del self._gaps[gap]
            self._counted.discard(gap)
        self.given_up += len(gone)
        return len(gone)

    def _restart(self, boot: int | None) -> None:
        self._boot = boot
        self._last = None
        self._gaps.clear()
        self._counted.clear()
        self._dropped = 0
        self._boot_start = False

    def _open_before(self, seq: int, received_us: int) -> None:
        """A first frame with no known start: the numbers a board may still hold before it."""
        for back in range(1, GIVE_UP_AFTER):
            self._gaps[(seq - back) % _MOD] = received_us - back

    def ack_point(self) -> int | None:
        return self.state.ack_point()

    def observe(self, seq: int, received_us: int = 0) -> Observation:
        """Classify ``seq``, received at ``received_us`` (µs since the epoch).

        A new frame's :attr:`Observation.stamp_us` is its time: ``received_us``, or later
        when the frame before was stamped too recently to leave one free microsecond for
        every number this frame opens as a gap (``edge/stamps.py``, ``docs/influxdb.md``).
        A gap filler's is the one its gap was given.
        """
        last = self._last
        if last is None:
            if self._plan:
                received_us = self._plan.pop((self._boot, seq), received_us)
            self._last = seq
            if self._boot_start:
                self._boot_start = False
                return Observation(Verdict.NEW, self._stamp(received_us, 1))
            stamp = self._stamp(received_us, GIVE_UP_AFTER)
            self._open_before(seq, stamp)
            return Observation(Verdict.NEW, stamp)
        ahead = _behind(seq, last)
        if ahead == 0:
            return _REPEAT
        if ahead < _HALF:
            if self._plan:
                received_us = self._planned(seq, received_us)
            stamp = self._stamp(received_us, ahead)
            skipped = ahead - 1
            if skipped:
                self.lost += skipped
                for back in range(1, min(skipped, GIVE_UP_AFTER) + 1):
                    gap = (seq - back) % _MOD
                    self._gaps[gap] = stamp - back
                    self._counted.add(gap)
                self.given_up += max(0, skipped - GIVE_UP_AFTER)
            self._last = seq
            self._expire()
            return Observation(Verdict.NEW, stamp)
        if seq in self._gaps:
            if seq in self._counted:
                self._counted.discard(seq)
                self.lost -= 1
            stamp = self._gaps.pop(seq)
            if self._plan:
                stamp = self._plan.pop((self._boot, seq), stamp)
            return Observation(Verdict.NEW, stamp)
        if _behind(last, seq) <= GIVE_UP_AFTER:
            return _REPEAT
        # The board restarted unseen: its boot is unknown until a WINDOW or its HELLO.
        self._restart(None)
        self._last = seq
        stamp = self._stamp(received_us, GIVE_UP_AFTER)
        self._open_before(seq, stamp)
        return Observation(Verdict.RESTART, stamp)

    def _planned(self, seq: int, received_us: int) -> int:
        """The stamp an earlier process gave ``seq`` if it did, else ``received_us``; the plan
        is forgotten once the numbering has moved well past it."""
        stamp = self._plan.pop((self._boot, seq), received_us)
        if GIVE_UP_AFTER < _behind(seq, self._plan_newest) < _HALF:
            self._plan.clear()
        return stamp

    def _stamp(self, received_us: int, reserve: int) -> int:
        """``received_us``, or ``reserve`` µs after the last stamp if that is later: the
        ``reserve - 1`` microseconds before the stamp are free for the gaps it opens."""
        stamp = max(received_us, self._floor_us + reserve)
        self._floor_us = stamp
        return stamp

    def _expire(self) -> None:
        if not self._gaps:
            return
        last = self._last or 0
        stale = [gap for gap in self._gaps if _behind(last, gap) > GIVE_UP_AFTER]
        self.given_up += len(stale)
        for gap in stale:
            del self._gaps[gap]
            self._counted.discard(gap)


def _held(bitmap: int, back: int) -> bool:
    """Whether a WINDOW's bitmap says the board holds the number ``back`` before it."""
    return 1 <= back <= WINDOW_SPAN and bool(bitmap >> (back - 1) & 1)
