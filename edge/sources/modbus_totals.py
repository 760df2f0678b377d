"""People totals from a Modbus counter: kept rising across its resets and wrap-arounds.

A people counter's register is a 16- or 32-bit total that falls back to 0 when the device
is reset (power cut, a button, a reconfiguration) and when it passes its top
(65,535 → 0). The contract's people totals are "since the counter's last reset", and the
statistics add up their rises (``central/visitors.py``): a total that falls is read as a
reset and counts the new total whole. Both cases are honest, but a fall cannot say
which it was, and a wrap read as a reset loses the 65,536 it wrapped past. So the gateway
keeps the totals it publishes rising: each fall of the register adds to a base, which
is the register's top for a wrap (a fall from within :data:`WRAP_WINDOW` of the top to
below it) and the last value before the fall for a reset (every visitor counted before it
stays counted, every one after it is added). The bases and last values are kept in a
small file in the state folder, so a gateway restart neither replays nor loses a reset;
without the file (a new card) the totals start again from the register, which the
statistics read as one reset.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["STATE_FILE", "WRAP_WINDOW", "CounterTrack", "load_tracks", "restore", "save_tracks"]

log = logging.getLogger(__name__)

#: Where the counters' bases are kept, in the state folder.
STATE_FILE = "modbus-counters.json"

#: A fall from the top's last WRAP_WINDOW values to below WRAP_WINDOW is a wrap-around;
#: any other fall is a reset. (Nobody counts 1,024 visitors between two polls.)
WRAP_WINDOW = 1024


@dataclass(slots=True)
class CounterTrack:
    """One counter register: what is added to it (``base``) and its last value."""

    bits: int
    base: int = 0
    last: int | None = None

    def update(self, raw: int) -> tuple[int, Literal["wrap", "reset"] | None]:
        """The published total for the register's new value, and what happened if it fell."""
        event: Literal["wrap", "reset"] | None = None
        last = self.last
        if last is not None and raw < last:
            top = 1 << self.bits
            if last >= top - WRAP_WINDOW and raw < WRAP_WINDOW:
                self.base += top
                event = "wrap"
            else:
                self.base += last
                event = "reset"
        self.last = raw
        return self.base + raw, event

    def to_json(self) -> list[int]:
        return [self.base, -1 if self.last is None else self.last]


def load_tracks(path: Path) -> dict[str, list[int]]:
    """The saved ``[base, last]`` of each counter (``{}`` when none are saved or the file is
    unreadable, which is logged: the totals then start again from the registers)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("无法读取计数器状态 cannot read the counter bases %s: %s", path, exc)
        return {}
    try:
        data = json.loads(text)
        tracks = {
            str(key): [int(value[0]), int(value[1])]
            for key, value in data.items()
            if isinstance(value, list) and len(value) == 2
        }
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("计数器状态文件损坏，已忽略 the counter bases in %s are damaged: %s", path, exc)
        return {}
    return tracks


def restore(track: CounterTrack, saved: list[int] | None) -> CounterTrack:
    """``track`` with a saved ``[base, last]`` put back (ignored if out of range)."""
    if saved is not None and saved[0] >= 0 and -1 <= saved[1] < 1 << track.bits:
        track.base = saved[0]
        track.last = None if saved[1] < 0 else saved[1]
    return track


def save_tracks(path: Path, tracks: dict[str, list[int]]) -> None:
    """Replace the file atomically (a power cut leaves the old one or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(tracks, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
