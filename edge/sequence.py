"""Classify a board's 16-bit frame sequence numbers, with retransmission in mind.

A board numbers its frames; with acknowledged reports (``docs/protocol.md``) it
sends again, with the same numbers, every report the gateway has not
acknowledged as stored. So a number behind the newest one is either a repeat
(drop it: already stored) or fills a gap left by a frame that line noise
destroyed (keep it). The tracker remembers the gaps within a window, tells
which number the gateway may acknowledge (everything up to the first gap), and
gives a gap up as lost once it falls too far behind to ever be resent.

Its state is a small value (:class:`TrackerState`) that the outbox stores in
the same transaction as the readings, so a gateway killed at any moment
resumes exactly where its store left off.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["GIVE_UP_AFTER", "SequenceTracker", "TrackerState", "Verdict"]

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
    """What must survive a restart: the newest number and the open gaps behind it."""

    last: int | None = None
    gaps: tuple[int, ...] = ()

    def ack_point(self) -> int | None:
        """The highest number the gateway may acknowledge: everything up to the first gap."""
        if self.last is None:
            return None
        if not self.gaps:
            return self.last
        last = self.last
        oldest = max(self.gaps, key=lambda gap: _behind(last, gap))
        return (oldest - 1) % _MOD


def _behind(newer: int, older: int) -> int:
    return (newer - older) % _MOD


class SequenceTracker:
    def __init__(self, state: TrackerState | None = None) -> None:
        state = state or TrackerState()
        self._last = state.last
        self._gaps: set[int] = set(state.gaps)
        #: Frames skipped over and not (yet) recovered by a resend.
        self.lost = 0
        #: Gaps given up because they fell too far behind.
        self.given_up = 0

    @property
    def state(self) -> TrackerState:
        return TrackerState(self._last, tuple(sorted(self._gaps)))

    def reset(self) -> None:
        """The board said HELLO: a new boot, numbering starts again."""
        self._last = None
        self._gaps.clear()

    def ack_point(self) -> int | None:
        return self.state.ack_point()

    def observe(self, seq: int) -> Verdict:
        last = self._last
        if last is None:
            self._last = seq
            return Verdict.NEW
        ahead = _behind(seq, last)
        if ahead == 0:
            return Verdict.REPEAT
        if ahead < _HALF:
            skipped = ahead - 1
            self.lost += skipped
            for back in range(1, min(skipped, GIVE_UP_AFTER) + 1):
                self._gaps.add((seq - back) % _MOD)
            self.given_up += max(0, skipped - GIVE_UP_AFTER)
            self._last = seq
            self._expire()
            return Verdict.NEW
        back = _behind(last, seq)
        if seq in self._gaps:
            self._gaps.discard(seq)
            self.lost -= 1
            return Verdict.NEW
        if back <= GIVE_UP_AFTER:
            return Verdict.REPEAT
        self._last = seq
        self._gaps.clear()
        return Verdict.RESTART

    def _expire(self) -> None:
        last = self._last or 0
        stale = {gap for gap in self._gaps if _behind(last, gap) > GIVE_UP_AFTER}
        self.given_up += len(stale)
        self._gaps -= stale
