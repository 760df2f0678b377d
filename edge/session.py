"""The gateway's broker-session number, growing across restarts (like Sparkplug's bdSeq).

Every connection attempt takes a new number, so a Last Will published late for
an old session can be told apart from the live state and never marks a live
gateway offline. Numbers are reserved in blocks: the file holds the highest
number this gateway may have handed out, and is written once per
:data:`BLOCK` connections, not once per retry — an SD card rides out a long
outage. After a restart numbering continues above the reserved block, so
numbers skip but never repeat or go back.

A card that refuses the write (full, read-only) does not stop the gateway from
connecting: the block is reserved in memory, logged, and written with the next
block. Only if the gateway restarts before any write works can numbers repeat
— the price of connecting at all, which a full card must not prevent.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["BLOCK", "SessionCounter"]

BLOCK = 64

log = logging.getLogger(__name__)


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
            try:
                self._write(self._reserved)
            except OSError as exc:
                log.warning(
                    "会话编号无法写入 %s（%s），本次运行在内存中继续编号"
                    " / cannot write the session number to %s (%s); numbering goes on in memory",
                    self.path,
                    exc,
                    self.path,
                    exc,
                )
        value = self._next
        self._next += 1
        return value
