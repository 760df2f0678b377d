"""Is the wall clock right yet? A Raspberry Pi has no real-time clock.

Until NTP has synchronised it after boot, a Pi's clock can be days off (it
starts from the last time it saved). Readings taken before then are stored
with their monotonic time and held back from publishing; once the clock is
trusted, the offset between the wall clock and the monotonic clock turns those
stamps into the right UTC times (``Outbox.restamp``). ``docs/reliability.md``
says what happens in each case.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

__all__ = ["AlwaysTrusted", "ClockGuard", "ClockTrust", "KernelClockSync", "boot_id"]

log = logging.getLogger(__name__)

_STA_UNSYNC = 0x0040


class ClockTrust(Protocol):
    def synchronised(self) -> bool: ...


class AlwaysTrusted:
    """For machines whose clock is right from the start (an RTC, or tests)."""

    def synchronised(self) -> bool:
        return True


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    ]


class KernelClockSync:
    """Linux's own word: ``adjtimex`` clears STA_UNSYNC once an NTP client (systemd-timesyncd,
    chrony, ntpd) has disciplined the clock. Read-only; needs no privileges."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        self._adjtimex = ctypes.CDLL(name, use_errno=True).adjtimex if name else None

    def synchronised(self) -> bool:
        if self._adjtimex is None:
            return True  # not Linux: nothing to ask, trust the clock
        timex = _Timex()
        if self._adjtimex(ctypes.byref(timex)) < 0:
            return True
        return not timex.status & _STA_UNSYNC


def boot_id() -> str:
    """Names this boot: monotonic times only compare within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"process-{uuid.uuid4()}"


#: Seconds between two untrusted stamps, at least: 2 µs survives rounding to the microsecond.
_UNTRUSTED_STEP = 2e-6


class ClockGuard:
    """Says whether readings can be stamped with the wall clock, and when that starts."""

    def __init__(
        self,
        trust: ClockTrust,
        *,
        poll: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._trust = trust
        self._poll = poll
        self._monotonic = monotonic
        self._wall = wall
        self.trusted = trust.synchronised()
        self._last_untrusted = -math.inf

    def untrusted_stamp(self) -> float | None:
        """The monotonic time to keep with a reading while the clock is not trusted.

        Strictly increasing, at least 2 µs apart: once restamped to the microsecond, two
        held readings never share a time (``edge/stamps.py``).
        """
        if self.trusted:
            return None
        stamp = max(self._monotonic(), self._last_untrusted + _UNTRUSTED_STEP)
        self._last_untrusted = stamp
        return stamp

    async def run(self, on_trusted: Callable[[float], Awaitable[None]]) -> None:
        """Wait for the clock; then hand ``wall - monotonic`` to ``on_trusted`` (once)."""
        if self.trusted:
            return
        log.warning("the system clock is not synchronised yet; holding readings until it is")
        # The kernel offers no notification for this flag: poll it.
        while not self._trust.synchronised():  # noqa: ASYNC110
            await asyncio.sleep(self._poll)
        offset = self._wall() - self._monotonic()
        # Flip first, in the same step as the restamp begins: no reading falls in between.
        self.trusted = True
        log.info("the system clock is synchronised; restamping held readings")
        await on_trusted(offset)
