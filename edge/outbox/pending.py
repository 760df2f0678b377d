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

#: kind, sensor, periodic, payload, monotonic time and boot (both None once the clock is
#: trusted), and the id the outbox gave the reading when it was put (its id in the store).
Row = tuple[str, str, int, bytes, float | None, str | None, int]


def dated(row: Row, offset: float) -> Row:
    """A row held while the clock was not trusted, with its true time (``wall = monotonic +
    offset``) written into the payload; a dated row is returned as it is."""
    kind, sensor, periodic, payload, mono, _, row_id = row
    if mono is None:
        return row
    true_time = datetime.fromtimestamp(mono + offset, UTC)
    return (kind, sensor, periodic, restamp_payload(payload, true_time), None, None, row_id)


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
        #: The newest id handed to the publisher: a row at or below it may be in flight, its
        #: PUBACK on the way, so the bound drops such a row only when nothing else is left
        #: (dropping it would count as lost a reading that lands).
        self.handed = 0

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
            # The newcomer is the only periodic reading not handed to the publisher, or
            # everything is in a commit under way (it may be stored by now) or in flight (it
            # may land): the newcomer goes.
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

    def newer(self, after: int, limit: int) -> list[Row]:
        """The waiting rows whose id is above ``after``, oldest first, at most ``limit``: the
        cost is the rows returned, not the rows held."""
        rows = self._rows
        lo = self._first_above(after)
        found: list[Row] = []
        for index in range(lo, len(rows)):
            row = rows[index]
            if row is not None:
                found.append(row)
                if len(found) >= limit:
                    break
        return found

    def discard(self, row_id: int) -> bool:
        """Forget the waiting row with this id (the broker acknowledged it: nothing is left
        to store); False if no row waiting has it."""
        index = self._first_above(row_id - 1)
        rows = self._rows
        if index < len(rows):
            row = rows[index]
            if row is not None and row[6] == row_id:
                self._hole(index, row)
                return True
        return False

    def _first_above(self, after: int) -> int:
        """The index of the first waiting row whose id is above ``after`` (rows are in id
        order; a binary search, a hole probing forward to the next row), or the end."""
        rows = self._rows
        lo, hi = self._head, len(rows)
        while lo < hi:
            mid = (lo + hi) // 2
            probe = mid
            while probe < hi and rows[probe] is None:
                probe += 1
            row = rows[probe] if probe < hi else None
            if row is None or row[6] > after:
                hi = mid
            else:
                lo = probe + 1
        while lo < len(rows) and rows[lo] is None:
            lo += 1
        return lo

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
        """Drop the oldest periodic row, else the oldest row, sparing those handed to the
        publisher while others are left; its kind, or None if empty."""
        return (
            self._drop_periodic()
            or self._drop_oldest()
            or self._drop_periodic(spare=False)
            or self._drop_oldest(spare=False)
        )

    def _drop_periodic(self, *, spare: bool = True) -> str | None:
        rows = self._rows
        periodic = self._periodic
        spared: list[int] = []
        victim: tuple[int, Row] | None = None
        while periodic:
            index = periodic.popleft()
            row = rows[index]
            if row is None:  # already gone as the oldest of any kind
                continue
            if spare and self.handed and row[6] <= self.handed:
                spared.append(index)  # at most the publisher's window of them
                continue
            victim = (index, row)
            break
        periodic.extendleft(reversed(spared))
        return None if victim is None else self._hole(*victim)

    def _drop_oldest(self, *, spare: bool = True) -> str | None:
        rows = self._rows
        index = self._head
        while index < len(rows):
            row = rows[index]
            if row is not None and not (spare and self.handed and row[6] <= self.handed):
                if index == self._head:
                    self._head += 1
                return self._hole(index, row)
            if row is None and index == self._head:
                self._head += 1
            index += 1
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
