"""The gateway's broker-session number, growing across restarts (like Sparkplug's bdSeq).

Every connection attempt takes a new number, so a Last Will published late for
an old session can be told apart from the live state and never marks a live
gateway offline. Numbers are reserved in blocks: the file holds the highest
number this gateway may have handed out, and is written once per
:data:`BLOCK` connections, not once per retry — an SD card rides out a long
outage. After a restart numbering continues above the reserved block, so
numbers skip but never repeat or go back.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BLOCK", "SessionCounter"]

BLOCK = 64


class SessionCounter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._next: int | None = None
        self._reserved = 0

    def _read(self) -> int:
        try:
            return max(0, int(self.path.read_text().strip() or 0))
        except FileNotFoundError:
            return 0
        except ValueError:
            # A hand-edited file; the Will check compares sessions of this gateway only.
            return 0

    def _write(self, value: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            fh.write(f"{value}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def next(self) -> int:
        """The next session number; may write the file (call it off the event loop)."""
        if self._next is None:
            self._reserved = self._read()
            self._next = self._reserved + 1
        if self._next > self._reserved:
            self._reserved = self._next + BLOCK - 1
            self._write(self._reserved)
        value = self._next
        self._next += 1
        return value
