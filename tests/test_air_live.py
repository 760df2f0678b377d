"""The air of each room on the live page (issue 16): the newest temperature, humidity and CO₂ of
every air sensor, stale when its source cannot be trusted — an unavailable Zigbee device (an
active ``offline`` fault), a gateway offline or silent, or no reading for ``air_stale_after``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from central.live.config import load_live_setup
from central.live.state import LiveState
from central.live.views import AirView
from qihe.configfile import ConfigError
from qihe.contract import (
    AirReading,
    BatteryReading,
    FaultReading,
    GatewayStatus,
    HeartbeatReading,
    Reading,
)
from tests.test_live_state import SITE, T0, live, message_of, messages, offline, online, ticks

#: As the Zigbee source names them: every reading of its link has the link as device.
ZB = {"site": SITE, "gateway": "gw1", "device": "zigbee"}


def air(at: datetime = T0, sensor: str = "reading-room-air", **values: float) -> AirReading:
    return AirReading(sensor=sensor, ts=at, **{**ZB, **values})  # type: ignore[arg-type]


def unavailable(active: bool, at: datetime, target_kind: Any = "air") -> FaultReading:
    """What the Zigbee source publishes when Zigbee2MQTT says the device went offline/online."""
    return FaultReading(
        sensor=f"zigbee.{target_kind}.reading-room-air", code="offline", active=active,
        target_kind=target_kind, target="reading-room-air", ts=at, **ZB,
    )  # fmt: skip


def air_of(state: LiveState, now: datetime) -> list[AirView]:
    detail = state.detail(SITE, now)
    assert detail is not None
    return list(detail.air)


def shown(state: LiveState, now: datetime) -> list[tuple[Any, ...]]:
    return [
        (v.id, v.temperature_c, v.humidity_pct, v.co2_ppm, v.state, v.reason)
        for v in air_of(state, now)
    ]


def started() -> LiveState:
    state = live()
    state.apply(online(), T0, retained=False)
    return state


def test_the_newest_air_of_each_room_is_in_the_site_detail() -> None:
    state = started()
    state.apply(air(temperature_c=22.4, humidity_pct=41.5, co2_ppm=870), T0, retained=False)
    state.apply(air(sensor="hall-air", temperature_c=-1.5), T0, retained=False)
    assert shown(state, T0) == [
        ("hall-air", -1.5, None, None, "ok", None),
        ("reading-room-air", 22.4, 41.5, 870.0, "ok", None),
    ]
    view = air_of(state, T0)[1]
    assert (view.gateway, view.device, view.ts) == ("gw1", "zigbee", T0)


def test_each_value_keeps_its_newest_reading_when_a_reading_carries_only_some() -> None:
    state = started()
    later = T0 + timedelta(seconds=30)
    state.apply(air(temperature_c=22.0, humidity_pct=40.0, co2_ppm=800), T0, retained=False)
    state.apply(air(later, co2_ppm=1150), later, retained=False)
    # An older reading that arrives late changes nothing it is older than.
    state.apply(air(T0 - timedelta(seconds=5), temperature_c=30.0), later, retained=False)
    assert shown(state, later) == [("reading-room-air", 22.0, 40.0, 1150.0, "ok", None)]
    assert air_of(state, later)[0].ts == later


def test_an_air_reading_sends_one_air_event_and_a_repeat_of_the_same_view_sends_none() -> None:
    state = started()
    state.refresh(T0)
    state.apply(air(temperature_c=22.4, co2_ppm=870), T0, retained=False)
    events = state.refresh(T0)
    air_events = [e for e in events if e.kind == "air"]
    assert len(air_events) == 1
    body = json.loads(air_events[0].data)
    assert (body["site"], body["air"]["id"], body["air"]["co2_ppm"]) == (
        SITE,
        "reading-room-air",
        870.0,
    )
    assert body["air"]["state"] == "ok"
    assert [e for e in state.refresh(T0) if e.kind == "air"] == []


def test_an_unavailable_zigbee_device_shows_its_air_as_stale_until_it_is_back() -> None:
    state = started()
    state.apply(air(temperature_c=22.4, humidity_pct=41.5), T0, retained=False)
    at = T0 + timedelta(minutes=2)
    state.apply(unavailable(True, at), at, retained=False)
    assert shown(state, at) == [("reading-room-air", 22.4, 41.5, None, "stale", "offline")]
    back = at + timedelta(minutes=1)
    state.apply(unavailable(False, back), back, retained=False)
    assert shown(state, back) == [("reading-room-air", 22.4, 41.5, None, "ok", None)]


def test_an_offline_fault_naming_the_sensor_under_another_kind_makes_its_air_stale() -> None:
    # One Zigbee device, two readings of one sensor id: its fault may name its main reading.
    state = started()
    state.apply(air(temperature_c=22.4), T0, retained=False)
    state.apply(unavailable(True, T0, target_kind="battery"), T0, retained=True)
    assert shown(state, T0)[0][4:] == ("stale", "offline")


def test_another_zigbee_devices_offline_fault_leaves_this_air_alone() -> None:
    # Same device ("zigbee": the link), another sensor: not this room's.
    state = started()
    state.apply(air(temperature_c=22.4), T0, retained=False)
    other = FaultReading(
        sensor="zigbee.door.front-door", code="offline", active=True, target_kind="door",
        target="front-door", ts=T0, **ZB,
    )  # fmt: skip
    state.apply(other, T0, retained=False)
    assert shown(state, T0)[0][4:] == ("ok", None)


def test_a_modbus_device_that_stopped_answering_shows_its_air_as_stale() -> None:
    # The Modbus source: device = the port, target_kind left out for an air sensor.
    port = {**ZB, "device": "rs485-1"}
    state = started()
    state.apply(AirReading(sensor="hall-co2", co2_ppm=650, ts=T0, **port), T0, retained=False)
    silent = FaultReading(
        sensor="hall-co2.no_response", code="no_response", active=True, target="hall-co2",
        ts=T0, **port,
    )  # fmt: skip
    state.apply(silent, T0, retained=True)
    assert shown(state, T0) == [("hall-co2", None, None, 650.0, "stale", "no_response")]
    state.apply(silent.model_copy(update={"active": False}), T0, retained=False)
    assert shown(state, T0)[0][4:] == ("ok", None)


def test_another_fault_naming_the_air_sensor_shows_its_code() -> None:
    state = started()
    state.apply(air(co2_ppm=5000), T0, retained=False)
    fault = unavailable(True, T0).model_copy(update={"code": "out_of_range"})
    state.apply(fault, T0, retained=False)
    assert shown(state, T0)[0][4:] == ("stale", "out_of_range")


def test_air_of_an_offline_or_silent_gateway_is_stale() -> None:
    state = live(gateway_silent_after=timedelta(seconds=180))
    state.apply(online(), T0, retained=False)
    state.apply(air(co2_ppm=900), T0, retained=False)
    silent_at = T0 + timedelta(seconds=180)
    events = state.refresh(silent_at, timed=True)
    assert [json.loads(e.data)["air"]["reason"] for e in events if e.kind == "air"] == [
        "gateway_silent"
    ]
    gone = silent_at + timedelta(seconds=1)
    state.apply(offline(gone, session=2), gone, retained=False)
    assert shown(state, gone)[0][4:] == ("stale", "gateway_offline")


def test_air_of_a_board_that_stopped_heartbeating_is_stale() -> None:
    state = live(device_silent_intervals=3.0)
    ids = {**ZB, "device": "board-c"}
    state.apply(HeartbeatReading(sensor="board-c", uptime_s=1, supply_mv=3700, ts=T0, **ids), T0,
                retained=False)  # fmt: skip
    state.apply(AirReading(sensor="board-c.air", co2_ppm=700, ts=T0, **ids), T0, retained=False)
    for minute in range(4):  # the gateway keeps talking; the board does not
        at = T0 + timedelta(minutes=minute)
        state.apply(online(at, session=1 + minute), at, retained=False)
    at = T0 + timedelta(minutes=3)  # three 60 s intervals without a heartbeat
    assert shown(state, at) == [("board-c.air", None, None, 700.0, "stale", "device_silent")]


def test_air_turns_stale_exactly_when_no_reading_came_for_air_stale_after() -> None:
    state = live(gateway_silent_after=timedelta(hours=2), air_stale_after=timedelta(minutes=30))
    state.apply(online(), T0, retained=False)
    state.apply(air(temperature_c=22.4), T0, retained=False)
    state.refresh(T0)
    almost = T0 + timedelta(minutes=30) - timedelta(microseconds=1)
    state.apply(
        BatteryReading(sensor="reading-room-air", percent=80, ts=almost, **ZB),
        almost,
        retained=False,
    )  # fmt: skip — a battery report is no air
    assert [e for e in state.refresh(almost, timed=True) if e.kind == "air"] == []
    at = T0 + timedelta(minutes=30)
    events = [json.loads(e.data) for e in state.refresh(at, timed=True) if e.kind == "air"]
    assert [(e["air"]["state"], e["air"]["reason"]) for e in events] == [("stale", "sensor_silent")]
    state.apply(air(at, temperature_c=22.5), at, retained=False)
    assert shown(state, at) == [("reading-room-air", 22.5, None, None, "ok", None)]


def test_a_site_without_air_sensors_shows_an_empty_list() -> None:
    state = started()
    assert air_of(state, T0) == []
    assert "air" not in {e.kind for e in state.refresh(T0)}


# Refreshing only what changed shows what refreshing everything shows, air included -----------

air_messages = st.tuples(
    st.sampled_from(["air", "air", "zfault"]),
    st.sampled_from(["gw1", "gw2"]),
    st.integers(1, 4),
    st.booleans(),
    st.booleans(),
)
histories = st.lists(st.one_of(messages, air_messages, air_messages, ticks), max_size=60)


def air_message_of(
    kind: str, gateway: str, arg: int, flag: bool, now: datetime
) -> GatewayStatus | Reading:
    ids = {"site": SITE, "gateway": gateway, "device": f"zb-{arg % 2}"}
    if kind == "air":
        values = [{"temperature_c": 20.0 + arg}, {"co2_ppm": 400.0 * arg}][arg % 2]
        return AirReading(sensor=f"zb-{arg % 2}", ts=now, **values, **ids)  # type: ignore[arg-type]
    if kind == "zfault":
        kinds: list[Any] = ["air", "battery", "air", "door"]
        return FaultReading(
            sensor=f"zb-{arg % 2}.offline", code="offline", active=flag,
            target_kind=kinds[arg - 1], target=f"zb-{arg % 2}", ts=now, **ids,
        )  # fmt: skip
    return message_of(kind, gateway, arg, flag, now)


@settings(max_examples=300, deadline=None)
@given(history=histories)
@example(history=[("air", "gw1", 1, False, True), ("tick", 31), ("tick", 31)])
@example(history=[("air", "gw2", 2, False, True), ("zfault", "gw2", 2, True, True), ("tick", 1)])
def test_refreshing_only_what_changed_shows_the_air_that_refreshing_everything_shows(
    history: list[tuple[Any, ...]],
) -> None:
    # An air sensor falls silent before its gateway or its device can (their deadlines would
    # refresh the site anyway).
    timeouts = {
        "gateway_silent_after": timedelta(seconds=120),
        "device_silent_intervals": 3,
        "air_stale_after": timedelta(seconds=45),
    }
    incremental, everything = live(**timeouts), live(**timeouts)
    now = T0
    for step in history:
        if step[0] == "tick":
            now += timedelta(seconds=step[1])
            incremental.refresh(now, timed=True)
            everything.refresh(now, everything=True)
            a, b = incremental.detail(SITE, now), everything.detail(SITE, now)
            assert a is not None and b is not None
            assert a.model_dump(exclude={"version"}) == b.model_dump(exclude={"version"})
            continue
        kind, gateway, arg, flag, refresh = step
        message = air_message_of(kind, gateway, arg, flag, now)
        retained = flag and kind not in ("fault", "zfault", "air")
        incremental.apply(message, now, retained=retained)
        everything.apply(message, now, retained=retained)
        if refresh:
            incremental.refresh(now)


# The setting ---------------------------------------------------------------------------------


def test_the_sample_live_config_sets_air_stale_after() -> None:
    setup = load_live_setup(Path(__file__).resolve().parent.parent / "config" / "live.yaml")
    assert setup.config.air_stale_after == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("0", "air_stale_after: Value error, must be a positive duration"),
        ("-60", "air_stale_after: Value error, must be a positive duration"),
        ("soon", "air_stale_after: Input should be a valid timedelta"),
    ],
)
def test_a_bad_air_stale_after_is_refused_naming_it(
    tmp_path: Path, value: str, complaint: str
) -> None:
    (tmp_path / "sites.yaml").write_text("sites: []\n", encoding="utf-8")
    path = tmp_path / "live.yaml"
    path.write_text(f"sites: sites.yaml\nair_stale_after: {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_live_setup(path)
    assert complaint in str(refused.value), str(refused.value)
