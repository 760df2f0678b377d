"""The outbox's SQLite file: its schema and every statement run on it.

Plain, blocking code for the outbox's one worker thread (``edge/outbox/outbox.py``
calls it there, never on the event loop). The counts of the file (``stored``,
``last_id``) are kept here, by that thread alone, so a commit never starts from a
stale one. A board's sequence state is stored as the text its tracker gives
(``TrackerState.to_json``): this module does not read it.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edge.outbox.pending import Row, dated
from qihe.contract import RETAINED_KINDS

__all__ = ["OutboxStore", "StoredReading"]

log = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A reading as stored: its JSON exactly as it goes on the wire (its identity is fixed)."""

    id: int
    kind: str
    sensor: str
    payload: bytes


class OutboxStore:
    """The file at ``path``; construct (no I/O), :meth:`open`, then the statements."""

    def __init__(self, path: Path, *, max_readings: int, boot: str, busy_timeout: float) -> None:
        self.path = path
        self.max_readings = max_readings
        self.busy_timeout = busy_timeout
        self._boot = boot
        self._con: sqlite3.Connection | None = None
        #: Readings in the file (confirmed ones until a commit deletes them).
        self.stored = 0
        #: The newest stored reading's id (ids only ever grow).
        self.last_id = 0

    def open(self) -> tuple[dict[str, str], Counter[str]]:
        """Open (create) the file; what it holds from before: each board's sequence state
        (its tracker's text) and the drops counted by kind."""
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
        self.stored = con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self.last_id = con.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0]
        sequences = dict(con.execute("SELECT device, state FROM device_sequence").fetchall())
        drops = Counter(dict(con.execute("SELECT kind, count FROM drops").fetchall()))
        if self.stored:
            log.info("outbox %s holds %d readings from before", self.path, self.stored)
        return sequences, drops

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

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _connection(self) -> sqlite3.Connection:
        assert self._con is not None, "the outbox store is not open"
        return self._con

    def commit(
        self,
        rows: list[Row],
        confirmed: set[int],
        sequences: Mapping[str, str],
        memory_drops: Counter[str],
    ) -> Counter[str]:
        """One transaction: delete the ``confirmed`` readings, insert ``rows`` with their ids
        (a row the broker acknowledged before this commit is not written at all), store the
        boards' ``sequences``, keep within ``max_readings`` (the oldest periodic telemetry
        goes first, then the oldest reading) and count the drops, this commit's and
        ``memory_drops``. Returns what the bound dropped, by kind."""
        con = self._connection()
        stored = self.stored
        dropped: Counter[str] = Counter()
        con.execute("BEGIN IMMEDIATE")
        try:
            new = [row for row in rows if row[6] not in confirmed]
            if confirmed:
                deleted = con.executemany(
                    "DELETE FROM outbox WHERE id BETWEEN ? AND ?", _runs(confirmed)
                ).rowcount
                stored -= deleted
            con.executemany(
                "INSERT INTO outbox (kind, sensor, periodic, payload, mono, boot, id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                new,
            )
            stored += len(new)
            con.executemany(
                "INSERT INTO device_sequence (device, state) VALUES (?, ?) "
                "ON CONFLICT (device) DO UPDATE SET state = excluded.state",
                sequences.items(),
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
            _count_drops(con, dropped + memory_drops)
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
        if rows:
            self.last_id = max(self.last_id, rows[-1][6])
        self.stored = stored
        return dropped

    def probe(self) -> None:
        """Take the write lock and let it go, writing nothing: raises what a commit would
        (locked past the busy timeout, the file gone bad); hangs where a commit would hang."""
        con = self._connection()
        con.execute("BEGIN IMMEDIATE")
        _rollback(con)

    def fetch(self, after: int, upto: int | None, limit: int) -> list[StoredReading]:
        """Dated readings with ``after < id <= upto`` (the newest if None), oldest first."""
        rows = (
            self._connection()
            .execute(
                "SELECT id, kind, sensor, payload FROM outbox "
                "WHERE id > ? AND id <= ? AND mono IS NULL ORDER BY id LIMIT ?",
                (after, upto if upto is not None else self.last_id, limit),
            )
            .fetchall()
        )
        return [StoredReading(*row) for row in rows]

    def latest_states(self, upto: int) -> list[StoredReading]:
        """The newest dated reading of every state sensor (seat, door, …) up to ``upto``."""
        kinds = sorted(RETAINED_KINDS)
        marks = ",".join("?" * len(kinds))
        rows = (
            self._connection()
            .execute(
                "SELECT o.id, o.kind, o.sensor, o.payload FROM outbox o JOIN ("
                f" SELECT MAX(id) AS id FROM outbox WHERE id <= ? AND mono IS NULL"
                f" AND kind IN ({marks})"
                " GROUP BY kind, sensor) newest ON o.id = newest.id ORDER BY o.id",
                (upto, *kinds),
            )
            .fetchall()
        )
        return [StoredReading(*row) for row in rows]

    def held_count(self) -> int:
        """Readings of this boot held for the clock (what :meth:`restamp` will move)."""
        sql = "SELECT COUNT(*) FROM outbox WHERE mono IS NOT NULL AND boot = ?"
        row = self._connection().execute(sql, (self._boot,)).fetchone()
        return int(row[0])

    def restamp(self, offset: float, first_id: int) -> tuple[int, int]:
        """Date the held readings of this boot (``wall = monotonic + offset``) and move them
        to the end, ids from ``first_id`` on; drop and count those of an earlier boot.
        Returns (dated, dropped)."""
        con = self._connection()
        con.execute("BEGIN IMMEDIATE")
        try:
            held = con.execute(
                "SELECT id, kind, sensor, periodic, payload, mono, boot FROM outbox "
                "WHERE mono IS NOT NULL AND boot = ? ORDER BY id",
                (self._boot,),
            ).fetchall()
            con.executemany("DELETE FROM outbox WHERE id = ?", [(row[0],) for row in held])
            con.executemany(
                "INSERT INTO outbox (id, kind, sensor, periodic, payload) VALUES (?, ?, ?, ?, ?)",
                [
                    (first_id + i, *dated((*row[1:], row[0]), offset)[:4])
                    for i, row in enumerate(held)
                ],
            )
            dropped = con.execute(
                "DELETE FROM outbox WHERE mono IS NOT NULL AND boot != ?", (self._boot,)
            ).rowcount
            _count_drops(con, Counter(untrusted_clock=dropped))
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
        self.stored -= dropped
        if held:
            self.last_id = max(self.last_id, first_id + len(held) - 1)
        return len(held), dropped


def _count_drops(con: sqlite3.Connection, drops: Counter[str]) -> None:
    con.executemany(
        "INSERT INTO drops (kind, count) VALUES (?, ?) "
        "ON CONFLICT (kind) DO UPDATE SET count = count + excluded.count",
        [(kind, count) for kind, count in drops.items() if count > 0],
    )


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
