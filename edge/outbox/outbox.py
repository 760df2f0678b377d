"""The :class:`Outbox` on the event loop: group commits, listeners, the bound in memory.

What it stores and why is told in ``edge/outbox/__init__.py``; the file and its
statements are ``edge/outbox/store.py``, the readings waiting in memory for a commit
``edge/outbox/pending.py``. All SQLite work runs on one worker thread, never on the
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from edge.clock import boot_id
from edge.outbox.pending import PendingQueue, Row, dated
from edge.outbox.store import OutboxStore, StoredReading
from edge.sequence import CommitListener, TrackerState
from qihe.contract import PERIODIC_KINDS, Reading, encode_payload
from qihe.once import Once

__all__ = ["DEFAULT_MAX_PENDING", "Outbox"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Readings held in memory while commits fail. A held seat reading costs ~300 bytes of
#: Python heap (its stored JSON of ~160 bytes, the row tuple, the list slot; measured with
#: tracemalloc, docs/reliability.md), ~430 at the peak of the commit that finally stores
#: it (the statement's parameters): 100,000 are ~30 MB held, ~43 MB at that peak, under a
#: tenth of a 512 MB Pi. That is 20 s of a board flooding at 5,000 readings/s, or a day
#: of a busy book house (~1 reading/s).
DEFAULT_MAX_PENDING = 100_000

#: How long a commit waits for another process's lock on the file before it fails and is
#: tried again (SQLite's busy timeout; the reads of a WAL store are not blocked).
_BUSY_TIMEOUT = 1.0


class Outbox:
    """Construct (no I/O), ``await open()``, run :meth:`run` as a task, ``await close()``."""

    def __init__(
        self,
        path: Path,
        *,
        max_readings: int,
        max_pending: int = DEFAULT_MAX_PENDING,
        commit_interval: float = 1.0,
        commit_max: int = 500,
        boot: str | None = None,
        busy_timeout: float = _BUSY_TIMEOUT,
    ) -> None:
        if max_readings < 1:
            raise ValueError("max_readings must be at least 1")
        self.path = path
        self.max_readings = max_readings
        self.max_pending = max_pending
        self.commit_interval = commit_interval
        self.commit_max = commit_max
        self._boot = boot or boot_id()
        self._store = OutboxStore(
            path, max_readings=max_readings, boot=self._boot, busy_timeout=busy_timeout
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._open = False
        self._pending = PendingQueue(max_pending)
        self._commit_lock = asyncio.Lock()
        #: Dropped in memory and not yet written to the store's ``drops`` table.
        self._unsaved_drops: Counter[str] = Counter()
        #: Failed commits in a row (0 while the store works), and what memory dropped meanwhile.
        self.failing_commits = 0
        self._stretch_drops: Counter[str] = Counter()
        self._read_failing = False
        self._restamp_due: float | None = None
        self._offset: float | None = None
        self._confirmed: set[int] = set()
        self._sequence_sources: dict[str, Callable[[], TrackerState]] = {}
        self._listeners: list[CommitListener] = []
        self._attempt_listeners: list[Callable[[], None]] = []
        self._wake = asyncio.Event()
        self._committed = asyncio.Event()
        #: A dated reading was put (or restamped): the publisher's live path wakes.
        self._arrived = asyncio.Event()
        #: The id the next reading put gets (ids only ever grow; set at open).
        self._next_id = 1
        #: The rows of the commit under way (still readable by the publisher meanwhile).
        self._in_commit: list[Row] = []
        #: Sequence state per board as last committed (loaded at open).
        self.sequence_state: dict[str, TrackerState] = {}
        self.dropped: Counter[str] = Counter()
        self.accepted = 0
        self.commits = 0
        self._full_said = Once()
        self._memory_full_said = Once()
        #: Readings dropped from memory while commits failed, since this outbox was made.
        self.dropped_in_memory = 0

    # -- life cycle -------------------------------------------------------------

    async def _run_in_thread(self, fn: Callable[..., _T], *args: object) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        sequences, drops = await self._run_in_thread(self._store.open)
        self._next_id = self._store.last_id + 1
        self._open = True
        for device, state in sequences.items():
            self.sequence_state[device] = TrackerState.from_json(state)
        self.dropped.update(drops)

    async def close(self) -> None:
        """Commit what is pending, then close the store (one try: a failing store is not
        waited for; what it would not take is logged as lost)."""
        if not self._open:
            return
        await self._commit()
        if self._pending.held:
            log.error(
                "发件箱关闭时仍无法写入，%d 条读数未存储，未计入丢弃表（未确认的读数由传感板重发）"
                " / outbox closing while commits fail: %d readings were never stored and"
                " cannot be counted in the store (boards resend what was not acknowledged)",
                self._pending.held,
                self._pending.held,
            )
        await self._run_in_thread(self._store.close)
        self._open = False
        self._executor.shutdown(wait=True)

    # -- intake (event loop) ----------------------------------------------------

    def put(self, reading: Reading, *, untrusted_at: float | None = None) -> None:
        """Accept a reading; it is stored with the next group commit, and readable at once
        by :meth:`live` (the publisher sends it before it is stored).

        ``untrusted_at``: the monotonic time of a reading taken while the wall clock
        was not trusted. Such a reading is stored but not published until
        :meth:`restamp` gives it its true time.
        """
        periodic = int(reading.kind in PERIODIC_KINDS)
        boot = self._boot if untrusted_at is not None else None
        payload = encode_payload(reading)
        row = (reading.kind, reading.sensor, periodic, payload, untrusted_at, boot, self._next_id)
        self._next_id += 1
        dropped = self._pending.append(row)
        self.accepted += 1
        if untrusted_at is None:
            self._arrived.set()
        if dropped is not None:
            self._dropped_in_memory(Counter((dropped,)))
        if len(self._pending) >= self.commit_max and not self.failing_commits:
            # Not while commits fail: they are retried every commit_interval, not per reading.
            self._wake.set()

    def _dropped_in_memory(self, dropped: Counter[str]) -> None:
        self.dropped.update(dropped)
        self.dropped_in_memory += dropped.total()
        self._unsaved_drops.update(dropped)
        self._stretch_drops.update(dropped)
        if self._memory_full_said.first():
            log.warning(
                "发件箱内存中未存储的读数已达上限 %d 条（写入失败中）："
                "先丢弃最旧的周期性遥测，再丢弃最旧的读数；"
                "丢弃按类型计数，写入恢复后记入存储 / outbox holds its bound of %d readings in"
                " memory, not yet stored (commits failing): dropping the oldest periodic"
                " telemetry first, then the oldest readings; drops are counted by kind (stored"
                " once commits work), not logged one by one",
                self.max_pending,
                self.max_pending,
            )

    def track_sequence(self, device: str, state: Callable[[], TrackerState]) -> None:
        """Store this board's sequence state with every commit (read on the event loop)."""
        self._sequence_sources[device] = state

    def on_commit(self, listener: CommitListener) -> None:
        """Call ``listener`` on the loop after every commit with the boards' stored states."""
        self._listeners.append(listener)

    def on_attempt(self, listener: Callable[[], None]) -> None:
        """Called on the loop after every commit attempt that came back, stored or failed.

        A store that fails and is retried is alive (the gateway keeps running, memory
        bounded); one whose commit never comes back (a hung card) stops calling.
        """
        self._attempt_listeners.append(listener)

    def confirm(self, ids: Iterable[int]) -> None:
        """The broker acknowledged these readings. One still waiting in memory is forgotten
        at once, never written (nor held against ``max_pending`` while commits fail); a
        stored one, or one in a commit under way, is deleted with the next commit."""
        for row_id in ids:
            if not self._pending.discard(row_id):
                self._confirmed.add(row_id)

    def __len__(self) -> int:
        return self._store.stored + self._pending.held - len(self._confirmed)

    @property
    def held(self) -> int:
        """Readings in memory, not yet stored (a commit under way included): at most
        ``max_pending``."""
        return self._pending.held

    @property
    def stored(self) -> int:
        """Readings in the file as of the last commit (confirmed ones until it deletes them)."""
        return self._store.stored

    @property
    def last_id(self) -> int:
        """The newest stored reading's id (ids only ever grow)."""
        return self._store.last_id

    # -- group commit -------------------------------------------------------------

    async def run(self) -> None:
        """Commit every ``commit_interval`` (sooner when ``commit_max`` is reached)."""
        try:
            while True:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that races the event, and the outbox would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.commit_interval):
                        await self._wake.wait()
                self._wake.clear()
                await self._commit()
        finally:
            # Cancelled: store what we hold (the shield keeps the executor job alive).
            await asyncio.shield(self._commit())

    async def _commit(self) -> None:
        # One commit at a time (the loop's, the final one at a stop, close()'s): each
        # starts from what the one before left, in memory and in the file.
        async with self._commit_lock:
            await self._commit_once()
            if self._restamp_due is not None and not self.failing_commits:
                # A restamp the failing store refused: it works again, so now.
                await self._restamp_store(self._restamp_due)

    def _sequence_moved(self) -> bool:
        """A board's sequence state moved without a reading: a WINDOW gave gaps up.

        Stored now, so the acknowledgement can move past what it gave up.
        """
        return any(
            self.sequence_state.get(device) != state()
            for device, state in self._sequence_sources.items()
        )

    async def _commit_once(self) -> None:
        if not self._open:
            return
        if (
            not self._pending
            and not self._confirmed
            and not self._unsaved_drops
            and not self._sequence_moved()
        ):
            # Nothing to write; still tell listeners what is stored, so a board whose
            # acknowledgement was lost (it keeps resending repeats) hears it again.
            stored = dict(self.sequence_state)
            for listener in self._listeners:
                listener(stored)
            await self._probe()
            return
        rows = self._pending.take()
        self._in_commit = rows
        confirmed, self._confirmed = self._confirmed, set()
        drops, self._unsaved_drops = self._unsaved_drops, Counter()
        # Snapshot on the loop, together with the rows: the two are consistent.
        sequences = {device: state() for device, state in self._sequence_sources.items()}
        # Only boards whose state moved since the last commit are written: a commit that
        # only deletes confirmed readings then touches no sequence page on the card.
        changed = {
            device: state.to_json()
            for device, state in sequences.items()
            if self.sequence_state.get(device) != state
        }
        job = asyncio.get_running_loop().run_in_executor(
            self._executor, self._store.commit, rows, confirmed, changed, drops
        )
        cancelled = await _wait_for_job(job)
        self._in_commit = []
        try:
            dropped = job.result()
        except sqlite3.Error as exc:
            self._commit_failed(exc, rows, confirmed, drops)
        else:
            self._pending.committed(rows)
            self._commit_worked(dropped, rows, sequences)
        self._attempted()
        if cancelled:
            raise asyncio.CancelledError

    async def _probe(self) -> None:
        """A tick with nothing to write still asks the store for its write lock (writing
        nothing, so no card wear): readings published before their commit can leave every
        tick empty, and the watchdog must still see a store that hangs or refuses (a locked
        file, a card gone bad) — a commit would meet the same when the broker goes away."""
        job = asyncio.get_running_loop().run_in_executor(self._executor, self._store.probe)
        cancelled = await _wait_for_job(job)
        try:
            job.result()
        except sqlite3.Error as exc:
            self._commit_failed(exc, [], set(), Counter())
        else:
            if self.failing_commits:
                self._commit_worked(Counter(), [], {})
        self._attempted()
        if cancelled:
            raise asyncio.CancelledError

    def _attempted(self) -> None:
        for listener in self._attempt_listeners:
            listener()

    def _commit_failed(
        self, exc: sqlite3.Error, rows: list[Row], confirmed: set[int], drops: Counter[str]
    ) -> None:
        """Disk full, read-only, locked: keep everything in memory (bounded), try again later."""
        # Rows of the failed commit the broker acknowledged meanwhile: nothing left to store.
        done = {row[6] for row in rows} & confirmed
        if done:
            self._pending.committed([row for row in rows if row[6] in done])
            rows = [row for row in rows if row[6] not in done]
            confirmed -= done
        dropped = self._pending.give_back(rows)
        if self._offset is not None:
            # The clock was trusted while these were in the failed commit: date them now.
            self._date_pending(self._offset)
        self._confirmed |= confirmed
        self._unsaved_drops.update(drops)
        if dropped:
            self._dropped_in_memory(dropped)
        self.failing_commits += 1
        if self.failing_commits == 1:
            log.error(
                "发件箱写入失败（%s），读数暂存内存（上限 %d 条），稍后重试；恢复前不再逐次记录"
                " / outbox commit failed (%s); readings are kept in memory (at most %d) and"
                " the commit is retried; not logged again until it works",
                exc,
                self.max_pending,
                exc,
                self.max_pending,
            )

    def _commit_worked(
        self, dropped: Counter[str], rows: list[Row], sequences: dict[str, TrackerState]
    ) -> None:
        self.commits += 1
        if self.failing_commits:
            lost = dict(self._stretch_drops)
            log.warning(
                "发件箱恢复写入：此前 %d 次提交失败，内存中丢弃 %s / outbox commits work again"
                " after %d failed; dropped in memory meanwhile: %s",
                self.failing_commits,
                lost or "无",
                self.failing_commits,
                lost or "none",
            )
            self.failing_commits = 0
            self._stretch_drops.clear()
            self._memory_full_said.reset()
        if dropped:
            self.dropped.update(dropped)
            if self._full_said.first():
                log.warning(
                    "outbox full (%d readings): dropped %s; periodic telemetry goes first. "
                    "Further drops are counted, not logged.",
                    self.max_readings,
                    dict(dropped),
                )
        self.sequence_state.update(sequences)
        if rows:
            self._committed.set()
        for listener in self._listeners:
            listener(sequences)

    # -- reading back (for the publisher) ------------------------------------------

    async def wait_committed(self, after_id: int) -> None:
        """Return once a reading newer than ``after_id`` is stored."""
        while self._store.last_id <= after_id:
            self._committed.clear()
            await self._committed.wait()

    async def live(self, *, after: int, limit: int) -> list[StoredReading]:
        """The dated readings with an id above ``after``, oldest first, at most ``limit``:
        from memory as soon as they are put (those of a commit under way too), not waiting
        for the commit — the publisher sends a reading before it is stored. It stays in
        the outbox until both its commit and its PUBACK (:meth:`confirm`) are done; a
        reading acknowledged before its commit is never written (``docs/reliability.md``).

        The store is read too only when it holds readings newer than ``after``: a publisher
        that fell behind a commit (its window full, a reconnect), or readings restamped
        once the clock is trusted."""
        rows = [*_newer(self._in_commit, after), *self._pending.newer(after, limit)]
        found = [StoredReading(r[6], r[0], r[1], r[3]) for r in rows if r[4] is None]
        if after < self._store.last_id:
            stored = await self.fetch(after=after, limit=limit)
            found = sorted({r.id: r for r in (*stored, *found)}.values(), key=lambda r: r.id)
        found = found[:limit]
        if found and found[-1].id > self._pending.handed:
            self._pending.handed = found[-1].id
        return found

    async def wait_new(self, after_id: int) -> None:
        """Return once :meth:`live` has a reading newer than ``after_id``."""
        while True:
            self._arrived.clear()
            if await self.live(after=after_id, limit=1):
                return
            await self._arrived.wait()

    async def fetch(
        self, *, after: int, upto: int | None = None, limit: int
    ) -> list[StoredReading]:
        """Stored readings with ``after < id <= upto``, oldest first (waits while the store
        cannot be read)."""
        return await self._read(self._store.fetch, after, upto, limit)

    async def latest_states(self, upto: int) -> list[StoredReading]:
        """The newest stored reading of every state sensor (seat, door, …) up to ``upto``."""
        return await self._read(self._store.latest_states, upto)

    async def _read(self, fn: Callable[..., _T], *args: object) -> _T:
        """``fn`` on the worker thread, tried again every ``commit_interval`` while the store
        cannot be read (locked exclusively, an I/O error): the publisher waits, it neither
        fails nor spins."""
        while True:
            try:
                result = await self._run_in_thread(fn, *args)
            except sqlite3.Error as exc:
                if not self._read_failing:
                    self._read_failing = True
                    log.error(
                        "发件箱无法读取（%s），每 %.1f 秒重试 / outbox cannot be read (%s);"
                        " retrying every %.1fs",
                        exc,
                        self.commit_interval,
                        exc,
                        self.commit_interval,
                    )
                await asyncio.sleep(self.commit_interval)
                continue
            if self._read_failing:
                self._read_failing = False
                log.warning("发件箱恢复读取 / outbox readable again")
            return result

    # -- clock -------------------------------------------------------------------------

    async def restamp(self, offset: float) -> None:
        """The wall clock is trusted now: ``wall = monotonic + offset``. Give every held
        reading of this boot its true time, and move it to the end of the queue so the
        publisher sends it next. Held readings of an earlier boot cannot be dated (their
        monotonic clock is gone): they are dropped and counted as ``untrusted_clock``.

        A store that refuses the rewrite (full, locked) gets it again after its next commit
        that works; until then the held readings stay unpublished, never misdated."""
        self._offset = offset
        self._date_pending(offset)
        if not self._open:
            return
        async with self._commit_lock:
            await self._restamp_store(offset)

    def _date_pending(self, offset: float) -> None:
        self._pending.rewrite(lambda row: dated(row, offset))

    async def _restamp_store(self, offset: float) -> None:
        # Under the commit lock: no commit adds held readings between the count and the
        # move, so the ids reserved here are exactly those the move gives.
        try:
            count = await self._run_in_thread(self._store.held_count)
        except sqlite3.Error:
            self._restamp_due = offset  # the store refuses reads too: after its next commit
            return
        first_id = self._next_id
        self._next_id += count
        job = asyncio.get_running_loop().run_in_executor(
            self._executor, self._store.restamp, offset, first_id
        )
        cancelled = await _wait_for_job(job)
        try:
            moved, dropped = job.result()
        except sqlite3.Error as exc:
            if self._restamp_due is None:
                log.error(
                    "发件箱无法改写时钟同步前的读数（%s），下次写入成功后重试"
                    " / outbox could not restamp the readings held before the clock was set"
                    " (%s); retried after the next commit that works",
                    exc,
                    exc,
                )
            self._restamp_due = offset
        else:
            self._restamp_due = None
            if dropped:
                self.dropped["untrusted_clock"] += dropped
                log.warning(
                    "dropped %d readings of an earlier boot whose clock was never set", dropped
                )
            if moved:
                log.info("restamped %d readings taken before the clock was set", moved)
                self._committed.set()
                self._arrived.set()
        if cancelled:
            raise asyncio.CancelledError


def _newer(rows: list[Row], after: int) -> list[Row]:
    return [row for row in rows if row[6] > after]


async def _wait_for_job(job: asyncio.Future[Any]) -> bool:
    """Wait until the worker thread's ``job`` is done, through cancellations too (the thread
    cannot be stopped half-way, and its outcome must be accounted). True if cancelled."""
    cancelled = False
    while not job.done():
        try:
            await asyncio.wait([job])
        except asyncio.CancelledError:
            cancelled = True
    return cancelled
