"""The ``co2_high`` and ``battery_low`` rules (issue 16): on evaluated facts with the time given,
and through the real engine on a real Mosquitto with an injected clock (a ten-minute ``for``
passes by a jump of the clock, not by waiting)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from central.alerts.config import AlertsConfig
from central.alerts.engine import AlertEngine
from central.alerts.model import alert_id
from central.alerts.rules import Condition, Context, evaluate
from central.alerts.sensors import SensorFacts
from central.facts import FactStore
from central.sites import load_with_directory
from devstack import MosquittoProcess
from qihe.configfile import ConfigError
from qihe.contract import (
    AirReading,
    BatteryReading,
    FaultReading,
    GatewayStatus,
    Reading,
    TopicTree,
    encode_payload,
)
from tests.alert_harness import SITE, alerts_config, directory, engine_running, watching
from tests.clocks import RunningClock
from tests.mqtt_helpers import wait_until

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
ROOM = "reading-room-air"
AIR = {"site": SITE, "gateway": "gw1", "device": ROOM}
DOOR = {"site": SITE, "gateway": "gw1", "device": "front-door"}
CO2_ID = alert_id("co2_high", {"site": SITE, "gateway": "gw1", "sensor": ROOM})
BATTERY_ID = alert_id("battery_low", {"site": SITE, "gateway": "gw1", "sensor": "front-door"})


def co2(ppm: float, at: datetime = T0) -> AirReading:
    return AirReading(sensor=ROOM, ts=at, co2_ppm=ppm, temperature_c=23.0, **AIR)


def battery(percent: int, at: datetime = T0) -> BatteryReading:
    return BatteryReading(sensor="front-door", ts=at, percent=percent, **DOOR)


def online(at: datetime = T0, state: str = "online", session: int = 1) -> GatewayStatus:
    return GatewayStatus(site=SITE, gateway="gw1", state=state, session=session, ts=at)  # type: ignore[arg-type]


def conditions(
    messages: list[tuple[GatewayStatus | Reading, datetime]],
    now: datetime,
    *,
    active: frozenset[str] = frozenset(),
    rules: dict[str, Any] | None = None,
) -> list[Condition]:
    """The co2_high and battery_low conditions after ``messages`` (each with its receive time)."""
    facts, sensors = FactStore(), SensorFacts()
    for message, received in messages:
        facts.apply(message, received, retained=False)
        sensors.apply(message, received)
    config = AlertsConfig.model_validate({"sites": "unused.yaml", "rules": rules or {}})
    ctx = Context(
        rules=config.rules, directory=directory(), facts=facts, now=now,
        listening_since=T0, active=active, sensors=sensors,
    )  # fmt: skip
    return [c for c in evaluate(ctx) if c.rule in ("co2_high", "battery_low")]


def test_co2_above_the_threshold_is_a_condition_naming_the_room_and_the_value() -> None:
    [condition] = conditions([(online(), T0), (co2(1240), T0)], T0)
    assert (condition.id, condition.sensor, condition.device, condition.value) == (
        CO2_ID,
        ROOM,
        ROOM,
        1240,
    )
    assert condition.summary_zh == f"{ROOM} 二氧化碳浓度 1240 ppm，超过 1000 ppm，请开窗通风"
    assert condition.summary_en == f"CO₂ at {ROOM}: 1240 ppm, above 1000 ppm: air the room"


@pytest.mark.parametrize(
    ("ppm", "active", "holds"),
    [
        (1000, False, False),  # at the threshold: not above it
        (1000.5, False, True),
        (950, False, False),
        (950, True, True),  # pending or firing: holds down to threshold − hysteresis
        (900, True, True),
        (899.5, True, False),
    ],
)
def test_co2_high_clears_only_below_threshold_minus_hysteresis(
    ppm: float, active: bool, holds: bool
) -> None:
    ids = frozenset({CO2_ID}) if active else frozenset()
    assert bool(conditions([(online(), T0), (co2(ppm), T0)], T0, active=ids)) is holds


def test_the_newest_co2_counts_and_an_air_reading_without_co2_leaves_it() -> None:
    later = T0 + timedelta(seconds=30)
    humid = AirReading(sensor=ROOM, ts=later, humidity_pct=70.0, **AIR)
    messages = [(online(), T0), (co2(1300), T0), (co2(800, later), later), (humid, later)]
    assert conditions(messages, later) == []
    messages = [(online(), T0), (co2(800), T0), (co2(1300, later), later), (humid, later)]
    assert [c.value for c in conditions(messages, later)] == [1300]


def test_co2_that_cannot_be_trusted_now_is_no_condition() -> None:
    high = [(online(), T0), (co2(1500), T0)]
    stale_at = T0 + timedelta(minutes=30)
    assert conditions(high, stale_at - timedelta(seconds=1), rules=_long_silence()) != []
    assert conditions(high, stale_at, rules=_long_silence()) == []  # no air reading for 30 min
    gone = online(T0, "offline", session=2)
    assert conditions([*high, (gone, T0)], T0) == []
    unavailable = FaultReading(
        sensor=f"{ROOM}.offline", code="offline", active=True, target_kind="air", target=ROOM,
        ts=T0, **AIR,
    )  # fmt: skip
    assert conditions([*high, (unavailable, T0)], T0) == []
    back = unavailable.model_copy(update={"active": False})
    assert conditions([*high, (unavailable, T0), (back, T0)], T0) != []
    # Another sensor's fault (the Zigbee link is every Zigbee reading's device) does not count.
    other = unavailable.model_copy(update={"target": "front-door", "target_kind": "door"})
    assert conditions([*high, (other, T0)], T0) != []


def _long_silence() -> dict[str, Any]:
    return {"gateway_offline": {"silent_after": 7200}}


@pytest.mark.parametrize(
    ("percent", "active", "holds"),
    [(19, False, True), (20, False, False), (22, True, True), (24, True, True), (25, True, False)],
)
def test_battery_low_fires_below_percent_and_clears_at_clear_above_percent(
    percent: int, active: bool, holds: bool
) -> None:
    ids = frozenset({BATTERY_ID}) if active else frozenset()
    found = conditions([(online(), T0), (battery(percent), T0)], T0, active=ids)
    assert bool(found) is holds
    if holds:
        assert found[0].summary_zh == f"传感器 front-door 电池电量低：{percent}%，请更换电池"
        assert found[0].summary_en == f"sensor front-door battery low: {percent}%: replace it"


def test_a_zigbee_device_gone_offline_is_a_device_fault_in_chinese_and_english() -> None:
    facts = FactStore()
    unavailable = FaultReading(
        sensor="front-door.offline", code="offline", active=True, target_kind="door",
        target="front-door", ts=T0, **DOOR,
    )  # fmt: skip
    for message in (online(), unavailable):
        facts.apply(message, T0, retained=False)
    config = AlertsConfig.model_validate({"sites": "unused.yaml"})
    ctx = Context(config.rules, directory(), facts, T0, T0, frozenset())
    [fault] = [c for c in evaluate(ctx) if c.rule == "device_fault"]
    assert fault.summary_zh == "门磁 front-door 报告故障：离线（设备不可用）"
    assert fault.summary_en == "door sensor front-door reports a fault: offline"


# Config -------------------------------------------------------------------------------------


def test_the_sample_config_sets_both_rules() -> None:
    config, _ = load_with_directory(
        Path(__file__).resolve().parent.parent / "config" / "alerts.yaml", AlertsConfig
    )
    co2_high, battery_low = config.rules.co2_high, config.rules.battery_low
    assert (co2_high.threshold_ppm, co2_high.hysteresis_ppm) == (1000, 100)
    assert (co2_high.for_, co2_high.stale_after) == (timedelta(minutes=10), timedelta(minutes=30))
    assert (battery_low.percent, battery_low.clear_above_percent) == (20, 25)
    assert {"co2_high", "battery_low"} <= set(config.rules.enabled())


@pytest.mark.parametrize(
    ("rules", "complaint"),
    [
        ("co2_high: {threshold_ppm: 1000, hysteresis_ppm: 1000}",
         "rules.co2_high: Value error, hysteresis_ppm must be below threshold_ppm"),
        ("co2_high: {threshold_ppm: 0}", "rules.co2_high.threshold_ppm: Input should be greater"),
        ("co2_high: {threshold_ppm: lots}", "rules.co2_high.threshold_ppm: Input should be"),
        ("co2_high: {hysteresis_ppm: -5}", "rules.co2_high.hysteresis_ppm: Input should be"),
        ("co2_high: {stale_after: 0}", "rules.co2_high.stale_after: Input should be greater"),
        ("co2_high: {for: -1}", "rules.co2_high.for: Input should be greater"),
        ("co2_high: {threshold: 1000}", "rules.co2_high.threshold: Extra inputs are not permitted"),
        ("battery_low: {percent: 0}", "rules.battery_low.percent: Input should be greater"),
        ("battery_low: {percent: 101}", "rules.battery_low.percent: Input should be less"),
        ("battery_low: {percent: 30}",
         "rules.battery_low: Value error, clear_above_percent must not be below percent"),
    ],
)  # fmt: skip
def test_a_bad_rule_setting_is_refused_naming_it(
    tmp_path: Path, rules: str, complaint: str
) -> None:
    (tmp_path / "sites.yaml").write_text("sites: []\n", encoding="utf-8")
    path = tmp_path / "alerts.yaml"
    path.write_text(f"sites: sites.yaml\nrules:\n  {rules}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_with_directory(path, AlertsConfig)
    assert complaint in str(refused.value), str(refused.value)


# Through the engine -------------------------------------------------------------------------


class Room:
    """Publishes a site's status, air and battery readings as its gateway would."""

    def __init__(self, broker: MosquittoProcess, prefix: str, clock: RunningClock) -> None:
        self.tree, self.clock = TopicTree(prefix), clock
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, reading: GatewayStatus | Reading, *, retain: bool = False) -> None:
        if isinstance(reading, GatewayStatus):
            topic = self.tree.status(SITE, "gw1")
        else:
            topic = self.tree.reading(SITE, "gw1", reading.kind, reading.sensor)
        payload = encode_payload(reading.model_copy(update={"ts": self.clock()}))
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def has_value(engine: AlertEngine, table: str, key: str, value: float) -> None:
    levels = getattr(engine.sensors, table)(SITE)
    await wait_until(lambda: ("gw1", key) in levels and levels[("gw1", key)].value == value)


async def test_co2_high_fires_after_its_ten_minutes_and_resolves_below_the_hysteresis(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    clock = RunningClock(T0)
    config = alerts_config(mosquitto, topic_prefix, rules=_long_silence())
    assert config.rules.co2_high.for_ == timedelta(minutes=10)
    room = Room(mosquitto, topic_prefix, clock)
    try:
        async with (
            watching(mosquitto, topic_prefix) as watch,
            engine_running(config, clock=clock) as engine,
        ):
            room.send(online(), retain=True)
            room.send(co2(1240))
            await wait_until(lambda: CO2_ID in engine.book.active_ids())  # pending
            assert watch.states("co2_high") == []  # not fired: ten minutes have not passed
            clock.jump(T0 + timedelta(minutes=10))
            fired = await watch.until("co2_high", "firing")
            room.send(co2(950))  # between 900 and 1000: still high
            await has_value(engine, "co2", ROOM, 950)
            room.send(co2(880))
            resolved = await watch.until("co2_high", "resolved")
    finally:
        room.close()
    assert fired["summary_zh"] == f"{ROOM} 二氧化碳浓度 1240 ppm，超过 1000 ppm，请开窗通风"
    assert (fired["id"], fired["sensor"], fired["site_name"]) == (CO2_ID, ROOM, "淇河书屋·桃园站")
    assert resolved["id"] == CO2_ID
    assert watch.states("co2_high") == ["firing", "resolved"]


async def test_battery_low_fires_and_resolves_when_the_battery_is_replaced(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    clock = RunningClock(T0)
    config = alerts_config(mosquitto, topic_prefix)
    room = Room(mosquitto, topic_prefix, clock)
    try:
        async with (
            watching(mosquitto, topic_prefix) as watch,
            engine_running(config, clock=clock) as engine,
        ):
            room.send(online(), retain=True)
            room.send(battery(15))
            fired = await watch.until("battery_low", "firing")
            room.send(battery(22))  # above percent, below clear_above_percent: still low
            await has_value(engine, "battery", "front-door", 22)
            room.send(battery(100))
            await watch.until("battery_low", "resolved")
    finally:
        room.close()
    assert (fired["id"], fired["value"]) == (BATTERY_ID, 15.0)
    assert fired["summary_en"] == "sensor front-door battery low: 15%: replace it"
    assert watch.states("battery_low") == ["firing", "resolved"]


async def test_malformed_air_and_battery_payloads_are_refused_and_the_engine_carries_on(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    clock = RunningClock(T0)
    config = alerts_config(mosquitto, topic_prefix)
    room = Room(mosquitto, topic_prefix, clock)
    tree = TopicTree(topic_prefix)
    bad = {
        "air": b'{"schema": 1, "kind": "air", "site": "qibin-taoyuan", "gateway": "gw1",'
        b' "device": "d", "sensor": "reading-room-air", "ts": "2026-11-30T02:00:00Z"}',
        "battery": b"not json",
    }
    try:
        async with (
            watching(mosquitto, topic_prefix) as watch,
            engine_running(config, clock=clock) as engine,
        ):
            room.send(online(), retain=True)
            for kind, payload in bad.items():
                topic = tree.reading(SITE, "gw1", kind, "front-door" if kind == "battery" else ROOM)
                room.client.publish(topic, payload, qos=1).wait_for_publish(5)
            room.send(battery(10))
            await watch.until("battery_low", "firing")
            assert engine.sensors.co2(SITE) == {}
    finally:
        room.close()
