"""The gateway's broker-session number, kept across restarts (like Sparkplug's bdSeq).

It grows with every connection, so a Last Will published late for an old
session can be told apart from the live state and never marks a live gateway
offline. One small atomic write per connection: harmless for an SD card.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SessionCounter"]


class SessionCounter:
    def __init__(self, path: Path) -> None:
        self.path = path

    def current(self) -> int:
        try:
            return int(self.path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except ValueError:
            # A torn or hand-edited file: start above anything a clock-free counter reached.
            return 0

    def next(self) -> int:
        """Increment and persist; blocking (call it off the event loop)."""
        value = self.current() + 1
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
        return value
