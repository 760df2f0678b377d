"""``door_open_after_hours``: a door open while its site is closed by the holiday calendar.

A day-care centre open 08:00-17:30 on working days: on the Spring Festival holiday (Monday
2026-02-16) its door open at 10:00 fires; at the same time on the 调休 Saturday 2026-02-14 (a
working day, the centre open) it does not, nor on an ordinary working day; on an ordinary
Saturday it does. The rules are evaluated at given moments; one test runs the real engine,
gateway (mock GPIO) and Mosquitto on a clock set to the holiday.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from gpiozero.pins.mock import MockFactory

from central.alerts.config import AlertsConfig
from central.alerts.rules import Condition, Context, evaluate
from central.facts import FactStore
from central.sites import SiteDirectory, load_directory
from devstack import MosquittoProcess
from edge.config import GatewayConfig
from edge.gateway import Gateway
from qihe.contract import DoorReading, GatewayStatus
from tests.alert_harness import alerts_config, engine_running, watching
from tests.clocks import RunningClock
from tests.mqtt_helpers import running

ROOT = Path(__file__).resolve().parent.parent
HEBI = ZoneInfo("Asia/Shanghai")
SITE = "qixian-qiyuan-daycare"

CENTRE: dict[str, Any] = {
    "id": SITE,
    "name": "淇县淇园社区日间照料中心",
    "kind": "day_care",  # closed on public holidays, open on 调休 days (the defaults)
    "opening_hours": {"mon-fri": "08:00-17:30", "sat-sun": "closed"},
    "doors": [{"gateway": "gw1", "sensor": "entrance", "label": "入口 Entrance"}],
}


def centre_directory(folder: Path, **change: Any) -> SiteDirectory:
    document = {"calendar": str(ROOT / "config" / "calendar"), "sites": [{**CENTRE, **change}]}
    path = folder / "sites.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return load_directory(path, path)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=HEBI)


def door_conditions(sites: SiteDirectory, opened_at: datetime, now: datetime) -> list[Condition]:
    """The door conditions at ``now``, the entrance open since ``opened_at`` and its gateway
    heard from at ``now`` (defaults: door_open 10 min, door_open_after_hours 5 min)."""
    facts = FactStore()
    door = DoorReading(
        site=SITE, gateway="gw1", device="gpio", sensor="entrance", open=True, ts=opened_at
    )
    facts.apply(door, opened_at, retained=False)
    status = GatewayStatus(site=SITE, gateway="gw1", state="online", session=1, ts=now)
    facts.apply(status, now, retained=False)
    config = AlertsConfig.model_validate({"sites": "unused.yaml", "rules": {"door_open": {
        "enabled": False}}})  # fmt: skip
    ctx = Context(
        rules=config.rules,
        directory=sites,
        facts=facts,
        now=now,
        listening_since=opened_at,
        active=frozenset(),
    )
    return [c for c in evaluate(ctx) if c.sensor == "entrance"]


SPRING_FESTIVAL_MONDAY = date(2026, 2, 16)
MAKEUP_SATURDAY = date(2026, 2, 14)


def test_a_door_open_on_the_spring_festival_holiday_fires_saying_why(tmp_path: Path) -> None:
    sites = centre_directory(tmp_path)
    opened = at(SPRING_FESTIVAL_MONDAY, 10)

    assert door_conditions(sites, opened, opened + timedelta(minutes=4, seconds=59)) == []
    [fired] = door_conditions(sites, opened, opened + timedelta(minutes=5))

    assert fired.rule == "door_open_after_hours"
    assert fired.labels == {"site": SITE, "gateway": "gw1", "sensor": "entrance"}
    assert (fired.summary_zh, fired.summary_en) == (
        "闭馆时间门 entrance 仍打开（春节假期）",
        "door entrance open outside opening hours (Spring Festival holiday)",
    )
    assert fired.value == 5.0


def test_the_same_door_at_the_same_time_on_the_makeup_saturday_does_not_fire(
    tmp_path: Path,
) -> None:
    sites = centre_directory(tmp_path)
    opened = at(MAKEUP_SATURDAY, 10)

    assert door_conditions(sites, opened, opened + timedelta(minutes=9)) == []


@pytest.mark.parametrize(
    ("day", "fires"),
    [
        pytest.param(date(2026, 2, 7), True, id="an-ordinary-saturday"),
        pytest.param(date(2026, 2, 28), False, id="the-makeup-saturday-after"),
        pytest.param(date(2026, 2, 23), True, id="the-last-day-off"),
        pytest.param(date(2026, 2, 24), False, id="the-first-working-day"),
        pytest.param(date(2026, 1, 4), False, id="the-makeup-sunday-of-new-year"),
    ],
)
def test_at_ten_in_the_morning_the_door_fires_only_when_the_calendar_closes_the_centre(
    tmp_path: Path, day: date, fires: bool
) -> None:
    sites = centre_directory(tmp_path)
    opened = at(day, 10)

    found = door_conditions(sites, opened, opened + timedelta(minutes=6))

    assert [c.rule for c in found] == (["door_open_after_hours"] if fires else [])


def test_after_closing_time_on_the_makeup_saturday_the_door_fires_without_a_holiday_note(
    tmp_path: Path,
) -> None:
    sites = centre_directory(tmp_path)
    opened = at(MAKEUP_SATURDAY, 17, 30)

    [fired] = door_conditions(sites, opened, opened + timedelta(minutes=5))

    assert fired.summary_zh == "闭馆时间门 entrance 仍打开（春节调休上班）"


def test_a_temporary_closure_fires_with_its_reason(tmp_path: Path) -> None:
    closure = {"from": "2026-03-02", "to": "2026-03-03", "reason": "设备检修",
               "reason_en": "equipment maintenance"}  # fmt: skip
    sites = centre_directory(tmp_path, closures=[closure])
    opened = at(date(2026, 3, 2), 10)  # a Monday

    [fired] = door_conditions(sites, opened, opened + timedelta(minutes=5))

    assert fired.summary_en == "door entrance open outside opening hours (equipment maintenance)"


def test_the_grace_is_configurable(tmp_path: Path) -> None:
    sites = centre_directory(tmp_path)
    opened = at(SPRING_FESTIVAL_MONDAY, 10)
    config = AlertsConfig.model_validate(
        {"sites": "unused.yaml", "rules": {"door_open_after_hours": {"grace": "PT30M"}}}
    )
    assert config.rules.door_open_after_hours.grace == timedelta(minutes=30)
    facts = FactStore()
    facts.apply(
        DoorReading(site=SITE, gateway="gw1", device="gpio", sensor="entrance", open=True,
                    ts=opened),
        opened, retained=False,
    )  # fmt: skip
    found = []
    for minutes in (29, 30):
        now = opened + timedelta(minutes=minutes)
        status = GatewayStatus(site=SITE, gateway="gw1", state="online", session=1, ts=now)
        facts.apply(status, now, retained=False)
        ctx = Context(config.rules, sites, facts, now, opened, frozenset())
        found.append([c.rule for c in evaluate(ctx) if c.rule == "door_open_after_hours"])

    assert found == [[], ["door_open_after_hours"]]


def gpio_gateway(broker: MosquittoProcess, prefix: str, folder: Path) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "site": SITE,
            "gateway": "gw1",
            "state_dir": folder / "state",
            "broker": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
            "gpio": [
                {"pin": 17, "kind": "door", "sensor": "entrance", "active_high": True,
                 "debounce": 0.01},
            ],
        }
    )  # fmt: skip


@pytest.mark.integration
async def test_through_the_broker_a_door_opened_on_the_holiday_fires_and_resolves(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    """The gateway and the engine share a clock set to 10:00 on the Spring Festival Monday."""
    clock = RunningClock(at(SPRING_FESTIVAL_MONDAY, 10))
    factory = MockFactory()
    gateway = Gateway(
        gpio_gateway(mosquitto, topic_prefix, tmp_path), pin_factory=factory, clock=clock
    )
    rules = {"door_open_after_hours": {"grace": 1}}
    config = alerts_config(mosquitto, topic_prefix, rules=rules)
    async with (
        watching(mosquitto, topic_prefix) as watch,
        engine_running(config, centre_directory(tmp_path), clock=clock),
        running(gateway),
    ):
        await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
        factory.pin(17).drive_high()
        fired = await watch.until("door_open_after_hours", "firing")
        factory.pin(17).drive_low()
        await watch.until("door_open_after_hours", "resolved")

    assert fired["site_name"] == "淇县淇园社区日间照料中心"
    assert fired["summary_zh"] == "闭馆时间门 entrance 仍打开（春节假期）"
    assert watch.states("door_open_after_hours") == ["firing", "resolved"]
    assert watch.states("door_open") == []
