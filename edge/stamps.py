"""Reading timestamps that never repeat: a sensor's readings are distinct InfluxDB points.

A point's identity in InfluxDB is its measurement, tags and time: two readings of one
sensor stamped with the same microsecond would overwrite each other. The wall clock
alone does not prevent it (two edges within a microsecond, a coarse or a stepped
clock), so a source stamps through a :class:`Stamper`: each stamp is at least ``step``
µs after the one before it from the same stamper, whatever the clock says. Serial
links get the same guarantee from their sequence tracker (``edge/sequence.py``), which
also leaves one free microsecond per number a gap skipped for the gap's late fillers
(``docs/influxdb.md``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["Stamper", "from_micros", "micros"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch, in exact integer arithmetic (no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    """The UTC datetime ``us`` microseconds after the Unix epoch (exact)."""
    return _EPOCH + timedelta(microseconds=us)


class Stamper:
    """Strictly increasing timestamps from a clock (µs resolution)."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._last: int | None = None

    def next_us(self, step: int = 1) -> int:
        """The clock's time, or ``step`` µs after the previous stamp if that is later."""
        now = micros(self._clock())
        last = self._last
        if last is not None and now < last + step:
            now = last + step
        self._last = now
        return now

    def __call__(self) -> datetime:
        return from_micros(self.next_us())
