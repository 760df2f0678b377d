"""Clocks for tests that run services for real but say which moment "now" is.

The services take a ``clock`` (a ``Clock`` of :mod:`edge.normalise`: ``() -> datetime``). A
test that must hold at a local midnight, a month end or a year end passes one of these instead
of the wall clock, so it passes whatever the hour, date and time zone of the machine.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

__all__ = ["RunningClock"]


class RunningClock:
    """Starts at ``start`` and runs at the rate of the monotonic clock; :meth:`jump` moves it
    (forward or back) without stopping it. Safe to read from any thread."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError(f"start {start.isoformat()} has no time zone")
        self._origin = (start, time.monotonic())

    def __call__(self) -> datetime:
        base, since = self._origin
        return base + timedelta(seconds=time.monotonic() - since)

    def jump(self, to: datetime) -> None:
        """From now on the clock reads ``to``, and runs on from there."""
        # One attribute: a reader on another thread sees the old origin or the new one.
        self._origin = (to, time.monotonic())
