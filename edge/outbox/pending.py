"""Readings waiting in memory for the outbox's next commit, bounded, with the store's policy.

Normally this holds one commit interval of readings. While commits fail (the SD
card full or read-only, the database locked by another process) it is all the
gateway has, so it is bounded like the store: at most ``bound`` readings,
counting those of a commit under way. When a new reading would pass the bound,
the oldest periodic telemetry waiting goes first (heartbeats, link, outbox and
host reports: the next ones come anyway), then the oldest reading of any kind.
A commit under way cannot give its readings up (they may be stored by now), so
while one is stalled only the readings that arrived since can be dropped — the
new one itself, if the commit holds the whole bound.

Dropping is O(1): a dropped slot becomes a hole (``None``) and the list is
compacted once the holes outnumber the readings.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime

from qihe.contract import restamp_payload

__all__ = ["PendingQueue", "Row", "dated"]

#: kind, sensor, periodic, payload, monotonic time and boot (both None once the clock is trusted)
Row = tuple[str, str, int, bytes, float | None, str | None]


def dated(row: Row, offset: float) -> Row:
    """A row held while the clock was not trusted, with its true time (``wall = monotonic +
    offset``) written into the payload; a dated row is returned as it is."""
    kind, sensor, periodic, payload, mono, _ = row
    if mono is None:
        return row
    true_time = datetime.fromtimestamp(mono + offset, UTC)
    return (kind, sensor, periodic, restamp_payload(payload, true_time), None, None)


#: Below this many holes the list is never compacted (cheap either way).
_MIN_COMPACT = 1024


class PendingQueue:
    """Rows in arrival order; :meth:`take` hands them to a commit, :meth:`give_back` undoes it."""

    def __init__(self, bound: int) -> None:
        if bound < 1:
            raise ValueError("bound must be at least 1")
        self.bound = bound
        self._rows: list[Row | None] = []
        self._head = 0  # no live row before this index
        self._periodic: deque[int] = deque()  # indices of periodic rows, oldest first
        self._live = 0
        #: Rows handed to a commit that has not returned yet.
        self.in_commit = 0

    def __len__(self) -> int:
        """Rows waiting for a commit (not counting those of a commit under way)."""
        return self._live

    @property
    def held(self) -> int:
        """Every reading this queue holds in memory, a commit's included: never above the bound."""
        return self._live + self.in_commit

    def append(self, row: Row) -> str | None:
        """Add ``row``; return the kind of the reading dropped to stay within the bound, if any
        (at most one per reading added; no allocation on the usual path)."""
        if self.held < self.bound:
            self._push(row)
            return None
        kind = self._drop_periodic()
        if kind is None and not row[2]:
            kind = self._drop_oldest()
        if kind is None:
            # The newcomer is the only periodic reading, or everything is in a commit under
            # way (it may be stored by now): the newcomer goes.
            return row[0]
        self._push(row)
        return kind

    def take(self) -> list[Row]:
        """Every waiting row, oldest first, for a commit; they count as ``in_commit`` until
        :meth:`committed` or :meth:`give_back`."""
        rows = [row for row in self._rows[self._head :] if row is not None]
        self._clear()
        self.in_commit += len(rows)
        return rows

    def committed(self, rows: list[Row]) -> None:
        """The commit of ``rows`` succeeded: they are the store's now."""
        self.in_commit -= len(rows)

    def give_back(self, rows: list[Row]) -> Counter[str]:
        """The commit of ``rows`` failed: they wait again, before the rows that came since.
        Returns what was dropped to get back within the bound (by kind)."""
        self.in_commit -= len(rows)
        newer = self.take()
        self.in_commit -= len(newer)
        for row in (*rows, *newer):
            self._push(row)
        dropped: Counter[str] = Counter()
        while self.held > self.bound:
            kind = self._drop_one()
            if kind is None:
                break
            dropped[kind] += 1
        return dropped

    def rewrite(self, change: Callable[[Row], Row]) -> None:
        """Replace every waiting row by ``change(row)`` (same kind, same periodicity)."""
        self._rows = [None if row is None else change(row) for row in self._rows]

    # -- inside -------------------------------------------------------------------------

    def _push(self, row: Row) -> None:
        if row[2]:
            self._periodic.append(len(self._rows))
        self._rows.append(row)
        self._live += 1

    def _drop_one(self) -> str | None:
        """Drop the oldest periodic row, else the oldest row; its kind, or None if empty."""
        return self._drop_periodic() or self._drop_oldest()

    def _drop_periodic(self) -> str | None:
        rows = self._rows
        while self._periodic:
            index = self._periodic.popleft()
            row = rows[index]
            if row is not None:  # else: already gone as the oldest of any kind
                return self._hole(index, row)
        return None

    def _drop_oldest(self) -> str | None:
        rows = self._rows
        while self._head < len(rows):
            index = self._head
            self._head += 1
            row = rows[index]
            if row is not None:
                return self._hole(index, row)
        return None

    def _hole(self, index: int, row: Row) -> str:
        self._rows[index] = None
        self._live -= 1
        holes = len(self._rows) - self._head - self._live
        if holes > max(_MIN_COMPACT, self._live):
            self._compact()
        return row[0]

    def _compact(self) -> None:
        rows = [row for row in self._rows[self._head :] if row is not None]
        self._clear()
        for row in rows:
            self._push(row)

    def _clear(self) -> None:
        self._rows = []
        self._head = 0
        self._periodic.clear()
        self._live = 0
