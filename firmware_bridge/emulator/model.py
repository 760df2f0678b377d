"""A book house as a deterministic discrete-event simulation on a simulated clock.

Visitors arrive through the entrance (door contact + people counter) with a
time-of-day profile; students take a free self-study seat for 1–4 hours,
browsers leave after a few minutes; everyone is out by closing time. The board's
own timers (heartbeat, door closer, stuck-sensor detector) run on the same clock.

A board need not have the entrance's sensors: without ``counter`` it sends no
PEOPLE reports, without ``door`` no DOOR reports, and its HELLO lists only what
it has. The crowd is the same either way (same seed, same seats taken).

Seats 1..``presence_seats`` also have a presence channel (an mmWave radar above the desk):
the board sends SEAT_PRESENCE for them, before SEAT when the occupancy changes. With
``lunch_away`` that share of the students seated over lunch go out between 11:30 and 12:00
(local time) and leave their books for 40–100 minutes (暂离; held while empty, 占座, once
past the grace): the seat stays occupied while nobody is there. The lunch draws come from a
random stream of their own, so the crowd is the same with or without them.

:meth:`BookHouseModel.step` advances the clock and returns the reports the board
would send, in order. The result depends only on the seed, the start time and
the sequence of calls — not on how the time is sliced into steps. No I/O here.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import IntEnum

from firmware_bridge.emulator.profile import OpeningHours, SupplyCurve, VisitorProfile
from firmware_bridge.errors import NoSuchSensorError
from firmware_bridge.messages import (
    Door,
    Fault,
    FaultCode,
    Heartbeat,
    People,
    Report,
    Seat,
    SeatPresence,
    SensorKind,
    SensorRef,
)

__all__ = ["SUPPLY_SENSOR", "BookHouseModel", "HouseState"]

_COUNTER = 1
_DOOR = 1
#: The protocol ties every fault to a sensor and has no "board" kind, so supply
#: faults are raised on the entrance counter (or, on a board without one, on the
#: door; a board with seats only raises none). Seats are never used: a seat's one
#: fault state is its STUCK fault.
SUPPLY_SENSOR = SensorRef(SensorKind.PEOPLE, _COUNTER)
_SUPPLY_ON_DOOR = SensorRef(SensorKind.DOOR, _DOOR)
_MANUAL = -1  # seat owner for seats set by hand
_U32 = 0xFFFF_FFFF


class _Ev(IntEnum):
    ARRIVE = 1
    SIT = 2
    STAND = 3
    LEAVE = 4
    HEARTBEAT = 10
    DOOR_CLOSE = 11
    STUCK_REPORT = 12
    AWAY = 5
    BACK = 6


# (time, insertion order, kind, argument): insertion order breaks ties deterministically.
_Event = tuple[float, int, _Ev, int]


@dataclass(frozen=True, slots=True)
class HouseState:
    """A snapshot of the simulated house and what its sensors report."""

    now: datetime
    seats: tuple[bool, ...]  # as the sensors report them (a stuck seat reads occupied)
    seated: tuple[bool, ...]  # whether someone really sits there
    stuck: tuple[int, ...]
    # Passages since the board's last reset: the counter's totals (kept, unreported,
    # on a board without a counter).
    in_total: int
    out_total: int
    inside: int
    door_open: bool  # always False on a board without a door contact
    supply_mv: int
    uptime_s: int
    report_interval_s: int
    simulating: bool
    #: Whether someone is at each seat, as its presence channel sees it (seats with one).
    present: tuple[bool, ...] = ()


@dataclass(slots=True)
class _Stuck:
    report: bool
    due: float  # when the board's detector notices (earlier STUCK_REPORT events are stale)
    reported: bool = False


@dataclass(slots=True)
class _Counts:
    in_total: int = 0
    out_total: int = 0
    inside: int = 0


class BookHouseModel:
    """The simulated house. All times are aware datetimes; ``now`` is UTC."""

    def __init__(
        self,
        *,
        seats: int,
        start: datetime,
        seed: int = 0,
        report_interval_s: int = 60,
        simulate: bool = True,
        hours: OpeningHours | None = None,
        profile: VisitorProfile | None = None,
        supply: SupplyCurve | None = None,
        door_hold: timedelta = timedelta(seconds=6),
        stuck_report_after: timedelta = timedelta(minutes=30),
        counter: bool = True,
        door: bool = True,
        presence_seats: int = 0,
        lunch_away: float = 0.0,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        if seats < 1:
            raise ValueError(f"seats={seats}; a house has at least one seat")
        if not 0 <= presence_seats <= seats:
            raise ValueError(f"presence_seats={presence_seats} is outside 0..{seats}")
        self._presence_seats = presence_seats
        self._lunch_away = lunch_away
        self._lunch_rng = random.Random(f"lunch-{seed}")
        self._here = [False] * seats  # someone at the seat (what a presence channel sees)
        self._reported_here = [False] * seats
        self._rng = random.Random(seed)
        self._hours = hours or OpeningHours()
        self._profile = profile or VisitorProfile()
        self._supply = supply or SupplyCurve()
        self._door_hold = door_hold.total_seconds()
        self._stuck_after = stuck_report_after.total_seconds()
        self._seats = seats
        self._counter = counter
        self._door = door
        self._t = start.timestamp()
        self._start_t = self._t
        self._boot_t = self._t
        self._board: list[_Event] = []
        self._crowd: list[_Event] = []
        self._order = 0
        self._owner: list[int | None] = [None] * seats
        self._reported = [False] * seats
        self._stuck: dict[int, _Stuck] = {}
        self._visitors: dict[int, int | None] = {}
        self._next_visitor = 1
        self._counts = _Counts()
        self._door_open = False
        self._door_close_at = 0.0
        self._supply_override: int | None = None
        self._supply_low = False
        self._interval = report_interval_s
        self._hb_token = 0
        self._paused_at: float | None = None
        self._arrival_pending = False
        self._schedule_heartbeat()
        if simulate:
            self._schedule_arrival(self._t)
        else:
            self._paused_at = self._t

    # -- reading -------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self._t, UTC)

    @property
    def seats(self) -> int:
        return self._seats

    @property
    def report_interval_s(self) -> int:
        return self._interval

    @property
    def sensors(self) -> tuple[SensorRef, ...]:
        """Every sensor on the board, as announced in HELLO."""
        out = [SensorRef(SensorKind.SEAT, i) for i in range(1, self._seats + 1)]
        if self._counter:
            out.append(SensorRef(SensorKind.PEOPLE, _COUNTER))
        if self._door:
            out.append(SensorRef(SensorKind.DOOR, _DOOR))
        return tuple(out)

    @property
    def supply_sensor(self) -> SensorRef | None:
        """The sensor SUPPLY_LOW faults are raised on; ``None``: the board raises none."""
        if self._counter:
            return SUPPLY_SENSOR
        return _SUPPLY_ON_DOOR if self._door else None

    def supply_mv(self) -> int:
        if self._supply_override is not None:
            return self._supply_override
        return self._supply.mv_at(self._t - self._start_t, self._t)

    def state(self) -> HouseState:
        return HouseState(
            now=self.now,
            seats=tuple(self._reported),
            seated=tuple(owner is not None for owner in self._owner),
            stuck=tuple(sorted(self._stuck)),
            present=tuple(self._reported_here[: self._presence_seats]),
            in_total=self._counts.in_total,
            out_total=self._counts.out_total,
            inside=self._counts.inside,
            door_open=self._door_open,
            supply_mv=self.supply_mv(),
            uptime_s=self._uptime(),
            report_interval_s=self._interval,
            simulating=self._paused_at is None,
        )

    # -- advancing -------------------------------------------------------------

    def step(self, until: datetime) -> list[Report]:
        """Advance the clock to ``until`` and return what the board sends meanwhile, in order."""
        limit = until.timestamp()
        out: list[Report] = []
        while (event := self._pop_due(limit)) is not None:
            self._t = event[0]
            self._handle(event, out)
        self._t = max(self._t, limit)
        return out

    def _pop_due(self, limit: float) -> _Event | None:
        board = self._board[0] if self._board else None
        crowd = self._crowd[0] if self._crowd and self._paused_at is None else None
        if board is not None and (crowd is None or board[:2] <= crowd[:2]):
            heap = self._board
        elif crowd is not None:
            heap = self._crowd
        else:
            return None
        return heapq.heappop(heap) if heap[0][0] <= limit else None

    def _push(self, heap: list[_Event], at: float, kind: _Ev, arg: int = 0) -> None:
        self._order += 1
        heapq.heappush(heap, (at, self._order, kind, arg))

    def _handle(self, event: _Event, out: list[Report]) -> None:
        _, _, kind, arg = event
        match kind:
            case _Ev.ARRIVE:
                self._arrive(out)
            case _Ev.SIT:
                self._sit(arg, out)
            case _Ev.STAND:
                self._stand(arg, out)
            case _Ev.LEAVE:
                self._visitors.pop(arg, None)
                self._passage(entering=False, out=out)
            case _Ev.HEARTBEAT:
                if arg == self._hb_token:
                    self._heartbeat(out)
                    self._schedule_heartbeat()
            case _Ev.DOOR_CLOSE:
                if self._door_open and self._t >= self._door_close_at:
                    self._door_open = False
                    out.append(Door(_DOOR, False))
            case _Ev.STUCK_REPORT:
                self._report_stuck(arg, out)
            case _Ev.AWAY | _Ev.BACK:
                seat = self._visitors.get(arg)
                if seat is not None and self._owner[seat] == arg:
                    self._here[seat] = kind == _Ev.BACK
                    self._report_seat(seat, out)

    # -- the crowd -------------------------------------------------------------

    def _schedule_arrival(self, after: float) -> None:
        """Next arrival of a non-homogeneous Poisson process, drawn by thinning."""
        profile, hours = self._profile, self._hours
        per_hour = (profile.students_per_seat_hour + profile.browsers_per_seat_hour) * self._seats
        peak = per_hour * profile.max_weight / 3600.0
        t = after
        while True:
            t = hours.next_admission(t) + self._rng.expovariate(peak)
            if not hours.admits(t):
                continue
            if self._rng.random() * profile.max_weight < profile.weight(hours.local(t)):
                break
        self._push(self._crowd, t, _Ev.ARRIVE)
        self._arrival_pending = True

    def _arrive(self, out: list[Report]) -> None:
        self._arrival_pending = False
        now, rng, profile = self._t, self._rng, self._profile
        self._schedule_arrival(now)
        if not self._hours.admits(now):  # shifted into closed hours by a pause
            return
        visitor = self._next_visitor
        self._next_visitor += 1
        self._passage(entering=True, out=out)
        total = profile.students_per_seat_hour + profile.browsers_per_seat_hour
        student = rng.random() * total < profile.students_per_seat_hour
        if student:
            stay = rng.uniform(*profile.student_stay_h) * 3600.0
        else:
            stay = rng.uniform(*profile.browser_stay_min) * 60.0
        closing = self._hours.closing_time(now) - rng.uniform(0.0, 900.0)
        leave = min(now + stay, closing)
        self._visitors[visitor] = None
        if student and self._lunch_away > 0:
            leave = self._lunch(visitor, now, leave, closing)
        if student:
            self._push(self._crowd, now + rng.uniform(20.0, 90.0), _Ev.SIT, visitor)
            self._push(self._crowd, leave - rng.uniform(20.0, 90.0), _Ev.STAND, visitor)
        self._push(self._crowd, leave, _Ev.LEAVE, visitor)

    def _lunch(self, visitor: int, now: float, leave: float, closing: float) -> float:
        """Maybe a lunch break with the books left on the seat; the (later) leaving time."""
        rng = self._lunch_rng
        noon = datetime.combine(self._hours.local(now).date(), time(11, 30), self._hours.tz)
        away = noon.timestamp() + rng.uniform(0.0, 1800.0)
        back = away + rng.uniform(40.0, 100.0) * 60.0
        if not (now + 90.0 < away < leave - 600.0 and back < closing - 900.0):
            return leave
        if rng.random() >= self._lunch_away:
            return leave
        self._push(self._crowd, away, _Ev.AWAY, visitor)
        self._push(self._crowd, back, _Ev.BACK, visitor)
        return min(max(leave, back + rng.uniform(900.0, 3600.0)), closing)

    def _sit(self, visitor: int, out: list[Report]) -> None:
        if visitor not in self._visitors:
            return
        free = [i for i, owner in enumerate(self._owner) if owner is None]
        if not free:
            return  # the house is full: this student browses and leaves at the planned time
        seat = self._rng.choice(free)
        self._owner[seat] = visitor
        self._visitors[visitor] = seat
        self._here[seat] = True
        self._report_seat(seat, out)

    def _stand(self, visitor: int, out: list[Report]) -> None:
        seat = self._visitors.get(visitor)
        if seat is None:
            return
        self._visitors[visitor] = None
        if self._owner[seat] == visitor:  # not taken over by a manual change
            self._owner[seat] = None
            self._here[seat] = False
            self._report_seat(seat, out)

    def _passage(self, *, entering: bool, out: list[Report]) -> None:
        if self._door:
            if not self._door_open:
                self._door_open = True
                out.append(Door(_DOOR, True))
            self._door_close_at = self._t + self._door_hold
            self._push(self._board, self._door_close_at, _Ev.DOOR_CLOSE)
        counts = self._counts
        if entering:
            counts.in_total = (counts.in_total + 1) & _U32
            counts.inside += 1
        else:
            counts.out_total = (counts.out_total + 1) & _U32
            counts.inside = max(0, counts.inside - 1)
        if self._counter:
            out.append(People(_COUNTER, counts.in_total, counts.out_total))

    # -- the board's sensors and timers ------------------------------------------

    def _uptime(self) -> int:
        return min(int(self._t - self._boot_t), _U32)

    def _schedule_heartbeat(self) -> None:
        self._push(self._board, self._t + self._interval, _Ev.HEARTBEAT, self._hb_token)

    def _heartbeat(self, out: list[Report]) -> None:
        supply = self.supply_mv()
        sensor = self.supply_sensor
        if sensor is not None:  # with seats only, the heartbeat's supply_mv alone tells
            self._check_supply(sensor, supply, out)
        out.append(Heartbeat(self._uptime(), max(0, min(supply, 0xFFFF))))
        if self._counter:  # the totals again: a lost PEOPLE frame is repaired within a period
            counts = self._counts
            out.append(People(_COUNTER, counts.in_total, counts.out_total))

    def _check_supply(self, sensor: SensorRef, supply: int, out: list[Report]) -> None:
        curve = self._supply
        if not self._supply_low and supply < curve.low_mv:
            self._supply_low = True
            out.append(Fault(sensor, FaultCode.SUPPLY_LOW, True))
        elif self._supply_low and supply > curve.low_mv + curve.hysteresis_mv:
            self._supply_low = False
            out.append(Fault(sensor, FaultCode.SUPPLY_LOW, False))

    def _report_seat(self, seat: int, out: list[Report]) -> None:
        reading = seat in self._stuck or self._owner[seat] is not None
        changed = self._reported[seat] != reading
        here = self._here[seat]
        # SEAT_PRESENCE first: the SEAT after it then carries the new presence at the gateway.
        if seat < self._presence_seats and (changed or self._reported_here[seat] != here):
            self._reported_here[seat] = here
            out.append(SeatPresence(seat + 1, reading, here))
        if changed:
            self._reported[seat] = reading
            out.append(Seat(seat + 1, reading))

    def _report_stuck(self, seat: int, out: list[Report]) -> None:
        stuck = self._stuck.get(seat)
        if stuck is None or not stuck.report or stuck.reported or self._t < stuck.due:
            return
        stuck.reported = True
        out.append(Fault(SensorRef(SensorKind.SEAT, seat + 1), FaultCode.STUCK, True))

    def _arm_stuck_report(self, seat: int, stuck: _Stuck) -> None:
        stuck.due = self._t + self._stuck_after
        if stuck.report:
            self._push(self._board, stuck.due, _Ev.STUCK_REPORT, seat)

    # -- what a test, the CLI or the board can do -----------------------------------

    def _seat_index(self, seat: int) -> int:
        if not 1 <= seat <= self._seats:
            raise NoSuchSensorError(f"seat {seat} is outside 1..{self._seats}")
        return seat - 1

    def set_seat(self, seat: int, occupied: bool) -> list[Report]:
        """Someone sits down on (or leaves) seat ``seat`` (1-based) by hand, now."""
        index = self._seat_index(seat)
        self._owner[index] = _MANUAL if occupied else None
        self._here[index] = occupied
        out: list[Report] = []
        self._report_seat(index, out)
        return out

    def set_presence(self, seat: int, present: bool) -> list[Report]:
        """Someone is at seat ``seat`` (1-based), or nobody is, now, whatever is on the seat
        (a student steps away and leaves the books: ``set_presence(seat, False)``).

        Raises :class:`NoSuchSensorError` for a seat without a presence channel.
        """
        index = self._seat_index(seat)
        if index >= self._presence_seats:
            raise NoSuchSensorError(
                f"seat {seat} has no presence channel (presence_seats={self._presence_seats})"
            )
        self._here[index] = present
        out: list[Report] = []
        self._report_seat(index, out)
        return out

    def count_people(self, *, entered: int = 0, left: int = 0) -> list[Report]:
        """People pass the entrance by hand: a People report (and door) per passage.

        Raises :class:`NoSuchSensorError` on a board without a people counter.
        """
        if not self._counter:
            raise NoSuchSensorError(
                "this board has no people counter (counter=False): count_people needs one"
            )
        if entered < 0 or left < 0:
            raise ValueError("passages cannot be negative")
        out: list[Report] = []
        for _ in range(entered):
            self._passage(entering=True, out=out)
        for _ in range(left):
            self._passage(entering=False, out=out)
        return out

    def set_stuck(self, seat: int, stuck: bool = True, *, report: bool = True) -> list[Report]:
        """Seat ``seat``'s sensor sticks at "occupied"; with ``report`` the board notices later."""
        index = self._seat_index(seat)
        out: list[Report] = []
        if stuck:
            if index not in self._stuck:
                entry = self._stuck[index] = _Stuck(report=report, due=self._t)
                self._arm_stuck_report(index, entry)
        else:
            entry_or_none = self._stuck.pop(index, None)
            if entry_or_none is not None and entry_or_none.reported:
                out.append(Fault(SensorRef(SensorKind.SEAT, seat), FaultCode.STUCK, False))
        self._report_seat(index, out)
        return out

    def set_supply(self, supply_mv: int | None) -> None:
        """Hold the supply at ``supply_mv`` (a failing adapter); ``None`` resumes the curve."""
        self._supply_override = supply_mv

    def set_report_interval(self, seconds: int) -> None:
        self._interval = seconds
        self._hb_token += 1
        self._schedule_heartbeat()

    def pause(self) -> None:
        """Freeze the crowd: nobody arrives, sits or leaves. Board timers keep running."""
        if self._paused_at is None:
            self._paused_at = self._t

    def resume(self) -> None:
        """Unfreeze the crowd; its pending events move later by the time it was frozen."""
        if self._paused_at is None:
            return
        delta = self._t - self._paused_at
        self._paused_at = None
        # Adding one constant to every key keeps the heap a heap.
        self._crowd = [(t + delta, order, kind, arg) for t, order, kind, arg in self._crowd]
        if not self._arrival_pending:
            self._schedule_arrival(self._t)

    def reboot(self) -> None:
        """Power-cycle the board: uptime and counter totals restart at zero; the house goes on."""
        self._boot_t = self._t
        self._counts = _Counts(inside=self._counts.inside)
        self._supply_low = False
        self._hb_token += 1
        self._schedule_heartbeat()
        for index, entry in self._stuck.items():
            entry.reported = False
            self._arm_stuck_report(index, entry)

    def snapshot(self) -> list[Report]:
        """What a board reports after HELLO: every seat, the door, a heartbeat, the counter.

        (The door and the counter only if the board has them.)
        """
        out: list[Report] = []
        for i, occupied in enumerate(self._reported):
            if i < self._presence_seats:
                self._reported_here[i] = self._here[i]
                out.append(SeatPresence(i + 1, occupied, self._here[i]))
            out.append(Seat(i + 1, occupied))
        if self._door:
            out.append(Door(_DOOR, self._door_open))
        self._heartbeat(out)
        return out
