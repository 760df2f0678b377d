"""The live state: what each seat, door and site shows, and when it must stop trusting a value."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from central.live.events import LiveEvent
from central.live.state import LiveState, Timeouts
from central.live.views import SiteDetail
from central.sites import SiteDirectory
from qihe.contract import (
    DeviceReading,
    DoorReading,
    FaultReading,
    GatewayStatus,
    HeartbeatReading,
    LinkReading,
    PeopleReading,
    Reading,
    SeatReading,
)

# 2026-11-30 is a Monday; 02:00 UTC is 10:00 in Hebi (Asia/Shanghai).
T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
SITE = "shancheng-xinyuan2"
IDS = {"site": SITE, "gateway": "gw1", "device": "xinyuan2-a"}

DIRECTORY = SiteDirectory.model_validate(
    {
        "sites": [
            {
                "id": SITE,
                "name": "淇河书屋·馨苑二区站",
                "name_en": "Qihe Book House, Xinyuan No. 2",
                "district": "山城区",
                "opening_hours": {"mon-fri": "08:30-12:00, 14:00-21:00", "sun": "closed"},
                "seat_grids": [
                    {"gateway": "gw1", "device": "xinyuan2-a", "count": 4, "cols": 2},
                ],
                "doors": [{"gateway": "gw1", "sensor": "xinyuan2-a.1", "label": "入口"}],
            },
            {"id": "heshan-wenti", "name": "鹤山区文体中心", "public": False},
        ]
    }
)


def live(now: datetime = T0, **timeouts: object) -> LiveState:
    return LiveState(DIRECTORY, started_at=now, timeouts=Timeouts(**timeouts))  # type: ignore[arg-type]


def online(at: datetime = T0, session: int = 1) -> GatewayStatus:
    return GatewayStatus(site=SITE, gateway="gw1", state="online", session=session, ts=at)


def offline(at: datetime, session: int = 1) -> GatewayStatus:
    return GatewayStatus(site=SITE, gateway="gw1", state="offline", session=session, ts=at)


def seat(n: int, occupied: bool, at: datetime = T0) -> SeatReading:
    return SeatReading(sensor=f"xinyuan2-a.{n}", occupied=occupied, ts=at, **IDS)


def link(at: datetime) -> LinkReading:
    counters = dict(frames=1, crc_errors=0, malformed=0, lost=0, duplicates=0, reconnects=0)
    return LinkReading(sensor="serial0", ts=at, **counters, **IDS)


def seats_of(state: LiveState, now: datetime) -> dict[str, tuple[str, str | None]]:
    detail = state.detail(SITE, now)
    assert detail is not None
    return {s.id: (s.state, s.reason) for s in detail.seats}


def test_retained_state_is_shown_at_once_after_a_start() -> None:
    state = live()
    state.apply(online(), T0, retained=True)
    state.apply(seat(1, True), T0, retained=True)
    state.apply(seat(2, False), T0, retained=True)

    assert seats_of(state, T0) == {
        "xinyuan2-a.1": ("occupied", None),
        "xinyuan2-a.2": ("free", None),
        "xinyuan2-a.3": ("unknown", "no_data"),
        "xinyuan2-a.4": ("unknown", "no_data"),
    }
    summary = state.sites(T0).sites[0]
    assert summary.seats.model_dump() == {
        "total": 4,
        "free": 1,
        "occupied": 1,
        "unknown": 2,
        "fault": 0,
        "away": 0,
        "held": 0,
    }
    assert summary.occupancy == 0.5  # of the seats whose state is known
    assert summary.online is True


def test_a_seat_change_sends_one_seat_event_and_the_new_site_summary() -> None:
    state = live()
    state.apply(online(), T0, retained=False)
    state.apply(seat(1, False), T0, retained=False)
    state.refresh(T0)

    state.apply(seat(1, True, T0 + timedelta(seconds=5)), T0 + timedelta(seconds=5), retained=False)
    events = state.refresh(T0 + timedelta(seconds=5))

    assert [e.kind for e in events] == ["seat", "site"]
    seat_event = json.loads(events[0].data)
    assert seat_event["site"] == SITE
    assert seat_event["seat"]["id"] == "xinyuan2-a.1"
    assert seat_event["seat"]["state"] == "occupied"
    assert json.loads(events[1].data)["site"]["seats"]["occupied"] == 1
    assert [e.version for e in events] == [state.version - 1, state.version]


def test_nothing_is_sent_when_nothing_changed() -> None:
    state = live()
    state.apply(online(), T0, retained=False)
    state.apply(seat(1, True), T0, retained=False)
    state.refresh(T0)

    state.apply(seat(1, True), T0, retained=False)  # the same value again (a resend)

    assert state.refresh(T0) == []


def test_a_gateway_that_went_offline_shows_every_seat_unknown_at_once() -> None:
    state = live()
    state.apply(online(), T0, retained=False)
    state.apply(seat(1, True), T0, retained=False)
    state.refresh(T0)
    gone = T0 + timedelta(seconds=30)

    state.apply(offline(gone), gone, retained=False)  # its Last Will

    assert set(seats_of(state, gone).values()) == {("unknown", "gateway_offline")}
    summary = state.sites(gone).sites[0]
    assert summary.online is False
    assert summary.occupancy is None
    assert summary.gateways[0].state == "offline"


def test_a_late_will_of_an_old_session_does_not_take_the_gateway_offline() -> None:
    state = live()
    state.apply(online(session=8), T0, retained=False)
    state.apply(seat(1, True), T0, retained=False)

    state.apply(offline(T0 + timedelta(seconds=1), session=7), T0, retained=False)

    assert seats_of(state, T0)["xinyuan2-a.1"] == ("occupied", None)


def test_a_silent_gateway_turns_its_seats_unknown_after_the_timeout_and_back_when_heard() -> None:
    state = live(gateway_silent_after=timedelta(seconds=90))
    state.apply(online(), T0, retained=False)
    state.apply(seat(1, True), T0, retained=False)

    assert seats_of(state, T0 + timedelta(seconds=89))["xinyuan2-a.1"] == ("occupied", None)
    late = T0 + timedelta(seconds=90)
    assert seats_of(state, late)["xinyuan2-a.1"] == ("unknown", "gateway_silent")
    assert state.sites(late).sites[0].gateways[0].state == "silent"

    back = T0 + timedelta(seconds=120)
    state.apply(link(back), back, retained=False)
    assert seats_of(state, back)["xinyuan2-a.1"] == ("occupied", None)


def test_passing_time_alone_produces_the_unknown_events_on_a_full_refresh() -> None:
    state = live(gateway_silent_after=timedelta(seconds=60))
    state.apply(online(), T0, retained=False)
    state.apply(seat(1, True), T0, retained=False)
    state.refresh(T0)

    events = state.refresh(T0 + timedelta(seconds=61), everything=True)

    changed = {
        json.loads(e.data)["seat"]["id"]: json.loads(e.data)["seat"]
        for e in events
        if e.kind == "seat"
    }
    assert set(changed) == {f"xinyuan2-a.{n}" for n in range(1, 5)}
    assert {(s["state"], s["reason"]) for s in changed.values()} == {("unknown", "gateway_silent")}
    assert changed["xinyuan2-a.1"]["since"] == "2026-11-30T02:01:00Z"


def test_retained_messages_do_not_count_as_hearing_from_the_gateway() -> None:
    # A service (re)started at T0 gives every gateway the timeout to speak.
    state = live(gateway_silent_after=timedelta(seconds=60))
    state.apply(online(T0 - timedelta(hours=3)), T0, retained=True)
    state.apply(seat(1, True, T0 - timedelta(hours=2)), T0, retained=True)

    assert seats_of(state, T0 + timedelta(seconds=59))["xinyuan2-a.1"] == ("occupied", None)
    assert seats_of(state, T0 + timedelta(seconds=60))["xinyuan2-a.1"] == (
        "unknown",
        "gateway_silent",
    )


def test_a_board_that_misses_its_heartbeats_turns_its_seats_unknown() -> None:
    state = live(device_silent_intervals=3)
    state.apply(online(), T0, retained=False)
    hello = DeviceReading(sensor="xinyuan2-a", firmware="1.0.0", report_interval_s=10, ts=T0, **IDS)
    state.apply(hello, T0, retained=False)
    state.apply(seat(1, True), T0, retained=False)
    # The gateway itself keeps talking (its link report), the board does not.
    later = T0 + timedelta(seconds=30)
    state.apply(link(later), later, retained=False)

    assert seats_of(state, T0 + timedelta(seconds=29))["xinyuan2-a.1"] == ("occupied", None)
    assert seats_of(state, later)["xinyuan2-a.1"] == ("unknown", "device_silent")
    devices = state.detail(SITE, later).devices  # type: ignore[union-attr]
    assert [(d.id, d.state, d.firmware) for d in devices] == [("xinyuan2-a", "silent", "1.0.0")]


def test_a_stuck_seat_shows_its_fault_until_the_fault_ends() -> None:
    state = live()
    state.apply(online(), T0, retained=False)
    state.apply(seat(3, True), T0, retained=False)

    def fault(active: bool) -> FaultReading:
        return FaultReading(
            sensor="xinyuan2-a.seat.3",
            code="stuck",
            active=active,
            target_kind="seat",
            target="xinyuan2-a.3",
            ts=T0,
            **IDS,
        )

    state.apply(fault(True), T0, retained=False)
    assert seats_of(state, T0)["xinyuan2-a.3"] == ("fault", "stuck")
    assert state.sites(T0).sites[0].seats.fault == 1

    state.apply(fault(False), T0, retained=False)
    assert seats_of(state, T0)["xinyuan2-a.3"] == ("occupied", None)


def test_a_supply_fault_on_counter_1_does_not_mark_seat_1() -> None:
    state = live()
    state.apply(online(), T0, retained=False)
    state.apply(seat(1, False), T0, retained=False)
    supply = FaultReading(
        sensor="xinyuan2-a.people.1",
        code="supply_low",
        active=True,
        target_kind="people",
        target="xinyuan2-a.1",
        ts=T0,
        **IDS,
    )

    state.apply(supply, T0, retained=False)

    assert seats_of(state, T0)["xinyuan2-a.1"] == ("free", None)


def test_door_people_inside_and_board_supply_are_shown() -> None:
    state = live()
    state.apply(online(), T0, retained=False)
    state.apply(DoorReading(sensor="xinyuan2-a.1", open=True, ts=T0, **IDS), T0, retained=False)
    state.apply(
        PeopleReading(sensor="xinyuan2-a.1", in_total=30, out_total=21, ts=T0, **IDS),
        T0,
        retained=False,
    )
    state.apply(
        HeartbeatReading(sensor="xinyuan2-a", uptime_s=60, supply_mv=4950, ts=T0, **IDS),
        T0,
        retained=False,
    )

    detail = state.detail(SITE, T0)
    assert detail is not None
    assert detail.site.door == "open"
    assert detail.site.people_inside == 9
    assert [(d.label, d.state) for d in detail.doors] == [("入口", "open")]
    assert detail.devices[0].supply_mv == 4950


def test_a_counter_reset_never_shows_a_negative_room() -> None:
    state = live()
    state.apply(online(), T0, retained=False)
    state.apply(
        PeopleReading(sensor="xinyuan2-a.1", in_total=2, out_total=5, ts=T0, **IDS),
        T0,
        retained=False,
    )

    assert state.sites(T0).sites[0].people_inside == 0


def test_opening_hours_are_read_in_local_time() -> None:
    state = live()
    monday_10_local = T0
    monday_13_local = T0 + timedelta(hours=3)
    sunday_10_local = T0 - timedelta(days=1)

    assert state.sites(monday_10_local).sites[0].open_now is True
    assert state.sites(monday_13_local).sites[0].open_now is False  # the lunch break
    assert state.sites(monday_10_local).sites[0].hours_today == "08:30-12:00, 14:00-21:00"
    assert state.sites(sunday_10_local).sites[0].hours_today is None
    assert state.sites(sunday_10_local).sites[0].open_now is False


def test_a_site_missing_from_the_directory_is_shown_under_its_id() -> None:
    state = live()
    other = {"site": "xunxian-weihelu", "gateway": "gw1", "device": "board-a"}
    state.apply(SeatReading(sensor="board-a.1", occupied=True, ts=T0, **other), T0, retained=False)

    summaries = {s.id: s for s in state.sites(T0).sites}
    assert summaries["xunxian-weihelu"].name == "xunxian-weihelu"
    assert summaries["xunxian-weihelu"].seats.occupied == 1
    assert "xunxian-weihelu" not in {s.id for s in state.public(T0).sites}


def test_a_seat_missing_from_the_layout_is_drawn_below_the_listed_ones() -> None:
    state = live()
    state.apply(online(), T0, retained=False)
    state.apply(seat(9, True), T0, retained=False)

    detail = state.detail(SITE, T0)
    assert detail is not None
    extra = next(s for s in detail.seats if s.id == "xinyuan2-a.9")
    assert (extra.row, extra.col) == (3, 1)
    assert (detail.layout.rows, detail.layout.cols) == (3, 2)


def test_the_public_view_holds_free_seats_and_opening_only() -> None:
    state = live()
    state.apply(online(), T0, retained=False)
    state.apply(seat(1, False), T0, retained=False)
    state.apply(seat(2, True), T0, retained=False)

    public = state.public(T0)

    assert [s.id for s in public.sites] == [SITE]  # heshan-wenti is not public
    site = public.sites[0].model_dump()
    assert site["free_seats"] == 1
    assert site["total_seats"] == 4
    assert set(site) == {
        "id",
        "name",
        "name_en",
        "kind",
        "district",
        "district_en",
        "address",
        "open_now",
        "hours_today",
        "hours_note",
        "free_seats",
        "total_seats",
        "likely_free",
        "updated_at",
    }


def test_the_public_view_says_nothing_about_seats_it_cannot_know() -> None:
    state = live()
    state.apply(online(), T0, retained=False)
    state.apply(seat(1, False), T0, retained=False)
    state.apply(offline(T0 + timedelta(seconds=1)), T0, retained=False)

    assert state.public(T0 + timedelta(seconds=1)).sites[0].free_seats is None


def test_a_snapshot_carries_the_version_of_the_newest_event_it_reflects() -> None:
    state = live()
    state.apply(online(), T0, retained=False)
    state.apply(seat(1, True), T0, retained=False)

    snapshot = state.sites(T0)
    pending = state.take_pending()

    assert pending  # produced while answering, kept for the stream
    assert snapshot.version == pending[-1].version == state.version


@pytest.mark.parametrize(
    ("hours", "problem"),
    [
        ({"mon-fri": "8:30-25:00"}, "hour must be in 0..23"),
        ({"weekdays": "08:00-12:00"}, "'weekdays' is not a day"),
        ({"daily": "12:00-08:00"}, "ends before it starts"),
        ({"daily": "08:00-12:00, 11:00-13:00"}, "overlaps"),
        ({"daily": "morning"}, "is not HH:MM-HH:MM"),
    ],
)
def test_bad_opening_hours_are_refused_naming_the_problem(
    hours: dict[str, str], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        SiteDirectory.model_validate({"sites": [{"id": "a", "name": "甲", "opening_hours": hours}]})


def test_a_board_saying_hello_and_its_heartbeats_are_sent_as_device_events() -> None:
    state = live()
    state.apply(online(), T0, retained=False)
    state.refresh(T0)
    hello = DeviceReading(sensor="xinyuan2-a", firmware="1.2.0", report_interval_s=60, ts=T0, **IDS)

    state.apply(hello, T0, retained=False)
    events = [json.loads(e.data) for e in state.refresh(T0) if e.kind == "device"]

    assert [(e["device"]["id"], e["device"]["firmware"], e["device"]["state"]) for e in events] == [
        ("xinyuan2-a", "1.2.0", "ok")
    ]


def test_open_until_midnight_is_written_24_00_and_open_in_its_last_minute() -> None:
    directory = SiteDirectory.model_validate(
        {"sites": [{"id": "a", "name": "甲", "opening_hours": {"daily": "06:00-24:00"}}]}
    )
    hours = directory.sites[0].hours()
    last_minute = datetime(2026, 11, 30, 23, 59, 30)

    assert hours.describe(last_minute.date()) == "06:00-24:00"
    assert hours.is_open(last_minute) is True
    assert hours.is_open(last_minute.replace(second=59, microsecond=999_999)) is True
    assert hours.is_open(datetime(2026, 12, 1, 0, 0)) is False


def test_alerts_the_engine_publishes_show_on_the_site_newest_first_and_leave_when_resolved() -> (
    None
):
    from central.alerts.model import Alert

    def alert(rule: str, minutes: int, state: str = "firing") -> Alert:
        return Alert.model_validate(
            {
                "id": f"{rule}-000000000001",
                "rule": rule,
                "severity": "warning",
                "state": state,
                "site": SITE,
                "site_name": "淇河书屋·馨苑二区站",
                "labels": {"site": SITE},
                "summary_zh": "座位传感器报告故障",
                "summary_en": "a seat sensor reports a fault",
                "starts_at": (T0 + timedelta(minutes=minutes)).isoformat(),
            }
        )

    state = live()
    state.refresh(T0)
    state.apply_alert(SITE, "device_fault-000000000001", alert("device_fault", 1))
    state.apply_alert(SITE, "seat_stuck-000000000001", alert("seat_stuck", 5))
    events = state.refresh(T0)

    assert [e.kind for e in events] == ["alerts", "site"]
    listed = [a["rule"] for a in json.loads(events[0].data)["alerts"]]
    assert listed == ["seat_stuck", "device_fault"]
    assert state.sites(T0).sites[0].alerts == 2

    state.apply_alert(SITE, "seat_stuck-000000000001", alert("seat_stuck", 5, "resolved"))
    state.apply_alert(SITE, "device_fault-000000000001", None)  # its retained message cleared
    detail = state.detail(SITE, T0)
    assert detail is not None
    assert detail.alerts == ()
    assert detail.site.alerts == 0


# Refreshing only what changed ------------------------------------------------------------


def seat_events(events: list[LiveEvent]) -> dict[tuple[str, str], tuple[str, str | None]]:
    out = {}
    for e in events:
        if e.kind == "seat":
            seat = json.loads(e.data)["seat"]
            out[(json.loads(e.data)["site"], seat["id"])] = (seat["state"], seat["reason"])
    return out


def test_a_timed_refresh_turns_a_silent_gateways_seats_unknown_at_the_deadline_and_not_before() -> (
    None
):
    state = live(gateway_silent_after=timedelta(seconds=60))
    state.apply(online(), T0, retained=False)
    state.apply(seat(1, True), T0, retained=False)
    state.refresh(T0)

    assert state.refresh(T0 + timedelta(seconds=59.9), timed=True) == []
    events = state.refresh(T0 + timedelta(seconds=60), timed=True)

    assert seat_events(events) == {
        (SITE, f"xinyuan2-a.{n}"): ("unknown", "gateway_silent") for n in range(1, 5)
    }
    assert {e.site for e in events} == {SITE}  # the other site did not change
    assert state.refresh(T0 + timedelta(seconds=61), timed=True) == []


def test_a_timed_refresh_turns_a_silent_boards_seats_unknown() -> None:
    state = live(device_silent_intervals=3)
    state.apply(online(), T0, retained=False)
    hello = DeviceReading(sensor="xinyuan2-a", firmware="1.0.0", report_interval_s=10, ts=T0, **IDS)
    state.apply(hello, T0, retained=False)
    state.apply(seat(2, False), T0, retained=False)
    state.refresh(T0)
    later = T0 + timedelta(seconds=20)
    state.apply(link(later), later, retained=False)  # the gateway still talks
    state.refresh(later)

    events = state.refresh(T0 + timedelta(seconds=30), timed=True)

    assert seat_events(events)[(SITE, "xinyuan2-a.2")] == ("unknown", "device_silent")
    devices = [json.loads(e.data)["device"] for e in events if e.kind == "device"]
    assert [(d["id"], d["state"]) for d in devices] == [("xinyuan2-a", "silent")]


def test_a_timed_refresh_follows_the_opening_hours() -> None:
    state = live()
    state.refresh(T0)
    lunch = T0 + timedelta(hours=2)  # 12:00 in Hebi

    assert state.refresh(lunch - timedelta(seconds=1), timed=True) == []
    events = state.refresh(lunch, timed=True)

    summaries = {e.site: json.loads(e.data)["site"] for e in events if e.kind == "site"}
    assert summaries[SITE]["open_now"] is False
    assert summaries[SITE]["hours_today"] == "08:30-12:00, 14:00-21:00"
    assert set(summaries) == {SITE}  # heshan-wenti has no hours: nothing changes there


WEEK = SiteDirectory.model_validate(
    {
        "sites": [
            {
                "id": "a",
                "name": "甲",
                "opening_hours": {
                    "mon-thu": "06:00-24:00",
                    "fri": "00:00-01:00, 08:00-20:00",
                    "sat": "06:00-24:00",
                    "sun": "closed",
                },
            }
        ]
    }
)


@pytest.mark.parametrize(
    ("midnight", "open_now", "hours_today"),
    [
        # Saturday 2026-11-28 ends: Sunday is closed.
        (datetime(2026, 11, 28, 16, tzinfo=UTC), False, None),
        # November ends on a Monday: Tuesday 1 December opens at 06:00.
        (datetime(2026, 11, 30, 16, tzinfo=UTC), False, "06:00-24:00"),
        # 2026 ends on a Thursday: New Year's Day is a Friday, open from 00:00.
        (datetime(2026, 12, 31, 16, tzinfo=UTC), True, "00:00-01:00, 08:00-20:00"),
    ],
    ids=["local-midnight", "month-end", "year-end"],
)
def test_a_timed_refresh_at_local_midnight_shows_the_new_days_hours(
    midnight: datetime, open_now: bool, hours_today: str | None
) -> None:
    state = LiveState(WEEK, started_at=midnight - timedelta(hours=1))
    state.refresh(midnight - timedelta(hours=1))
    last_second = state.refresh(midnight - timedelta(seconds=1), timed=True)
    site = state.sites(midnight - timedelta(seconds=1)).sites[0]

    events = state.refresh(midnight, timed=True)

    assert last_second == []
    assert (site.open_now, site.hours_today) == (True, "06:00-24:00")
    summaries = [json.loads(e.data)["site"] for e in events if e.kind == "site"]
    assert [(s["open_now"], s["hours_today"]) for s in summaries] == [(open_now, hours_today)]
    assert state.refresh(midnight + timedelta(seconds=1), timed=True) == []


def test_a_timed_refresh_after_the_clock_went_back_shows_what_that_time_shows() -> None:
    state = live(gateway_silent_after=timedelta(seconds=60))
    state.apply(online(), T0, retained=False)
    state.apply(seat(1, True), T0, retained=False)
    state.refresh(T0 + timedelta(seconds=61), timed=True)  # silent

    events = state.refresh(T0 + timedelta(seconds=30), timed=True)  # NTP stepped it back

    assert seat_events(events)[(SITE, "xinyuan2-a.1")] == ("occupied", None)


def test_a_snapshot_between_a_message_and_its_refresh_plus_the_events_after_it_is_the_state() -> (
    None
):
    state = live()
    state.apply(online(), T0, retained=False)
    state.refresh(T0)
    sent: list[LiveEvent] = []  # what the service publishes, in order

    state.apply(seat(1, True), T0, retained=False)
    snapshot = state.detail(SITE, T0)  # before the service's refresh took the message
    sent += state.take_pending()
    for n, at in [(2, 1), (1, 2), (3, 3)]:
        moment = T0 + timedelta(seconds=at)
        state.apply(seat(n, n != 1, moment), moment, retained=False)
        sent += state.refresh(moment)
    sent += state.refresh(T0 + timedelta(seconds=4), timed=True)

    assert snapshot is not None
    assert [e.version for e in sent] == list(range(sent[0].version, state.version + 1))
    page = as_page(snapshot)
    for event in sent:
        apply_event(page, event)
    assert page == as_page(state.detail(SITE, T0 + timedelta(seconds=4)))
    assert page["seats"]["xinyuan2-a.1"]["state"] == "free"


def as_page(detail: SiteDetail | None) -> dict[str, Any]:
    """What the operator page keeps of a site snapshot."""
    assert detail is not None
    data = detail.model_dump(mode="json")
    return {
        "version": data["version"],
        "site": data["site"],
        "seats": {s["id"]: s for s in data["seats"]},
        "doors": {d["id"]: d for d in data["doors"]},
        "devices": {(d["gateway"], d["id"]): d for d in data["devices"]},
    }


def apply_event(page: dict[str, Any], event: LiveEvent) -> None:
    """The page's rule: an event older than the snapshot is already in it."""
    data = json.loads(event.data)
    if data["v"] <= page["version"]:
        return
    page["version"] = data["v"]
    match event.kind:
        case "site":
            page["site"] = data["site"]
        case "seat":
            page["seats"][data["seat"]["id"]] = data["seat"]
        case "door":
            page["doors"][data["door"]["id"]] = data["door"]
        case "device":
            page["devices"][(data["device"]["gateway"], data["device"]["id"])] = data["device"]


def test_a_snapshot_carries_no_version_newer_than_the_events_sent_with_it() -> None:
    state = live()
    state.apply(online(), T0, retained=False)
    state.refresh(T0)
    state.apply(seat(1, True), T0, retained=False)

    first = state.sites(T0)
    second = state.sites(T0)  # nothing changed in between: nothing new to send

    assert first.version == second.version == state.version
    assert [e.version for e in state.take_pending()][-1] == state.version
    assert state.take_pending() == []


# What the incremental refresh shows is what a refresh of everything shows -----------------

GATEWAYS = ("gw1", "gw2")
#: (kind, gateway, argument, retained (a fault: active), then refresh as the service does)
messages = st.tuples(
    st.sampled_from(["seat", "seat", "status", "hello", "heartbeat", "link", "door", "fault"]),
    st.sampled_from(GATEWAYS),
    st.integers(1, 4),
    st.booleans(),
    st.booleans(),
)
ticks = st.tuples(st.just("tick"), st.sampled_from([0.5, 1, 14, 16, 29, 31, 60, 200, -5]))
histories = st.lists(st.one_of(messages, messages, ticks), max_size=60)


def message_of(
    kind: str, gateway: str, arg: int, flag: bool, now: datetime
) -> GatewayStatus | Reading:
    board = "xinyuan2-a" if gateway == "gw1" else "board-b"  # seats listed, and not
    ids = {"site": SITE, "gateway": gateway, "device": board}
    match kind:
        case "seat":
            return SeatReading(sensor=f"{board}.{arg}", occupied=arg % 2 == 0, ts=now, **ids)
        case "status":
            state = "online" if arg > 1 else "offline"
            return GatewayStatus(site=SITE, gateway=gateway, state=state, session=arg, ts=now)
        case "hello":
            interval = {1: 5, 2: 5, 3: 20, 4: 60}[arg]
            return DeviceReading(
                sensor=board, firmware="1.0.0", report_interval_s=interval, ts=now, **ids
            )
        case "heartbeat":
            supply = 4500 + arg
            return HeartbeatReading(sensor=board, uptime_s=1, supply_mv=supply, ts=now, **ids)
        case "door":  # the listed door on gw1, a GPIO contact on gw2
            sensor, device = (f"{board}.1", board) if gateway == "gw1" else ("gpio.4", "gpio")
            door = {**ids, "device": device}
            return DoorReading(sensor=sensor, open=arg % 2 == 0, ts=now, **door)
        case "fault":
            return FaultReading(
                sensor=f"{board}.seat.{arg}",
                code="stuck",
                active=flag,
                target_kind="seat",
                target=f"{board}.{arg}",
                ts=now,
                **ids,
            )
    if arg == 4:
        return PeopleReading(sensor=f"{board}.1", in_total=5, out_total=2, ts=now, **ids)
    counters = dict(frames=1, crc_errors=0, malformed=0, lost=0, duplicates=0, reconnects=0)
    return LinkReading(**{**ids, "device": gateway}, sensor="serial0", ts=now, **counters)


@settings(max_examples=300, deadline=None)
@given(history=histories)
# A fault names one seat; a board falls silent with its gateway still talking.
@example(history=[("seat", "gw1", 2, False, True), ("fault", "gw1", 2, True, True), ("tick", 1)])
@example(history=[("hello", "gw2", 1, False, True), ("tick", 16)])
def test_refreshing_only_what_changed_shows_what_refreshing_everything_shows(
    history: list[tuple[Any, ...]],
) -> None:
    timeouts = {"gateway_silent_after": timedelta(seconds=30), "device_silent_intervals": 3}
    incremental, everything = live(**timeouts), live(**timeouts)
    now = T0 + timedelta(hours=1, minutes=59, seconds=30)  # 30 s before the lunch break
    for step in history:
        if step[0] == "tick":
            now += timedelta(seconds=step[1])
            incremental.refresh(now, timed=True)
            everything.refresh(now, everything=True)
            for site in (SITE, "heshan-wenti"):
                a, b = incremental.detail(site, now), everything.detail(site, now)
                assert a is not None and b is not None
                assert a.model_dump(exclude={"version"}) == b.model_dump(exclude={"version"})
            assert incremental.public(now) == everything.public(now)
            continue
        kind, gateway, arg, flag, refresh = step
        message = message_of(kind, gateway, arg, flag, now)
        retained = flag and kind != "fault"
        incremental.apply(message, now, retained=retained)
        everything.apply(message, now, retained=retained)
        if refresh:
            incremental.refresh(now)
