"""What a book house is like: opening hours, visitor arrival rates, the board's supply.

Pure functions of time. The rates are invented for plausibility, not
measured: quiet mornings, a lunch dip, a busy afternoon and evening, more
visitors at weekends. Nothing here draws random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["SHANGHAI", "OpeningHours", "SupplyCurve", "VisitorProfile"]

SHANGHAI = ZoneInfo("Asia/Shanghai")

# Relative busyness per local hour while open (1.0 is a busy afternoon hour).
_HOURLY_WEIGHT: dict[int, float] = {
    8: 0.5,
    9: 0.8,
    10: 0.9,
    11: 0.7,
    12: 0.4,
    13: 0.6,
    14: 1.0,
    15: 1.1,
    16: 1.0,
    17: 0.7,
    18: 0.9,
    19: 1.0,
    20: 0.6,
}


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """Daily opening hours in local time; no one is let in ``last_entry`` before closing."""

    opens: time = time(8, 30)
    closes: time = time(21, 0)
    last_entry: timedelta = timedelta(minutes=20)
    tz: ZoneInfo = SHANGHAI

    def __post_init__(self) -> None:
        if not self.opens < self.closes:
            raise ValueError(f"opening hours {self.opens}–{self.closes} are empty")

    def _day_bounds(self, day: date) -> tuple[float, float]:
        opens = datetime.combine(day, self.opens, self.tz).timestamp()
        closes = datetime.combine(day, self.closes, self.tz).timestamp()
        return opens, closes

    def local(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, UTC).astimezone(self.tz)

    def closing_time(self, ts: float) -> float:
        """Closing time (POSIX seconds) of the local day that contains ``ts``."""
        return self._day_bounds(self.local(ts).date())[1]

    def admits(self, ts: float) -> bool:
        """Whether a visitor arriving at ``ts`` is let in."""
        opens, closes = self._day_bounds(self.local(ts).date())
        return opens <= ts < closes - self.last_entry.total_seconds()

    def next_admission(self, ts: float) -> float:
        """The first moment at or after ``ts`` when visitors are let in."""
        day = self.local(ts).date()
        for offset in range(3):
            opens, closes = self._day_bounds(day + timedelta(days=offset))
            last = closes - self.last_entry.total_seconds()
            if ts < last:
                return max(ts, opens)
        raise AssertionError("unreachable: a day always has an admission window")


@dataclass(frozen=True, slots=True)
class VisitorProfile:
    """Arrival rates per hour for a house with ``seats`` self-study seats.

    ``students_per_seat_hour`` × seats students arrive in a busy hour and stay
    1–4 hours; browsers read or borrow for 5–40 minutes and never sit.
    """

    students_per_seat_hour: float = 0.3
    browsers_per_seat_hour: float = 0.2
    weekend_factor: float = 1.4
    student_stay_h: tuple[float, float] = (1.0, 4.0)
    browser_stay_min: tuple[float, float] = (5.0, 40.0)

    def weight(self, local: datetime) -> float:
        """Busyness at local time ``local``: 0 when closed hours, more at weekends."""
        base = _HOURLY_WEIGHT.get(local.hour, 0.0)
        return base * (self.weekend_factor if local.weekday() >= 5 else 1.0)

    @property
    def max_weight(self) -> float:
        return max(_HOURLY_WEIGHT.values()) * max(self.weekend_factor, 1.0)


@dataclass(frozen=True, slots=True)
class SupplyCurve:
    """Supply voltage draining linearly from ``full_mv`` to ``empty_mv`` over ``drain``."""

    full_mv: int = 4100
    empty_mv: int = 3300
    drain: timedelta = timedelta(days=10)
    low_mv: int = 3400
    #: A raised SUPPLY_LOW clears only above ``low_mv + hysteresis_mv``.
    hysteresis_mv: int = 50

    def mv_at(self, elapsed_s: float, ts: float) -> int:
        """Voltage ``elapsed_s`` after a full charge, at POSIX time ``ts``."""
        frac = min(1.0, elapsed_s / self.drain.total_seconds())
        # A few mV of deterministic ripple, so the series is not a ruler-straight line.
        ripple = (int(ts) * 2654435761) % 7 - 3
        return round(self.full_mv - (self.full_mv - self.empty_mv) * frac) + ripple
