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

All SQLite work happens on one worker thread, never on the event loop.
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
from typing import TypeVar

from edge.clock import boot_id
from edge.sequence import TrackerState
from qihe.contract import PERIODIC_KINDS, RETAINED_KINDS, Reading, encode_payload

__all__ = ["CommitListener", "Outbox", "StoredReading"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


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


#: kind, sensor, periodic, payload, monotonic time and boot (both None once the clock is trusted)
_Row = tuple[str, str, int, bytes, float | None, str | None]


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
        commit_interval: float = 1.0,
        commit_max: int = 500,
        boot: str | None = None,
    ) -> None:
        if max_readings < 1:
            raise ValueError("max_readings must be at least 1")
        self.path = path
        self.max_readings = max_readings
        self.commit_interval = commit_interval
        self.commit_max = commit_max
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._con: sqlite3.Connection | None = None
        self._pending: list[_Row] = []
        self._confirmed: set[int] = set()
        self._sequence_sources: dict[str, Callable[[], TrackerState]] = {}
        self._listeners: list[CommitListener] = []
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
            data = json.loads(state)
            gaps = tuple((int(seq), int(stamp)) for seq, stamp in data["gaps"])
            self.sequence_state[device] = TrackerState(data["last"], gaps, data.get("boot"))
        self.dropped.update(dict(con.execute("SELECT kind, count FROM drops").fetchall()))
        if self._stored:
            log.info("outbox %s holds %d readings from before", self.path, self._stored)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
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
        """Commit what is pending, then close the store."""
        if self._con is None:
            return
        await self._commit()
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
        self._pending.append((reading.kind, reading.sensor, periodic, payload, untrusted_at, boot))
        self.accepted += 1
        if len(self._pending) >= self.commit_max:
            self._wake.set()

    def track_sequence(self, device: str, state: Callable[[], TrackerState]) -> None:
        """Store this board's sequence state with every commit (read on the event loop)."""
        self._sequence_sources[device] = state

    def on_commit(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    def confirm(self, ids: Iterable[int]) -> None:
        """The broker acknowledged these readings; they are deleted with the next commit."""
        self._confirmed.update(ids)

    def __len__(self) -> int:
        return self._stored + len(self._pending) - len(self._confirmed)

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
        if self._con is None:
            return
        if not self._pending and not self._confirmed:
            # Nothing to write; still tell listeners what is stored, so a board whose
            # acknowledgement was lost (it keeps resending repeats) hears it again.
            stored = dict(self.sequence_state)
            for listener in self._listeners:
                listener(stored)
            return
        rows, self._pending = self._pending, []
        confirmed, self._confirmed = self._confirmed, set()
        # Snapshot on the loop, together with the rows: the two are consistent.
        sequences = {device: state() for device, state in self._sequence_sources.items()}
        # Only boards whose state moved since the last commit are written: a commit that
        # only deletes confirmed readings then touches no sequence page on the card.
        changed = {d: st for d, st in sequences.items() if self.sequence_state.get(d) != st}
        try:
            result = await self._run_in_thread(
                self._commit_sync, rows, confirmed, changed, self._stored
            )
        except sqlite3.Error as exc:
            # Disk full, I/O error: keep everything in memory and try again next time.
            self._pending[:0] = rows
            self._confirmed |= confirmed
            log.error("outbox commit failed (%s); %d readings kept in memory", exc, len(rows))
            return
        self.commits += 1
        self._stored = result.stored
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
        stored: int,
    ) -> _CommitResult:
        con = self._con
        assert con is not None
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
                        json.dumps(
                            {
                                "last": state.last,
                                "gaps": [list(gap) for gap in state.gaps],
                                "boot": state.boot,
                            }
                        ),
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
            for kind, count in dropped.items():
                con.execute(
                    "INSERT INTO drops (kind, count) VALUES (?, ?) "
                    "ON CONFLICT (kind) DO UPDATE SET count = count + excluded.count",
                    (kind, count),
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._last_id += len(rows)
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
        """Stored readings with ``after < id <= upto``, oldest first."""
        return await self._run_in_thread(self._fetch_sync, after, upto, limit)

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
        return await self._run_in_thread(self._latest_states_sync, upto)

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
        monotonic clock is gone): they are dropped and counted as ``untrusted_clock``."""
        self._pending = [
            _restamped(row, offset) if row[4] is not None else row for row in self._pending
        ]
        if self._con is None:
            return
        moved, dropped = await self._run_in_thread(self._restamp_sync, offset)
        if dropped:
            self.dropped["untrusted_clock"] += dropped
            log.warning("dropped %d readings of an earlier boot whose clock was never set", dropped)
        if moved:
            log.info("restamped %d readings taken before the clock was set", moved)
            self._committed.set()

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
            con.execute("ROLLBACK")
            raise
        self._stored -= dropped
        self._last_id += len(held)
        return len(held), dropped


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
