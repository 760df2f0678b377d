"""The wall clock as a value: each part that stamps or schedules takes one; tests pass theirs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utc_now"]

#: Returns an aware datetime in UTC.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now, in UTC: the clock every part uses unless a test gives it another."""
    return datetime.now(UTC)
