"""Zigbee2MQTT's messages read without I/O: topics routed, payloads parsed or refused.

Payloads as Zigbee2MQTT's documentation gives them:
- state: https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html
  (``{"temperature": 27.34, "humidity": 44.72}``, ``{"occupancy": true}``);
- exposes: the device pages, e.g. https://www.zigbee2mqtt.io/devices/MCCGQ11LM.html
  (``contact``: true = closed; ``battery``: 0-100 %);
- availability: https://www.zigbee2mqtt.io/guide/configuration/device-availability.html
  (``online``/``offline`` in legacy mode, else ``{"state":"online"}``/``{"state":"offline"}``).
"""

from __future__ import annotations

import pytest

from edge.sources.zigbee_messages import (
    MAX_STATE_BYTES,
    DeviceState,
    Route,
    ZigbeeMessageError,
    parse_availability,
    parse_state,
    route,
)

DEVICES = frozenset({"front_door", "dongxiang/seat_01"})
IGNORED = frozenset({"router_plug"})

ALL = {"contact": True, "occupancy": True, "air": True, "battery": True}


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ("front_door", Route("state", "front_door")),
        ("front_door/availability", Route("availability", "front_door")),
        ("dongxiang/seat_01", Route("state", "dongxiang/seat_01")),
        ("dongxiang/seat_01/availability", Route("availability", "dongxiang/seat_01")),
        ("bridge/state", Route("bridge_state")),
        ("bridge/devices", Route("skip")),
        ("bridge/response/permit_join", Route("skip")),
        ("front_door/set", Route("skip")),
        ("front_door/get", Route("skip")),
        ("front_door/set/state", Route("skip")),
        ("router_plug", Route("skip")),
        ("router_plug/availability", Route("skip")),
        ("back_door", Route("unknown", "back_door")),
        ("back_door/availability", Route("unknown", "back_door")),
        ("dongxiang", Route("unknown", "dongxiang")),
    ],
)
def test_topics_are_routed_by_friendly_name(rest: str, expected: Route) -> None:
    assert route(rest, DEVICES, IGNORED) == expected


def test_documented_temperature_and_humidity_state_is_read() -> None:
    payload = b'{\n  "temperature": 27.34,\n  "humidity": 44.72\n}'
    assert parse_state(payload, **ALL) == DeviceState(temperature=27.34, humidity=44.72)


def test_documented_occupancy_state_is_read() -> None:
    assert parse_state(b'{\n  "occupancy": true\n}', **ALL) == DeviceState(occupancy=True)


def test_only_the_exposes_asked_for_are_read() -> None:
    # An Aqara door sensor reports its own temperature: not the room's air.
    payload = b'{"battery":91,"contact":false,"temperature":31.5,"voltage":3005,"linkquality":72}'
    state = parse_state(payload, contact=True, occupancy=False, air=False, battery=True)
    assert state == DeviceState(contact=False, battery=91)


def test_null_means_not_reported_and_half_percent_batteries_round() -> None:
    state = parse_state(b'{"contact":null,"battery":50.5}', **ALL)
    assert state == DeviceState(battery=50)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(b"closed", "state is not JSON", id="not-json"),
        pytest.param(b"\xff\xfe", "state is not UTF-8", id="not-utf8"),
        pytest.param(b'[{"contact": true}]', "state is not a JSON object", id="array"),
        pytest.param(b'"online"', "state is not a JSON object", id="string"),
        pytest.param(b'{"contact": "true"}', "contact is not a boolean", id="contact-string"),
        pytest.param(b'{"contact": 1}', "contact is not a boolean", id="contact-number"),
        pytest.param(b'{"occupancy": "on"}', "occupancy is not a boolean", id="occupancy-str"),
        pytest.param(b'{"humidity": 140}', "humidity out of range 0-100", id="humidity-140"),
        pytest.param(b'{"humidity": -1}', "humidity out of range 0-100", id="humidity-neg"),
        pytest.param(b'{"temperature": "21.5"}', "temperature is not a number", id="temp-str"),
        pytest.param(b'{"temperature": true}', "temperature is not a number", id="temp-bool"),
        pytest.param(b'{"temperature": NaN}', "temperature is not finite", id="temp-nan"),
        pytest.param(b'{"temperature": Infinity}', "temperature is not finite", id="temp-inf"),
        # Zigbee2MQTT before 1.x exposes sent battery as a string ("100.00").
        pytest.param(b'{"battery": "100.00"}', "battery is not a number", id="battery-string"),
        pytest.param(b'{"battery": 101}', "battery out of range 0-100", id="battery-101"),
        pytest.param(
            b'{"a": "' + b"x" * MAX_STATE_BYTES + b'"}', "state too large", id="too-large"
        ),
    ],
)
def test_a_bad_state_is_refused_with_its_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ZigbeeMessageError) as caught:
        parse_state(payload, **ALL)
    assert caught.value.reason == reason
    assert str(caught.value).startswith(reason)


def test_a_refusal_says_what_it_got_cut_short() -> None:
    with pytest.raises(ZigbeeMessageError) as caught:
        parse_state(b'{"contact": "' + b"x" * 100 + b'"}', **ALL)
    assert str(caught.value) == "contact is not a boolean: got a string '" + "x" * 36 + "..."


@pytest.mark.parametrize(
    ("payload", "online"),
    [
        (b"online", True),
        (b"offline", False),
        (b'{"state":"online"}', True),
        (b'{"state":"offline"}', False),
    ],
)
def test_availability_is_read_in_both_documented_forms(payload: bytes, online: bool) -> None:
    assert parse_availability(payload) is online


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"gone", "availability is not JSON"),
        (b'["online"]', "availability is not a JSON object"),
        (b'{"state":"ONLINE"}', "availability state is not online or offline"),
        (b'{"state":true}', "availability state is not online or offline"),
        (b"{}", "availability state is not online or offline"),
    ],
)
def test_a_bad_availability_is_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(ZigbeeMessageError) as caught:
        parse_availability(payload)
    assert caught.value.reason == reason
