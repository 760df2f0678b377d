"""The simulated book house: deterministic, plausible over days, and its sensors' rules."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest

from firmware_bridge.emulator import SHANGHAI, SUPPLY_SENSOR, BookHouseModel, SupplyCurve
from firmware_bridge.errors import NoSuchSensorError
from firmware_bridge.messages import (
    Door,
    Fault,
    FaultCode,
    Heartbeat,
    People,
    Report,
    Seat,
    SensorKind,
    SensorRef,
)

MONDAY = datetime(2024, 6, 3, 0, 0, tzinfo=SHANGHAI)
SATURDAY = datetime(2024, 6, 8, 0, 0, tzinfo=SHANGHAI)
HOUR = timedelta(hours=1)


def _run(model: BookHouseModel, start: datetime, hours: int, step: timedelta) -> list[Report]:
    out: list[Report] = []
    t, end = start, start + hours * HOUR
    while t < end:
        t = min(t + step, end)
        out += model.step(t)
    return out


def test_same_seed_and_start_give_the_same_reports_however_time_is_sliced() -> None:
    coarse = BookHouseModel(seats=24, start=MONDAY, seed=7)
    fine = BookHouseModel(seats=24, start=MONDAY, seed=7)

    a = _run(coarse, MONDAY, 48, timedelta(hours=3))
    b = _run(fine, MONDAY, 48, timedelta(minutes=7))

    assert a == b
    assert coarse.state() == fine.state()
    assert any(isinstance(r, Seat) for r in a)


def test_another_seed_gives_another_day() -> None:
    a = _run(BookHouseModel(seats=24, start=MONDAY, seed=1), MONDAY, 24, HOUR)
    b = _run(BookHouseModel(seats=24, start=MONDAY, seed=2), MONDAY, 24, HOUR)

    assert a != b


def test_no_seat_is_occupied_at_night_and_some_are_in_the_afternoon() -> None:
    model = BookHouseModel(seats=24, start=MONDAY, seed=3)

    for day in range(7):
        midnight = MONDAY + timedelta(days=day)
        model.step(midnight + timedelta(hours=3))
        night = model.state()
        model.step(midnight + timedelta(hours=15))
        afternoon = model.state()

        assert not any(night.seats), night.now
        assert night.inside == 0
        assert 1 <= sum(afternoon.seats) <= 24, afternoon.now


def test_counter_totals_never_go_backwards_and_in_is_at_least_out() -> None:
    model = BookHouseModel(seats=24, start=MONDAY, seed=4)
    reports = _run(model, MONDAY, 7 * 24, HOUR)
    people = [r for r in reports if isinstance(r, People)]

    assert people
    for before, after in itertools.pairwise(people):
        assert after.in_total >= before.in_total
        assert after.out_total >= before.out_total
    assert all(p.in_total >= p.out_total >= 0 for p in people)
    assert people[-1].in_total == people[-1].out_total > 100  # a week of visitors, all gone home


def test_every_seated_visitor_came_through_the_entrance() -> None:
    model = BookHouseModel(seats=12, start=SATURDAY, seed=5)

    for t in range(1, 2 * 24 * 12 + 1):  # every 5 minutes over a busy weekend
        model.step(SATURDAY + t * timedelta(minutes=5))
        state = model.state()
        assert state.inside >= 0
        assert state.in_total - state.out_total == state.inside
        assert sum(state.seated) <= state.inside


def test_nobody_enters_between_closing_and_opening() -> None:
    model = BookHouseModel(seats=24, start=MONDAY, seed=6)
    model.step(MONDAY + timedelta(hours=21))
    closed = model.state()
    model.step(MONDAY + timedelta(days=1, hours=8, minutes=29))
    before_opening = model.state()

    assert closed.inside == 0
    assert (before_opening.in_total, before_opening.out_total) == (
        closed.in_total,
        closed.out_total,
    )


def test_weekends_are_busier_than_weekdays_and_afternoons_than_mornings() -> None:
    model = BookHouseModel(seats=24, start=MONDAY, seed=8)
    seated: dict[tuple[int, int], int] = {}
    for day in range(14):
        for hour in range(24):
            model.step(MONDAY + timedelta(days=day, hours=hour))
            seated[(day, hour)] = sum(model.state().seated)

    def mean(days: list[int], hours: range) -> float:
        values = [seated[(d, h)] for d in days for h in hours]
        return sum(values) / len(values)

    weekdays = [d for d in range(14) if d % 7 < 5]
    weekends = [d for d in range(14) if d % 7 >= 5]
    afternoon = range(15, 20)
    assert mean(weekends, afternoon) > mean(weekdays, afternoon)
    assert mean(weekdays, afternoon) > mean(weekdays, range(9, 11))


def test_heartbeat_and_counter_totals_every_report_interval() -> None:
    model = BookHouseModel(seats=4, start=MONDAY, report_interval_s=60, simulate=False)
    model.set_supply(4000)

    reports = model.step(MONDAY + timedelta(minutes=3))

    assert reports == [
        Heartbeat(60, 4000),
        People(1, 0, 0),
        Heartbeat(120, 4000),
        People(1, 0, 0),
        Heartbeat(180, 4000),
        People(1, 0, 0),
    ]


def test_a_new_report_interval_takes_effect_at_once() -> None:
    model = BookHouseModel(seats=4, start=MONDAY, report_interval_s=60, simulate=False)
    model.step(MONDAY + timedelta(seconds=30))

    model.set_report_interval(10)
    reports = model.step(MONDAY + timedelta(seconds=60))

    assert [r.uptime_s for r in reports if isinstance(r, Heartbeat)] == [40, 50, 60]


def test_door_opens_when_people_pass_and_closes_after_the_hold_time() -> None:
    model = BookHouseModel(seats=4, start=MONDAY, simulate=False, door_hold=timedelta(seconds=6))

    passed = model.count_people(entered=2)
    still_open = model.step(MONDAY + timedelta(seconds=5))
    closed = model.step(MONDAY + timedelta(seconds=7))

    assert passed == [Door(1, True), People(1, 1, 0), People(1, 2, 0)]
    assert still_open == []
    assert closed == [Door(1, False)]


def test_manual_seat_change_is_reported_once() -> None:
    model = BookHouseModel(seats=4, start=MONDAY, simulate=False)

    assert model.set_seat(2, True) == [Seat(2, True)]
    assert model.set_seat(2, True) == []
    assert model.set_seat(2, False) == [Seat(2, False)]


def test_paused_crowd_sends_only_heartbeats() -> None:
    model = BookHouseModel(seats=24, start=MONDAY + timedelta(hours=14), seed=9)
    model.pause()

    reports = model.step(MONDAY + timedelta(hours=18))

    assert {type(r) for r in reports} == {Heartbeat, People}
    assert model.state().in_total == 0
    model.resume()
    assert any(isinstance(r, Seat) for r in model.step(MONDAY + timedelta(hours=20)))


def test_stuck_seat_reads_occupied_and_faults_after_the_detection_delay() -> None:
    model = BookHouseModel(
        seats=4, start=MONDAY, simulate=False, stuck_report_after=timedelta(minutes=30)
    )
    ref = SensorRef(SensorKind.SEAT, 3)

    assert model.set_stuck(3) == [Seat(3, True)]
    assert model.set_seat(3, False) == []
    early = model.step(MONDAY + timedelta(minutes=29))
    late = model.step(MONDAY + timedelta(minutes=31))
    cleared = model.set_stuck(3, False)

    assert not any(isinstance(r, Fault) for r in early)
    assert Fault(ref, FaultCode.STUCK, True) in late
    assert cleared == [Fault(ref, FaultCode.STUCK, False), Seat(3, False)]


def test_silently_stuck_seat_never_raises_a_fault() -> None:
    model = BookHouseModel(seats=4, start=MONDAY, simulate=False)

    model.set_stuck(1, report=False)
    reports = model.step(MONDAY + timedelta(hours=5))

    assert model.state().seats[0] is True
    assert not any(isinstance(r, Fault) for r in reports)


def test_supply_drains_over_days_and_raises_supply_low_once() -> None:
    curve = SupplyCurve(full_mv=4100, empty_mv=3300, drain=timedelta(days=10), low_mv=3400)
    model = BookHouseModel(
        seats=2, start=MONDAY, simulate=False, report_interval_s=3600, supply=curve
    )

    reports = model.step(MONDAY + timedelta(days=10))
    supplies = [r.supply_mv for r in reports if isinstance(r, Heartbeat)]
    faults = [r for r in reports if isinstance(r, Fault)]

    assert 4090 <= supplies[0] <= 4100
    assert 3300 <= supplies[-1] <= 3310
    assert faults == [Fault(SUPPLY_SENSOR, FaultCode.SUPPLY_LOW, True)]


def test_held_low_supply_raises_and_recovery_clears_the_fault() -> None:
    model = BookHouseModel(seats=2, start=MONDAY, simulate=False, report_interval_s=60)

    model.set_supply(3250)
    low = model.step(MONDAY + timedelta(seconds=60))
    model.set_supply(None)
    recovered = model.step(MONDAY + timedelta(seconds=120))

    assert low == [
        Fault(SUPPLY_SENSOR, FaultCode.SUPPLY_LOW, True),
        Heartbeat(60, 3250),
        People(1, 0, 0),
    ]
    assert recovered[0] == Fault(SUPPLY_SENSOR, FaultCode.SUPPLY_LOW, False)


def test_reboot_restarts_uptime_and_totals_but_people_stay_inside() -> None:
    model = BookHouseModel(seats=2, start=MONDAY, simulate=False, report_interval_s=60)
    model.count_people(entered=3, left=1)
    model.step(MONDAY + timedelta(seconds=90))

    model.reboot()
    after = model.step(MONDAY + timedelta(seconds=150))
    state = model.state()

    assert (state.in_total, state.out_total, state.inside, state.uptime_s) == (0, 0, 2, 60)
    assert Heartbeat(60, state.supply_mv) in after


# A board without the entrance's sensors (seats only, as on all but one board of a big room)


def test_a_board_with_seats_only_sees_the_same_crowd_and_reports_seats_and_heartbeats() -> None:
    full = BookHouseModel(seats=24, start=SATURDAY, seed=11)
    seats_only = BookHouseModel(seats=24, start=SATURDAY, seed=11, counter=False, door=False)

    everything = _run(full, SATURDAY, 24, HOUR)
    reports = _run(seats_only, SATURDAY, 24, HOUR)

    assert reports == [r for r in everything if not isinstance(r, People | Door)]
    assert {type(r) for r in reports} == {Seat, Heartbeat}
    assert seats_only.state().seats == full.state().seats
    assert seats_only.state().door_open is False


def test_a_board_with_seats_only_sends_no_counter_totals_with_its_heartbeat() -> None:
    model = BookHouseModel(
        seats=4, start=MONDAY, report_interval_s=60, simulate=False, counter=False, door=False
    )
    model.set_supply(4000)

    assert model.step(MONDAY + timedelta(minutes=2)) == [Heartbeat(60, 4000), Heartbeat(120, 4000)]
    assert model.snapshot() == [
        Seat(1, False),
        Seat(2, False),
        Seat(3, False),
        Seat(4, False),
        Heartbeat(120, 4000),
    ]


def test_counting_people_on_a_board_without_a_counter_is_refused() -> None:
    model = BookHouseModel(seats=4, start=MONDAY, simulate=False, counter=False)

    with pytest.raises(NoSuchSensorError, match="no people counter"):
        model.count_people(entered=1)


def test_a_board_without_a_door_counts_people_without_door_reports() -> None:
    model = BookHouseModel(seats=4, start=MONDAY, simulate=False, door=False)

    assert model.count_people(entered=2, left=1) == [
        People(1, 1, 0),
        People(1, 2, 0),
        People(1, 2, 1),
    ]
    assert model.step(MONDAY + timedelta(seconds=10)) == []


def test_low_supply_is_raised_on_the_counter_else_the_door_and_never_on_a_seat() -> None:
    def low(*, counter: bool = True, door: bool = True) -> list[Report]:
        model = BookHouseModel(
            seats=2, start=MONDAY, simulate=False, report_interval_s=60, counter=counter, door=door
        )
        model.set_supply(3250)
        return model.step(MONDAY + timedelta(seconds=60))

    door = SensorRef(SensorKind.DOOR, 1)
    assert low(door=False)[0] == Fault(SUPPLY_SENSOR, FaultCode.SUPPLY_LOW, True)
    assert low(counter=False)[0] == Fault(door, FaultCode.SUPPLY_LOW, True)
    # Seats only: no sensor to raise it on; the heartbeat's supply_mv still says it.
    assert low(counter=False, door=False) == [Heartbeat(60, 3250)]
