"""Settings of one emulated board (and the book house behind it)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from firmware_bridge.emulator.board import MAX_REPORT_INTERVAL_S
from firmware_bridge.emulator.profile import OpeningHours
from firmware_bridge.emulator.window import HOLD_HORIZON
from firmware_bridge.messages import DEVICE_ID_PATTERN

__all__ = ["MAX_SEATS", "EmulatorConfig"]

#: A HELLO lists every sensor and must fit one frame (254 bytes with a 32-character id).
MAX_SEATS = 64


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class EmulatorConfig(BaseModel):
    """One board. Same ``seed`` and ``start`` (and the same calls) give the same frames."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN.pattern)] = "taoyuan-1"
    seats: Annotated[int, Field(ge=1, le=MAX_SEATS)] = 24
    #: The entrance's people counter and door contact are on this board. A site with
    #: several boards has them on one; the others have seats only (``False``, ``False``).
    counter: bool = True
    door: bool = True
    #: Seats 1..presence_seats also have a presence channel (SEAT_PRESENCE).
    presence_seats: Annotated[int, Field(ge=0, le=MAX_SEATS)] = 0
    #: Share of the students seated over lunch who go out 11:30–12:00 for 40–100 minutes
    #: and leave their books on the seat (暂离, then 占座).
    lunch_away: Annotated[float, Field(ge=0, le=1)] = 0.0
    #: Simulated seconds per real second.
    speed: Annotated[float, Field(gt=0, le=1_000_000)] = 60.0
    seed: int = 0
    report_interval_s: Annotated[int, Field(ge=1, le=MAX_REPORT_INTERVAL_S)] = 60
    #: Simulated time at power-up. Defaults to now; pass it for reproducible runs.
    start: AwareDatetime = Field(default_factory=_now)
    #: ``False``: a scripted board — HELLO, heartbeats and manual changes only.
    simulate: bool = True
    opens: time = time(8, 30)
    closes: time = time(21, 0)
    timezone: str = "Asia/Shanghai"
    # Faults present from power-up; all can also be switched at run time.
    noise_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    stuck_seats: tuple[int, ...] = ()
    #: A stuck seat that never raises FAULT STUCK (the sensor does not know it is stuck).
    stuck_silent: bool = False
    silent: bool = False
    #: Hold the supply at this voltage (e.g. 3250 for a failing adapter) instead of the drain curve.
    supply_mv: Annotated[int, Field(ge=0, le=0xFFFF)] | None = None
    stuck_report_after: timedelta = timedelta(minutes=30)
    door_hold: timedelta = timedelta(seconds=6)
    #: Real time between simulation steps.
    tick: timedelta = timedelta(milliseconds=50)
    #: Frames waiting for a port that does not drain; beyond this they are dropped.
    max_pending_frames: Annotated[int, Field(ge=1)] = 256
    #: Keep at most about this many journal (and dropped, and produced) entries; ``None``: all.
    journal_limit: Annotated[int, Field(ge=2)] | None = None
    #: Acknowledged reports (protocol section 8): the board holds every report until a
    #: REPORT_ACK covers it and sends what it holds again after this much REAL time
    #: without progress. ``None``: the board holds nothing and never resends.
    retransmit_after: timedelta | None = None
    #: Reports held at most; when full the oldest HEARTBEAT is dropped first, then the oldest.
    ack_window: Annotated[int, Field(ge=1, le=HOLD_HORIZON)] = 128
    #: Sequence number of the first frame (HELLO) at the first power-up; later boots use 0.
    initial_seq: Annotated[int, Field(ge=0, le=0xFFFF)] = 0

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.presence_seats > self.seats:
            raise ValueError(f"presence_seats={self.presence_seats} exceeds seats={self.seats}")
        bad = [seat for seat in self.stuck_seats if not 1 <= seat <= self.seats]
        if bad:
            raise ValueError(f"stuck_seats {bad} are outside 1..{self.seats}")
        try:
            OpeningHours(self.opens, self.closes, tz=ZoneInfo(self.timezone))
        except ZoneInfoNotFoundError:
            raise ValueError(f"unknown timezone {self.timezone!r}") from None
        if self.tick <= timedelta(0):
            raise ValueError("tick must be positive")
        if self.retransmit_after is not None and self.retransmit_after <= timedelta(0):
            raise ValueError("retransmit_after must be positive")
        return self

    def opening_hours(self) -> OpeningHours:
        return OpeningHours(self.opens, self.closes, tz=ZoneInfo(self.timezone))
