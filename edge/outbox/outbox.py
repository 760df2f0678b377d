"""The durable outbox: every reading is stored on the gateway before anything else.

SQLite in WAL mode with ``synchronous=FULL``: a committed reading survives a
SIGKILL or a power cut, and the file is never left corrupt. Readings are
grouped into one transaction per ``commit_interval`` (or ``commit_max``
readings), so an SD card sees one write burst per group, not one per reading.
The same transaction stores each serial board's sequence state, so after a
restart the gateway knows exactly which of a board's resent reports it has
already stored (``edge/sequence.py``).

A reading leaves the store only after the broker acknowledged it (PUBACK); the
deletes ride along with the next commit. The store is bounded
(``max_readings``): when full, the oldest periodic telemetry (heartbeats, link
counters) goes first, then the oldest reading of any kind; drops are counted by
kind, kept in the store, and logged.

While commits fail (the card full or read-only, the database locked by another
process) readings wait in memory, bounded by ``max_pending`` with the same
policy (``edge/pending.py``). Readings dropped there are counted by kind at
once (``dropped``, the gateway's outbox health reading) and written to the
store's ``drops`` table by the first commit that works again — the same
transaction that stores the boards' sequence state. A board's acknowledgement
follows that commit, so it covers every report the gateway stored *or counted
as dropped*: a report dropped from memory was already taken for a new one
(``edge/sequence.py``), so a resend would be a repeat and could not bring it
back; the board forgets it and the drop is reported, never silent. What is in
memory when the gateway stops with the store still failing is lost and cannot
be counted in the store (it is logged); boards resend it, as it was never
acknowledged.

Reads for the publisher and the clock's restamp retry while the store fails
(logged once per failing stretch), and commits are never abandoned half-way: a
commit under way when the outbox is cancelled is waited for and accounted, so
the store never holds more than ``max_readings``.

All SQLite work happens on one worker thread, never on the event loop; the
counts of the file (``stored``, ``last_id``) are kept by that thread alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from edge.clock import boot_id
from edge.pending import PendingQueue, Row
from edge.sequence import TrackerState
from qihe.contract import PERIODIC_KINDS, RETAINED_KINDS, Reading, encode_payload

__all__ = ["DEFAULT_MAX_PENDING", "CommitListener", "Outbox", "StoredReading"]

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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    -- Ids are given by the outbox (they only grow within a process), not AUTOINCREMENT,
    -- which would rewrite the sqlite_sequence page with every commit.
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    sensor TEXT NOT NULL,
    periodic INTEGER NOT NULL,
    payload BLOB NOT NULL,
    -- Set while the wall clock was not trusted: the reading's monotonic time and boot.
    mono REAL,
    boot TEXT
);
CREATE TABLE IF NOT EXISTS device_sequence (
    device TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS drops (
    kind TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
"""

#: Called on the event loop after a commit with each board's stored sequence state.
CommitListener = Callable[[dict[str, TrackerState]], None]


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A reading as stored: its JSON exactly as it goes on the wire (its identity is fixed)."""

    id: int
    kind: str
    sensor: str
    payload: bytes


_Row = Row


@dataclass(frozen=True, slots=True)
class _CommitResult:
    stored: int
    dropped: Counter[str]


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
        self.busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._con: sqlite3.Connection | None = None
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
        self._stored = 0
        self._last_id = 0
        #: Sequence state per board as last committed (loaded at open).
        self.sequence_state: dict[str, TrackerState] = {}
        self.dropped: Counter[str] = Counter()
        self.accepted = 0
        self.commits = 0
        self._boot = boot or boot_id()
        self._warned_full = False
        self._warned_memory = False
        #: Readings dropped from memory while commits failed, since this outbox was made.
        self.dropped_in_memory = 0

    # -- life cycle -------------------------------------------------------------

    async def _run_in_thread(self, fn: Callable[..., _T], *args: object) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        await self._run_in_thread(self._open_sync)

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = self._connect()
        except sqlite3.DatabaseError as exc:
            # Not a database at all (a truncated copy, another file): keep it for a human.
            aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
            log.error("outbox %s is unreadable (%s); moved aside to %s", self.path, exc, aside)
            self.path.rename(aside)
            con = self._connect()
        self._con = con
        self._stored = con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self._last_id = con.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0]
        for device, state in con.execute("SELECT device, state FROM device_sequence"):
            # (C: the state's own JSON form; it reads what earlier versions stored too)
            self.sequence_state[device] = TrackerState.from_dict(json.loads(state))
        self.dropped.update(dict(con.execute("SELECT kind, count FROM drops").fetchall()))
        if self._stored:
            log.info("outbox %s holds %d readings from before", self.path, self._stored)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        try:
            con.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on the card before we tell anyone (broker, board) it is stored.
            con.execute("PRAGMA synchronous=FULL")
            con.executescript(_SCHEMA)
        except sqlite3.DatabaseError:
            con.close()
            raise
        return con

    async def close(self) -> None:
        """Commit what is pending, then close the store (one try: a failing store is not
        waited for; what it would not take is logged as lost)."""
        if self._con is None:
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
        await self._run_in_thread(self._con.close)
        self._con = None
        self._executor.shutdown(wait=True)

    # -- intake (event loop) ----------------------------------------------------

    def put(self, reading: Reading, *, untrusted_at: float | None = None) -> None:
        """Accept a reading; it is stored with the next group commit.

        ``untrusted_at``: the monotonic time of a reading taken while the wall clock
        was not trusted. Such a reading is stored but not published until
        :meth:`restamp` gives it its true time.
        """
        periodic = int(reading.kind in PERIODIC_KINDS)
        boot = self._boot if untrusted_at is not None else None
        payload = encode_payload(reading)
        row = (reading.kind, reading.sensor, periodic, payload, untrusted_at, boot)
        dropped = self._pending.append(row)
        self.accepted += 1
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
        if not self._warned_memory:
            self._warned_memory = True
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
        self._listeners.append(listener)

    def on_attempt(self, listener: Callable[[], None]) -> None:
        """Called on the loop after every commit attempt that came back, stored or failed.

        A store that fails and is retried is alive (the gateway keeps running, memory
        bounded); one whose commit never comes back (a hung card) stops calling.
        """
        self._attempt_listeners.append(listener)

    def confirm(self, ids: Iterable[int]) -> None:
        """The broker acknowledged these readings; they are deleted with the next commit."""
        self._confirmed.update(ids)

    def __len__(self) -> int:
        return self._stored + self._pending.held - len(self._confirmed)

    @property
    def held(self) -> int:
        """Readings in memory, not yet stored (a commit under way included): at most
        ``max_pending``."""
        return self._pending.held

    @property
    def stored(self) -> int:
        """Readings in the file as of the last commit (confirmed ones until it deletes them)."""
        return self._stored

    @property
    def last_id(self) -> int:
        """The newest stored reading's id (ids only ever grow)."""
        return self._last_id

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
        if self._con is None:
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
            self._attempted()
            return
        rows = self._pending.take()
        confirmed, self._confirmed = self._confirmed, set()
        drops, self._unsaved_drops = self._unsaved_drops, Counter()
        # Snapshot on the loop, together with the rows: the two are consistent.
        sequences = {device: state() for device, state in self._sequence_sources.items()}
        # Only boards whose state moved since the last commit are written: a commit that
        # only deletes confirmed readings then touches no sequence page on the card.
        changed = {d: st for d, st in sequences.items() if self.sequence_state.get(d) != st}
        job = asyncio.get_running_loop().run_in_executor(
            self._executor, self._commit_sync, rows, confirmed, changed, drops
        )
        cancelled = await _wait_for_job(job)
        try:
            result = job.result()
        except sqlite3.Error as exc:
            self._commit_failed(exc, rows, confirmed, drops)
        else:
            self._pending.committed(rows)
            self._commit_worked(result, rows, sequences)
        self._attempted()
        if cancelled:
            raise asyncio.CancelledError

    def _attempted(self) -> None:
        for listener in self._attempt_listeners:
            listener()

    def _commit_failed(
        self, exc: sqlite3.Error, rows: list[_Row], confirmed: set[int], drops: Counter[str]
    ) -> None:
        """Disk full, read-only, locked: keep everything in memory (bounded), try again later."""
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
        self, result: _CommitResult, rows: list[_Row], sequences: dict[str, TrackerState]
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
            self._warned_memory = False
        if result.dropped:
            self.dropped.update(result.dropped)
            if not self._warned_full:
                self._warned_full = True
                log.warning(
                    "outbox full (%d readings): dropped %s; periodic telemetry goes first. "
                    "Further drops are counted, not logged.",
                    self.max_readings,
                    dict(result.dropped),
                )
        self.sequence_state.update(sequences)
        if rows:
            self._committed.set()
        for listener in self._listeners:
            listener(sequences)

    def _commit_sync(
        self,
        rows: list[_Row],
        confirmed: set[int],
        sequences: dict[str, TrackerState],
        memory_drops: Counter[str],
    ) -> _CommitResult:
        con = self._con
        assert con is not None
        # The file's count is this thread's alone: a commit never starts from a stale one.
        stored = self._stored
        dropped: Counter[str] = Counter()
        con.execute("BEGIN IMMEDIATE")
        try:
            if confirmed:
                deleted = con.executemany(
                    "DELETE FROM outbox WHERE id BETWEEN ? AND ?", _runs(confirmed)
                ).rowcount
                stored -= deleted
            first_id = self._last_id + 1
            con.executemany(
                "INSERT INTO outbox (id, kind, sensor, periodic, payload, mono, boot) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(first_id + i, *row) for i, row in enumerate(rows)],
            )
            stored += len(rows)
            for device, state in sequences.items():
                con.execute(
                    "INSERT INTO device_sequence (device, state) VALUES (?, ?) "
                    "ON CONFLICT (device) DO UPDATE SET state = excluded.state",
                    (
                        device,
                        json.dumps(state.as_dict()),  # the state's own JSON form
                    ),
                )
            overflow = stored - self.max_readings
            for periodic_only in (True, False):
                if overflow <= 0:
                    break
                where = "WHERE periodic = 1 " if periodic_only else ""
                victims = con.execute(
                    f"SELECT id, kind FROM outbox {where}ORDER BY id LIMIT ?", (overflow,)
                ).fetchall()
                con.executemany("DELETE FROM outbox WHERE id = ?", [(v[0],) for v in victims])
                dropped.update(kind for _, kind in victims)
                overflow -= len(victims)
                stored -= len(victims)
            for kind, count in (dropped + memory_drops).items():
                con.execute(
                    "INSERT INTO drops (kind, count) VALUES (?, ?) "
                    "ON CONFLICT (kind) DO UPDATE SET count = count + excluded.count",
                    (kind, count),
                )
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
        self._last_id += len(rows)
        self._stored = stored
        return _CommitResult(stored, dropped)

    # -- reading back (for the publisher) ------------------------------------------

    async def wait_committed(self, after_id: int) -> None:
        """Return once a reading newer than ``after_id`` is stored."""
        while self._last_id <= after_id:
            self._committed.clear()
            await self._committed.wait()

    async def fetch(
        self, *, after: int, upto: int | None = None, limit: int
    ) -> list[StoredReading]:
        """Stored readings with ``after < id <= upto``, oldest first (waits while the store
        cannot be read)."""
        return await self._read(self._fetch_sync, after, upto, limit)

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

    def _fetch_sync(self, after: int, upto: int | None, limit: int) -> list[StoredReading]:
        assert self._con is not None
        rows = self._con.execute(
            "SELECT id, kind, sensor, payload FROM outbox "
            "WHERE id > ? AND id <= ? AND mono IS NULL ORDER BY id LIMIT ?",
            (after, upto if upto is not None else self._last_id, limit),
        ).fetchall()
        return [StoredReading(*row) for row in rows]

    async def latest_states(self, upto: int) -> list[StoredReading]:
        """The newest stored reading of every state sensor (seat, door, …) up to ``upto``."""
        return await self._read(self._latest_states_sync, upto)

    def _latest_states_sync(self, upto: int) -> list[StoredReading]:
        assert self._con is not None
        kinds = sorted(RETAINED_KINDS)
        marks = ",".join("?" * len(kinds))
        rows = self._con.execute(
            "SELECT o.id, o.kind, o.sensor, o.payload FROM outbox o JOIN ("
            f" SELECT MAX(id) AS id FROM outbox WHERE id <= ? AND mono IS NULL"
            f" AND kind IN ({marks})"
            " GROUP BY kind, sensor) newest ON o.id = newest.id ORDER BY o.id",
            (upto, *kinds),
        ).fetchall()
        return [StoredReading(*row) for row in rows]

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
        if self._con is None:
            return
        async with self._commit_lock:
            await self._restamp_store(offset)

    def _date_pending(self, offset: float) -> None:
        self._pending.rewrite(lambda row: _restamped(row, offset) if row[4] is not None else row)

    async def _restamp_store(self, offset: float) -> None:
        job = asyncio.get_running_loop().run_in_executor(self._executor, self._restamp_sync, offset)
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
        if cancelled:
            raise asyncio.CancelledError

    def _restamp_sync(self, offset: float) -> tuple[int, int]:
        con = self._con
        assert con is not None
        con.execute("BEGIN IMMEDIATE")
        try:
            held = con.execute(
                "SELECT id, kind, sensor, periodic, payload, mono FROM outbox "
                "WHERE mono IS NOT NULL AND boot = ? ORDER BY id",
                (self._boot,),
            ).fetchall()
            con.executemany("DELETE FROM outbox WHERE id = ?", [(row[0],) for row in held])
            first_id = self._last_id + 1
            con.executemany(
                "INSERT INTO outbox (id, kind, sensor, periodic, payload) VALUES (?, ?, ?, ?, ?)",
                [(first_id + i, *_restamped(row[1:], offset)[:4]) for i, row in enumerate(held)],
            )
            dropped = con.execute(
                "DELETE FROM outbox WHERE mono IS NOT NULL AND boot != ?", (self._boot,)
            ).rowcount
            if dropped:
                con.execute(
                    "INSERT INTO drops (kind, count) VALUES ('untrusted_clock', ?) "
                    "ON CONFLICT (kind) DO UPDATE SET count = count + excluded.count",
                    (dropped,),
                )
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
        self._stored -= dropped
        self._last_id += len(held)
        return len(held), dropped


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


def _rollback(con: sqlite3.Connection) -> None:
    """Undo a failed transaction, if SQLite has not already (it does on a full disk)."""
    if con.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            con.execute("ROLLBACK")


def _runs(ids: set[int]) -> list[tuple[int, int]]:
    """Ids as ``(first, last)`` runs of consecutive ids: one DELETE per run, not per id.

    The publisher confirms readings in id order, so a commit's confirmations are a few
    runs (one, usually); every id inside a run is one of ``ids``.
    """
    ordered = sorted(ids)
    runs = []
    first = last = ordered[0]
    for i in ordered[1:]:
        if i != last + 1:
            runs.append((first, last))
            first = i
        last = i
    runs.append((first, last))
    return runs


def _restamped(row: tuple[object, ...], offset: float) -> _Row:
    """A held row with its true time written into the payload."""
    kind, sensor, periodic, payload, mono = row[:5]
    assert isinstance(payload, bytes) and isinstance(mono, float)
    data = json.loads(payload)
    true_time = datetime.fromtimestamp(mono + offset, UTC)
    data["ts"] = true_time.isoformat(timespec="microseconds").replace("+00:00", "Z")
    encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return (str(kind), str(sensor), int(str(periodic)), encoded, None, None)
