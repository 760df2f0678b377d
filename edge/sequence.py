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
readings in the order the board produced them.

Its state is a small value (:class:`TrackerState`) that the outbox stores in
the same transaction as the readings, so a gateway killed at any moment
resumes exactly where its store left off.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["GIVE_UP_AFTER", "Observation", "SequenceTracker", "TrackerState", "Verdict"]

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

    def ack_point(self) -> int | None:
        """The highest number the gateway may acknowledge: everything up to the first gap."""
        if self.last is None:
            return None
        if not self.gaps:
            return self.last
        last = self.last
        oldest = max((seq for seq, _ in self.gaps), key=lambda gap: _behind(last, gap))
        return (oldest - 1) % _MOD


@dataclass(frozen=True, slots=True)
class Observation:
    verdict: Verdict
    #: For a frame that fills a gap: the time to stamp it with (µs since the epoch).
    stamp_us: int | None = None


#: The common verdicts, shared (they are frozen): no allocation per frame.
_NEW = Observation(Verdict.NEW)
_REPEAT = Observation(Verdict.REPEAT)


def _behind(newer: int, older: int) -> int:
    return (newer - older) % _MOD


class SequenceTracker:
    def __init__(self, state: TrackerState | None = None) -> None:
        state = state or TrackerState()
        self._last = state.last
        self._gaps: dict[int, int] = dict(state.gaps)
        self._boot = state.boot
        #: Frames skipped over and not (yet) recovered by a resend.
        self.lost = 0
        #: Gaps given up because they fell too far behind.
        self.given_up = 0

    @property
    def state(self) -> TrackerState:
        return TrackerState(self._last, tuple(sorted(self._gaps.items())), self._boot)

    def hello(self, boot: int) -> bool:
        """The board said HELLO with this boot number; True when it is a new boot.

        A new boot starts numbering afresh; a known boot number means the HELLO is a
        resend, to be judged by its sequence number like any frame.
        """
        if boot == self._boot:
            return False
        self._boot = boot
        self._last = None
        self._gaps.clear()
        return True

    def ack_point(self) -> int | None:
        return self.state.ack_point()

    def observe(self, seq: int, received_us: int = 0) -> Observation:
        """Classify ``seq``, received at ``received_us`` (µs since the epoch)."""
        last = self._last
        if last is None:
            self._last = seq
            return _NEW
        ahead = _behind(seq, last)
        if ahead == 0:
            return _REPEAT
        if ahead < _HALF:
            skipped = ahead - 1
            self.lost += skipped
            for back in range(1, min(skipped, GIVE_UP_AFTER) + 1):
                self._gaps[(seq - back) % _MOD] = received_us - back
            self.given_up += max(0, skipped - GIVE_UP_AFTER)
            self._last = seq
            self._expire()
            return _NEW
        if seq in self._gaps:
            self.lost -= 1
            return Observation(Verdict.NEW, self._gaps.pop(seq))
        if _behind(last, seq) <= GIVE_UP_AFTER:
            return _REPEAT
        self._last = seq
        self._gaps.clear()
        return Observation(Verdict.RESTART)

    def _expire(self) -> None:
        if not self._gaps:
            return
        last = self._last or 0
        stale = [gap for gap in self._gaps if _behind(last, gap) > GIVE_UP_AFTER]
        self.given_up += len(stale)
        for gap in stale:
            del self._gaps[gap]
