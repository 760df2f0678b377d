"""The stamps a serial board's readings were published with before their commit.

The gateway publishes a reading as it arrives, before the group commit stores it
(``docs/reliability.md``). A gateway killed in between has published readings its store
does not hold, and has not acknowledged them to the board, which sends them again after
the restart. InfluxDB takes the resend for the same point only if it carries the same
time, and a reading's time is its arrival's (``edge/sequence.py``): the resend arrives
later. So every stamp is written here before its reading is published, one short line
appended with one ``write`` (no ``fsync``), and the restarted gateway gives a resent
report the stamp it was published with (:meth:`SequenceTracker.plan`).

Why no ``fsync``: a killed process's writes are in the kernel already, so a SIGKILL (a
crash, the watchdog's restart) loses none; only a power cut can, and then a report
published in the last commit interval before the cut may land twice, at two times
(``docs/reliability.md``). What the card sees is the page cache's writeback, a few
bytes per reading. Entries a commit covers are forgotten, and the file is rewritten
(atomically, by rename) once it has grown past :data:`REWRITE_AFTER` bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["StampJournal"]

log = logging.getLogger(__name__)

#: The file is rewritten with only the entries no commit covers once it is this long.
REWRITE_AFTER = 64 * 1024

#: One entry: the board's boot (None before the tracker knows it), the sequence number, the stamp.
Entry = tuple[int | None, int, int]


def _line(entry: Entry) -> bytes:
    boot, seq, stamp = entry
    return b"%s %d %d\n" % (b"-" if boot is None else b"%d" % boot, seq, stamp)


def _parse(line: bytes) -> Entry | None:
    parts = line.split()
    if len(parts) != 3:
        return None  # the last line of a file cut short
    try:
        boot = None if parts[0] == b"-" else int(parts[0])
        return boot, int(parts[1]), int(parts[2])
    except ValueError:
        return None


class StampJournal:
    """One board's journal file: :meth:`open`, :meth:`record` per stamp, :meth:`covered`
    after a commit with the position :meth:`mark` gave when its state was taken."""

    def __init__(self, path: Path, *, trusted: Callable[[], bool] = lambda: True) -> None:
        self.path = path
        #: Whether the wall clock is trusted now: a reading stamped while it is not is held
        #: (restamped, published later) and its stamp is not the one it will be published with.
        self._trusted = trusted
        self._fd: int | None = None
        self._entries: list[Entry] = []
        #: Entries dropped from the front of ``_entries`` so far (positions are absolute).
        self._forgotten = 0
        self._size = 0
        self._failing = False

    def open(self) -> list[Entry]:
        """Open the file; return what an earlier process recorded and no commit covered."""
        recovered: list[Entry] = []
        with contextlib.suppress(FileNotFoundError):
            for line in self.path.read_bytes().splitlines():
                entry = _parse(line)
                if entry is not None:
                    recovered.append(entry)
        self._entries = list(recovered)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._rewrite()
        except OSError as exc:
            self._failed(exc)
        return recovered

    def record(self, boot: int | None, seq: int, stamp_us: int) -> None:
        """Before the reading is published: one line, one ``write`` (none while the clock is
        not trusted: such a reading is not published before it is stored)."""
        if not self._trusted():
            return
        entry = (boot, seq, stamp_us)
        self._entries.append(entry)
        if self._fd is None:
            return
        line = _line(entry)
        try:
            os.write(self._fd, line)
        except OSError as exc:
            self._failed(exc)
            return
        self._size += len(line)

    def mark(self) -> int:
        """The position now: what a commit whose state is taken now covers."""
        return self._forgotten + len(self._entries)

    def covered(self, mark: int) -> None:
        """A commit stored the state taken at ``mark``: the entries before it are not needed."""
        drop = mark - self._forgotten
        if drop <= 0:
            return
        del self._entries[:drop]
        self._forgotten = mark
        if self._size > REWRITE_AFTER and self._fd is not None:
            try:
                self._rewrite()
            except OSError as exc:
                self._failed(exc)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _rewrite(self) -> None:
        data = b"".join(_line(entry) for entry in self._entries)
        temporary = self.path.with_name(self.path.name + ".new")
        temporary.write_bytes(data)
        os.replace(temporary, self.path)
        self.close()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = len(data)

    def _failed(self, exc: OSError) -> None:
        """The state folder refuses writes (full, read-only): stamps are kept in memory only,
        so a resend after a crash may land twice, at two times; said once."""
        self.close()
        if not self._failing:
            self._failing = True
            log.warning(
                "无法写入时间戳日志 %s（%s）：崩溃后重发的读数可能以新时间重复写入"
                " / cannot write the stamp journal %s (%s): a report resent after a crash"
                " may land twice, at two times",
                self.path,
                exc,
                self.path,
                exc,
            )
