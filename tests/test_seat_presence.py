"""Seats with a presence channel, hop by hop: the board's SEAT_PRESENCE (emulator), the gateway's
seat readings, the strict contract, InfluxDB points, and the seat states of central/seat_state.py
(free, occupied, away 暂离, held 占座 with the meal-window grace) as the live state shows them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from central.consumer.points import reading_line, reading_point
from central.facts import Value
from central.influx.line_protocol import encode_line
from central.live.state import LiveState, Timeouts
from central.seat_state import SeatHold, seat_use
from central.sites import SiteDirectory
from edge.normalise import FrameNormaliser
from firmware_bridge.emulator import BookHouseModel
from firmware_bridge.errors import NoSuchSensorError
from firmware_bridge.messages import Frame, Hello, Seat, SeatPresence
from qihe.contract import GatewayStatus, PayloadError, SeatReading, parse_reading

SHANGHAI = ZoneInfo("Asia/Shanghai")
SITE = "shancheng-xinyuan2"
IDS = {"site": SITE, "gateway": "gw1", "device": "xinyuan2-a"}


def local(hour: int, minute: int = 0) -> datetime:
    """2026-11-30 (a Monday) at ``hour:minute`` in Hebi, in UTC."""
    return datetime(2026, 11, 30, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


# -- the emulated board ------------------------------------------------------------------


def scripted(presence_seats: int = 2, **options: object) -> BookHouseModel:
    return BookHouseModel(
        seats=4,
        start=local(9),
        simulate=False,
        presence_seats=presence_seats,
        **options,  # type: ignore[arg-type]
    )


def test_a_board_reports_a_seat_with_presence_just_before_its_seat_at_power_up() -> None:
    model = scripted()

    seats = [r for r in model.snapshot() if isinstance(r, Seat | SeatPresence)]

    assert seats == [
        SeatPresence(1, False, False), Seat(1, False),
        SeatPresence(2, False, False), Seat(2, False),
        Seat(3, False), Seat(4, False),
    ]  # fmt: skip


def test_sitting_down_sends_seat_presence_then_seat_and_stepping_away_only_presence() -> None:
    model = scripted()

    sat = model.set_seat(1, True)
    away = model.set_presence(1, False)
    back = model.set_presence(1, True)
    left = model.set_seat(1, False)

    assert sat == [SeatPresence(1, True, True), Seat(1, True)]
    assert away == [SeatPresence(1, True, False)]
    assert back == [SeatPresence(1, True, True)]
    assert left == [SeatPresence(1, False, False), Seat(1, False)]


def test_a_seat_without_presence_channel_sends_seat_alone_and_refuses_presence() -> None:
    model = scripted()

    assert model.set_seat(3, True) == [Seat(3, True)]
    with pytest.raises(NoSuchSensorError, match="seat 3 has no presence channel"):
        model.set_presence(3, False)


def test_students_leave_their_books_at_lunch_for_40_to_100_minutes() -> None:
    model = BookHouseModel(seats=24, start=local(8), seed=7, presence_seats=24, lunch_away=1.0)

    reports = []
    while model.now < local(15):
        step_to = model.now + timedelta(minutes=1)
        reports.extend((step_to, r) for r in model.step(step_to))

    away_at: dict[int, datetime] = {}
    breaks = []
    for at, report in reports:
        if isinstance(report, SeatPresence) and report.occupied and not report.present:
            away_at[report.seat] = at
        elif isinstance(report, SeatPresence) and report.seat in away_at:
            breaks.append((away_at.pop(report.seat), at))
    assert len(breaks) >= 3, "several students went for lunch"
    for left, back in breaks:
        assert local(11, 30) <= left <= local(12, 1)
        assert timedelta(minutes=40) <= back - left <= timedelta(minutes=101)


def test_the_lunch_breaks_do_not_change_the_crowd() -> None:
    def seated(lunch: float) -> list[Seat]:
        model = BookHouseModel(seats=8, start=local(8), seed=3, lunch_away=lunch)
        return [r for r in model.step(local(11)) if isinstance(r, Seat)]

    assert seated(0.0) == seated(1.0)


# -- the gateway ---------------------------------------------------------------------------


def normaliser() -> FrameNormaliser:
    return FrameNormaliser(SITE, "gw1", "xinyuan2-a", clock=lambda: local(10))


def test_the_gateway_publishes_both_channels_and_carries_presence_on_later_seat_frames() -> None:
    n = normaliser()

    plain = n.on_frame(Frame(1, Seat(3, True)))
    both = n.on_frame(Frame(2, SeatPresence(3, True, False)))
    later = n.on_frame(Frame(3, Seat(3, False)))

    assert isinstance(plain, SeatReading) and plain.presence is None
    assert isinstance(both, SeatReading) and (both.occupied, both.presence) == (True, False)
    assert isinstance(later, SeatReading) and (later.occupied, later.presence) == (False, False)


def test_a_new_boot_forgets_the_presence_until_the_board_says_it_again() -> None:
    n = normaliser()
    n.on_frame(Frame(0, Hello("xinyuan2-a", (1, 1, 0), 60, boot=1)))
    n.on_frame(Frame(1, SeatPresence(3, True, True)))

    n.on_frame(Frame(0, Hello("xinyuan2-a", (1, 1, 0), 60, boot=99)))
    after = n.on_frame(Frame(1, Seat(3, True)))

    assert isinstance(after, SeatReading) and after.presence is None


# -- the contract and InfluxDB -------------------------------------------------------------

WIRE = {
    "schema": 1, "kind": "seat", "site": SITE, "gateway": "gw1", "device": "xinyuan2-a",
    "sensor": "xinyuan2-a.3", "ts": "2026-11-30T03:41:09Z", "occupied": True,
}  # fmt: skip


def test_the_contract_takes_a_seat_reading_with_and_without_presence() -> None:
    assert parse_reading(json.dumps(WIRE)).presence is None  # type: ignore[union-attr]
    assert parse_reading(json.dumps({**WIRE, "presence": False})).presence is False  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("presence", "why"),
    [
        (None, "seat.presence: Input should be left out, not null"),
        ("false", "seat.presence: Input should be a valid boolean (got a string)"),
        (0, "seat.presence: Input should be a valid boolean (got an integer)"),
    ],
)
def test_the_contract_refuses_a_presence_that_is_not_a_boolean(presence: object, why: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_reading(json.dumps({**WIRE, "presence": presence}))
    assert why in str(caught.value)


def test_a_misspelt_presence_field_is_refused() -> None:
    with pytest.raises(PayloadError, match="present: Extra inputs are not permitted"):
        parse_reading(json.dumps({**WIRE, "present": True}))


def test_presence_is_an_integer_field_of_the_seat_point_only_when_the_seat_has_one() -> None:
    base = SeatReading(sensor="xinyuan2-a.3", occupied=True, ts=local(10), seq=7, **IDS)
    away = base.model_copy(update={"presence": False})

    assert "presence" not in reading_line(base)
    assert " occupied=1i,presence=0i,seq=7i " in reading_line(away)
    for reading in (base, away):  # the fast path writes what the general one does
        assert reading_line(reading) == encode_line(reading_point(reading))


# -- the seat states -----------------------------------------------------------------------

HOLD = SeatHold()


def value(on: bool, since: datetime) -> Value:
    return Value(on, since, "xinyuan2-a", since)


@pytest.mark.parametrize(
    ("left", "held"),
    [
        ((10, 0), (10, 30)),  # outside the meal windows: 30 minutes
        ((10, 59), (11, 29)),  # the grace in force when the seat became away counts
        ((11, 0), (12, 30)),  # lunch: 90 minutes
        ((12, 40), (14, 10)),  # still lunch when it became away: 90 minutes, past 13:00
        ((13, 0), (13, 30)),  # the window's end is not in it
        ((17, 30), (19, 0)),  # dinner
        ((18, 30), (19, 0)),
    ],
)
def test_an_away_seat_is_held_after_the_grace_in_force_when_it_became_away(
    left: tuple[int, int], held: tuple[int, int]
) -> None:
    since = local(*left)
    away = seat_use(value(True, local(8)), value(False, since), since, HOLD, SHANGHAI)
    assert (away.use, away.held_at) == ("away", local(*held))

    at_hold = seat_use(value(True, local(8)), value(False, since), local(*held), HOLD, SHANGHAI)
    assert (at_hold.use, at_hold.since, at_hold.away_since) == ("held", local(*held), since)


def test_presence_alone_does_not_take_a_seat_and_a_seat_without_it_is_occupied() -> None:
    assert (
        seat_use(value(False, local(9)), value(True, local(9)), local(10), HOLD, SHANGHAI).use
        == "free"
    )
    assert seat_use(value(True, local(9)), None, local(23), HOLD, SHANGHAI).use == "occupied"
    assert (
        seat_use(value(True, local(9)), value(True, local(9)), local(23), HOLD, SHANGHAI).use
        == "occupied"
    )


def test_a_seat_taken_after_its_last_person_left_is_away_from_when_it_was_taken() -> None:
    use = seat_use(value(True, local(10, 5)), value(False, local(9)), local(10, 10), HOLD, SHANGHAI)
    assert (use.use, use.away_since) == ("away", local(10, 5))


def test_a_site_sets_its_own_grace_and_meal_windows() -> None:
    directory = SiteDirectory.model_validate(
        {
            "sites": [
                {
                    "id": SITE,
                    "name": "淇河书屋·馨苑二区站",
                    "seat_hold": {
                        "grace": "PT20M",
                        "meal_grace": 3600,
                        "meal_windows": ["11:30-13:30"],
                    },
                }
            ]
        }
    )
    hold = directory.sites[0].seat_hold

    assert hold.held_at(local(11, 0), SHANGHAI) == local(11, 20)
    assert hold.held_at(local(13, 0), SHANGHAI) == local(14, 0)


@pytest.mark.parametrize(
    ("windows", "why"),
    [
        (["13:00-11:00"], "must run forward within one day"),
        (["11-13"], "is not HH:MM-HH:MM"),
        (["11:00-24:30"], "must run forward within one day"),
    ],
)
def test_a_bad_meal_window_is_refused_with_the_reason(windows: list[str], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        SeatHold.model_validate({"meal_windows": windows})


def test_a_zero_grace_is_refused() -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        SeatHold.model_validate({"grace": 0})


# -- the live state ------------------------------------------------------------------------

DIRECTORY = SiteDirectory.model_validate(
    {
        "sites": [
            {
                "id": SITE,
                "name": "淇河书屋·馨苑二区站",
                "opening_hours": {"daily": "08:30-21:30"},
                "seat_grids": [{"gateway": "gw1", "device": "xinyuan2-a", "count": 3, "cols": 3}],
            }
        ]
    }
)


#: Nobody falls silent in these tests: only the hold changes a seat with the time.
QUIET = Timeouts(gateway_silent_after=timedelta(hours=12), device_silent_intervals=1000)


def reading(n: int, occupied: bool, presence: bool | None, at: datetime) -> SeatReading:
    return SeatReading(sensor=f"xinyuan2-a.{n}", occupied=occupied, presence=presence, ts=at, **IDS)


def uses(state: LiveState, now: datetime) -> dict[str, tuple[str, str | None]]:
    detail = state.detail(SITE, now)
    assert detail is not None
    return {s.id: (s.state, s.use) for s in detail.seats}


def test_the_live_state_turns_an_away_seat_held_by_the_time_alone() -> None:
    state = LiveState(DIRECTORY, started_at=local(11), timeouts=QUIET)
    online = GatewayStatus(site=SITE, gateway="gw1", state="online", session=1, ts=local(11))
    state.apply(online, local(11), retained=False)
    state.apply(reading(1, True, True, local(11)), local(11), retained=False)
    state.apply(reading(2, True, None, local(11)), local(11), retained=False)
    state.apply(reading(1, True, False, local(12)), local(12), retained=False)
    state.refresh(local(12))

    assert uses(state, local(13, 29)) == {
        "xinyuan2-a.1": ("occupied", "away"),
        "xinyuan2-a.2": ("occupied", "occupied"),
        "xinyuan2-a.3": ("unknown", None),
    }
    events = state.refresh(local(13, 30), timed=True)

    held = [json.loads(e.data)["seat"] for e in events if e.kind == "seat"]
    assert [(s["id"], s["use"], s["held_at"]) for s in held] == [
        ("xinyuan2-a.1", "held", "2026-11-30T05:30:00Z")
    ]
    summary = state.sites(local(13, 30)).sites[0]
    assert (summary.seats.occupied, summary.seats.away, summary.seats.held) == (2, 0, 1)
    public = state.public(local(13, 30)).sites[0]
    assert (public.free_seats, public.likely_free) == (0, 1)


def test_a_held_seat_is_free_again_when_the_books_are_taken() -> None:
    state = LiveState(DIRECTORY, started_at=local(9), timeouts=QUIET)
    state.apply(
        GatewayStatus(site=SITE, gateway="gw1", state="online", session=1, ts=local(9)),
        local(9),
        retained=False,
    )
    state.apply(reading(1, True, False, local(9)), local(9), retained=False)
    state.refresh(local(9, 31), timed=True)
    assert uses(state, local(9, 31))["xinyuan2-a.1"] == ("occupied", "held")

    state.apply(reading(1, False, False, local(9, 32)), local(9, 32), retained=False)

    assert uses(state, local(9, 32))["xinyuan2-a.1"] == ("free", "free")
    assert state.sites(local(9, 32)).sites[0].seats.held == 0
