"""Every alert rule fires and resolves through real MQTT traffic: an emulated board or mock GPIO
pins, a real gateway, a real Mosquitto, and the engine publishing its alerts back to it."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from gpiozero.pins.mock import MockFactory
from pydantic import TypeAdapter

from central.alerts.config import AlertsConfig
from central.alerts.routes import RouteConfig, build_worker
from central.alerts.rules import Condition, Context, evaluate
from central.facts import FactStore
from devstack import MosquittoProcess, free_port
from edge.config import GatewayConfig
from edge.gateway import Gateway
from qihe.contract import DoorReading, GatewayStatus
from tests.alert_harness import (
    DEVICE,
    SITE,
    HostAtWill,
    RecordingRoute,
    alerts_config,
    board_site,
    directory,
    engine_running,
    watching,
)
from tests.clocks import RunningClock
from tests.mqtt_helpers import GatewayProcess, running, wait_until

pytestmark = pytest.mark.integration


async def test_a_stuck_seat_reported_by_its_board_fires_device_fault_and_resolves(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    config = alerts_config(mosquitto, topic_prefix)
    async with (
        watching(mosquitto, topic_prefix) as watch,
        engine_running(config),
        board_site(mosquitto, topic_prefix, tmp_path, emulator={"stuck_report_after": "PT1S"}) as (
            board,
            _,
        ),
    ):
        board.set_stuck(2)
        fired = await watch.until("device_fault", "firing")
        board.set_stuck(2, False)
        resolved = await watch.until("device_fault", "resolved")

    assert fired["labels"]["code"] == "stuck"
    assert fired["sensor"] == f"{DEVICE}.2"
    assert fired["site_name"] == "淇河书屋·桃园站"
    assert fired["summary_zh"] == f"座位传感器 {DEVICE}.2 报告故障：卡住"
    assert resolved["id"] == fired["id"]
    assert watch.states("device_fault") == ["firing", "resolved"]


async def test_a_seat_occupied_too_long_fires_seat_stuck_and_resolves_when_it_frees(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    config = alerts_config(
        mosquitto, topic_prefix, rules={"seat_stuck": {"occupied_longer_than": 2}}
    )
    async with (
        watching(mosquitto, topic_prefix) as watch,
        engine_running(config),
        board_site(mosquitto, topic_prefix, tmp_path) as (board, _),
    ):
        board.set_seat(3, True)
        fired = await watch.until("seat_stuck", "firing")
        board.set_seat(3, False)
        await watch.until("seat_stuck", "resolved")

    assert fired["sensor"] == f"{DEVICE}.3"
    assert watch.states("seat_stuck") == ["firing", "resolved"]


async def test_a_seat_occupied_after_closing_time_fires_seat_stuck(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    closed = directory(opening_hours={"daily": "closed"})
    config = alerts_config(mosquitto, topic_prefix, rules={"seat_stuck": {"closed_grace": 1}})
    async with (
        watching(mosquitto, topic_prefix) as watch,
        engine_running(config, closed),
        board_site(mosquitto, topic_prefix, tmp_path) as (board, _),
    ):
        board.set_seat(4, True)
        fired = await watch.until("seat_stuck", "firing")
        board.set_seat(4, False)
        await watch.until("seat_stuck", "resolved")

    assert fired["summary_en"] == f"seat {DEVICE}.4 still occupied after closing time"


async def test_a_board_that_goes_silent_fires_device_silent_and_resolves_when_heard(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    config = alerts_config(mosquitto, topic_prefix, rules={"device_silent": {"missed_reports": 2}})
    async with (
        watching(mosquitto, topic_prefix) as watch,
        engine_running(config),
        board_site(mosquitto, topic_prefix, tmp_path, emulator={"report_interval_s": 1}) as (
            board,
            _,
        ),
    ):
        await asyncio.sleep(1.5)  # its HELLO and first heartbeat have arrived
        board.set_silent(True)
        fired = await watch.until("device_silent", "firing")
        board.set_silent(False)
        await watch.until("device_silent", "resolved")

    assert fired["device"] == DEVICE
    assert fired["severity"] == "warning"


async def test_a_low_supply_fires_supply_low_and_only_a_clear_recovery_resolves_it(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    config = alerts_config(mosquitto, topic_prefix, rules={"supply_low": {"for": 0}})
    async with (
        watching(mosquitto, topic_prefix) as watch,
        engine_running(config),
        board_site(mosquitto, topic_prefix, tmp_path, emulator={"report_interval_s": 1}) as (
            board,
            _,
        ),
    ):
        board.set_supply(3250)
        fired = await watch.until("supply_low", "firing")
        board.set_supply(3450)  # above the firing level, below the clearing level: hysteresis
        await asyncio.sleep(3)
        hovering = watch.states("supply_low")
        board.set_supply(4900)
        await watch.until("supply_low", "resolved")

    assert fired["value"] == 3.25
    assert hovering == ["firing"]
    assert watch.states("supply_low") == ["firing", "resolved"]


async def test_noise_on_the_serial_link_fires_link_errors_and_resolves_when_it_stops(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    config = alerts_config(
        mosquitto,
        topic_prefix,
        rules={"link_errors": {"for": 0, "errors_per_minute": 30, "clear_below_per_minute": 5}},
    )
    async with (
        watching(mosquitto, topic_prefix) as watch,
        engine_running(config),
        board_site(mosquitto, topic_prefix, tmp_path, emulator={"report_interval_s": 1}) as (
            board,
            _,
        ),
    ):
        board.set_noise(0.5)
        fired = await watch.until("link_errors", "firing")
        board.set_noise(0.0)
        await watch.until("link_errors", "resolved")

    assert fired["value"] > 30
    assert fired["device"] == DEVICE


async def test_a_killed_gateway_fires_gateway_offline_and_its_restart_resolves_it(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort

    config = alerts_config(mosquitto, topic_prefix, rules={"gateway_offline": {"for": 0}})
    board = BookHouseEmulator(EmulatorConfig(device_id=DEVICE, seats=6, simulate=False, speed=1))
    link = tmp_path / "usb-qihe_board"
    async with (
        watching(mosquitto, topic_prefix) as watch,
        engine_running(config) as engine,
        PtyPort(link) as port,
    ):

        def online() -> bool:
            site = engine.facts.sites.get(SITE)
            return site is not None and site.gateways["gw1"].status == "online"

        async with (
            GatewayProcess(
                mosquitto, topic_prefix, tmp_path, link, site=SITE, device=DEVICE
            ) as gateway,
            board.attach(port),
        ):
            await wait_until(online, timeout=30)
            gateway.signal(signal.SIGKILL)
            fired = await watch.until("gateway_offline", "firing")
        async with GatewayProcess(
            mosquitto, topic_prefix, tmp_path, link, site=SITE, device=DEVICE
        ):
            await watch.until("gateway_offline", "resolved")

    assert fired["summary_zh"] == "网关 gw1 离线"
    assert fired["severity"] == "critical"


async def test_a_door_left_open_fires_door_open_and_resolves_when_shut(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    factory = MockFactory()
    gateway = Gateway(gpio_gateway(mosquitto, topic_prefix, tmp_path), pin_factory=factory)
    config = alerts_config(mosquitto, topic_prefix, rules={"door_open": {"open_longer_than": 2}})
    async with watching(mosquitto, topic_prefix) as watch, engine_running(config), running(gateway):
        await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
        door = factory.pin(17)
        door.drive_high()  # the reed contact opens
        fired = await watch.until("door_open", "firing")
        door.drive_low()
        await watch.until("door_open", "resolved")

    assert fired["sensor"] == "entrance"


async def test_a_door_open_outside_opening_hours_fires_door_open_after_hours(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    factory = MockFactory()
    gateway = Gateway(gpio_gateway(mosquitto, topic_prefix, tmp_path), pin_factory=factory)
    closed = directory(opening_hours={"daily": "closed"})
    config = alerts_config(mosquitto, topic_prefix, rules={"door_open_after_hours": {"grace": 1}})
    async with (
        watching(mosquitto, topic_prefix) as watch,
        engine_running(config, closed),
        running(gateway),
    ):
        await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
        factory.pin(17).drive_high()
        fired = await watch.until("door_open_after_hours", "firing")
        factory.pin(17).drive_low()
        await watch.until("door_open_after_hours", "resolved")

    assert fired["summary_en"] == "door entrance open outside opening hours"


def gpio_gateway(
    broker: MosquittoProcess, prefix: str, folder: Path, **extra: Any
) -> GatewayConfig:
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
            "link_report_interval": 0.5,
            **extra,
        }
    )  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "bad", "good", "value"),
    [
        ("disk_low", {"disk_free_bytes": 2 << 30}, {"disk_free_bytes": 20 << 30}, 6.2),
        ("memory_low", {"mem_available_bytes": 200 << 20}, {"mem_available_bytes": 3 << 30}, 4.9),
        ("cpu_hot", {"cpu_temp_c": 81.5}, {"cpu_temp_c": 52.0}, 81.5),
    ],
)
async def test_the_gateways_host_health_fires_and_resolves_its_rule(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    rule: str,
    bad: dict[str, Any],
    good: dict[str, Any],
    value: float,
) -> None:
    host = HostAtWill()
    config = alerts_config(mosquitto, topic_prefix, rules={rule: {"for": 0}})
    async with (
        watching(mosquitto, topic_prefix) as watch,
        engine_running(config),
        board_site(mosquitto, topic_prefix, tmp_path, system_probe=host),
    ):
        host.set(**bad)
        fired = await watch.until(rule, "firing")
        host.set(**good)
        await watch.until(rule, "resolved")

    assert fired["value"] == value
    assert fired["gateway"] == "gw1"


async def test_an_outbox_that_had_to_drop_readings_fires_outbox_backlog(
    tmp_path: Path, topic_prefix: str
) -> None:
    """The broker goes away; the gateway's small outbox fills and drops; when the broker is
    back the gateway's next outbox report shows the drops."""
    with MosquittoProcess(tmp_path / "broker") as broker:
        config = alerts_config(
            broker, topic_prefix, rules={"outbox_backlog": {"for": 0, "keep_firing_for": 10}}
        )
        async with (
            watching(broker, topic_prefix) as watch,
            engine_running(config) as engine,
            board_site(
                broker,
                topic_prefix,
                tmp_path,
                gateway={"outbox": {"max_readings": 100, "commit_interval": 0.05}},
            ) as (board, _),
        ):
            # The engine knows the outbox from before the outage (no drops yet).
            await wait_until(
                lambda: (
                    SITE in engine.facts.sites
                    and ("outbox", "gw1") in engine.facts.sites[SITE].gateways["gw1"].reports
                )
            )
            broker.stop()
            for n in range(300):  # far more changes than the outbox holds
                board.set_seat(1 + n % 6, (n // 6) % 2 == 0)
                await asyncio.sleep(0.005)
            await asyncio.sleep(1)
            broker.start()
            fired = await watch.until("outbox_backlog", "firing", timeout=40)
            await watch.until("outbox_backlog", "resolved", timeout=40)

    assert "丢弃" in fired["summary_zh"]


async def test_a_restarted_engine_sends_no_duplicate_for_an_alert_it_already_sent(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    config = alerts_config(
        mosquitto, topic_prefix, rules={"seat_stuck": {"occupied_longer_than": 1}}
    )
    first, second = RecordingRoute(), RecordingRoute()
    async with (
        watching(mosquitto, topic_prefix) as watch,
        board_site(mosquitto, topic_prefix, tmp_path) as (board, _),
    ):
        async with engine_running(config, workers=[first.worker()]):
            board.set_seat(5, True)
            await watch.until("seat_stuck", "firing")
            await wait_until(lambda: len(first.sent) == 1)
        async with engine_running(config, workers=[second.worker()]) as engine:
            await wait_until(lambda: engine.book.firing != [])
            await asyncio.sleep(2)  # several evaluations with the alert still firing
            assert second.sent == []
            board.set_seat(5, False)
            await wait_until(lambda: len(second.sent) == 1)

    assert [n.status for n in first.sent] == ["firing"]
    assert [(n.status, len(n.resolved)) for n in second.sent] == [("resolved", 1)]
    assert second.sent[0].resolved[0].id == first.sent[0].firing[0].id


async def test_a_silenced_site_shows_its_alert_on_mqtt_but_sends_nothing(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    # The engine and the gateway share a clock running into Hebi's New Year; so does the window.
    now = datetime(2026, 12, 31, 15, 59, tzinfo=UTC)
    clock = RunningClock(now)
    window = {
        "site": SITE,
        "starts_at": (now - timedelta(minutes=5)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "comment": "更换座位传感器 / replacing seat sensors",
    }
    route = RecordingRoute()
    config = alerts_config(
        mosquitto,
        topic_prefix,
        rules={"seat_stuck": {"occupied_longer_than": 1}},
        silences=[window],
    )
    async with (
        watching(mosquitto, topic_prefix) as watch,
        engine_running(config, workers=[route.worker()], clock=clock),
        board_site(mosquitto, topic_prefix, tmp_path, clock=clock) as (board, _),
    ):
        board.set_seat(2, True)
        fired = await watch.until("seat_stuck", "firing")
        await asyncio.sleep(1)

    assert fired["silenced"] is True
    assert route.sent == []


async def test_a_failing_webhook_does_not_hold_up_the_mqtt_alerts_or_another_route(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    dead = build_worker(
        TypeAdapter(RouteConfig).validate_python(
            {"type": "webhook", "name": "dead", "url": f"http://127.0.0.1:{free_port()}/hook",
             "timeout": 5, "max_attempts": 50}
        )
    )  # fmt: skip
    healthy = RecordingRoute()
    config = alerts_config(
        mosquitto, topic_prefix, rules={"seat_stuck": {"occupied_longer_than": 1}}
    )
    async with (
        watching(mosquitto, topic_prefix) as watch,
        engine_running(config, workers=[dead, healthy.worker()]),
        board_site(mosquitto, topic_prefix, tmp_path) as (board, _),
    ):
        board.set_seat(6, True)
        await watch.until("seat_stuck", "firing")
        await wait_until(lambda: len(healthy.sent) == 1)
        board.set_seat(6, False)
        await watch.until("seat_stuck", "resolved")
        await wait_until(lambda: len(healthy.sent) == 2)
        assert dead.stats.delivered == 0


# -- local midnights: the day, the month and the year turn at 16:00 UTC in Hebi ------------------

HEBI = ZoneInfo("Asia/Shanghai")
MIDNIGHTS = [
    pytest.param(datetime(2026, 11, 28, 16, tzinfo=UTC), id="local-midnight"),
    pytest.param(datetime(2026, 11, 30, 16, tzinfo=UTC), id="month-end"),
    pytest.param(datetime(2026, 12, 31, 16, tzinfo=UTC), id="year-end"),
]


def door_conditions(hours: str, opened_at: datetime, now: datetime) -> list[Condition]:
    """The door conditions at ``now`` of a site open daily ``hours``, its entrance open
    since ``opened_at`` and its gateway heard from at ``now``."""
    facts = FactStore()
    door = DoorReading(
        site=SITE, gateway="gw1", device="gpio", sensor="entrance", open=True, ts=opened_at
    )
    facts.apply(door, opened_at, retained=False)
    status = GatewayStatus(site=SITE, gateway="gw1", state="online", session=1, ts=now)
    facts.apply(status, now, retained=False)
    config = AlertsConfig.model_validate({"sites": "unused.yaml"})  # 10 min; after hours 5 min
    ctx = Context(
        rules=config.rules,
        directory=directory(opening_hours={"daily": hours}),
        facts=facts,
        now=now,
        listening_since=opened_at,
        active=frozenset(),
    )
    return [c for c in evaluate(ctx) if c.rule in ("door_open", "door_open_after_hours")]


@pytest.mark.parametrize("midnight", MIDNIGHTS)
def test_a_door_open_across_closing_at_midnight_fires_once_the_grace_has_passed(
    midnight: datetime,
) -> None:
    """Open until 24:00 local: closed from 16:00 UTC, whatever day, month or year begins."""
    opened = midnight - timedelta(minutes=4)
    before = [midnight - timedelta(seconds=1), midnight + timedelta(minutes=5, seconds=-1)]
    assert [door_conditions("08:00-24:00", opened, now) for now in before] == [[], []]
    [fired] = door_conditions("08:00-24:00", opened, midnight + timedelta(minutes=5))
    assert (fired.summary_zh, fired.summary_en) == (
        "闭馆时间门 entrance 仍打开",
        "door entrance open outside opening hours",
    )
    assert fired.value == 9.0  # minutes open


@pytest.mark.parametrize("midnight", MIDNIGHTS)
def test_a_site_open_all_day_is_not_closed_at_midnight(midnight: datetime) -> None:
    opened = midnight - timedelta(minutes=4)
    assert door_conditions("00:00-24:00", opened, midnight + timedelta(minutes=5)) == []
    [too_long] = door_conditions("00:00-24:00", opened, midnight + timedelta(minutes=6))
    assert too_long.summary_en == "door entrance open for 10 min"


async def test_a_door_left_open_into_the_new_year_fires_door_open_after_hours(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    """The gateway and the engine share a clock that runs into Hebi's New Year (2026-12-31
    16:00 UTC); the site closes at midnight; the door, opened at 23:59:58, fires after 1 s."""
    new_year = datetime(2026, 12, 31, 16, tzinfo=UTC)
    clock = RunningClock(new_year - timedelta(minutes=1))
    factory = MockFactory()
    gateway = Gateway(
        gpio_gateway(mosquitto, topic_prefix, tmp_path), pin_factory=factory, clock=clock
    )
    until_midnight = directory(opening_hours={"daily": "08:00-24:00"})
    config = alerts_config(mosquitto, topic_prefix, rules={"door_open_after_hours": {"grace": 1}})
    async with (
        watching(mosquitto, topic_prefix) as watch,
        engine_running(config, until_midnight, clock=clock) as engine,
        running(gateway),
    ):
        await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
        clock.jump(new_year - timedelta(seconds=2))  # less than a gateway's silence
        factory.pin(17).drive_high()
        fired = await watch.until("door_open_after_hours", "firing")
        opened_at = engine.facts.sites[SITE].doors[("gw1", "entrance")].since
        factory.pin(17).drive_low()
        await watch.until("door_open_after_hours", "resolved")

    assert fired["summary_en"] == "door entrance open outside opening hours"
    assert opened_at.astimezone(HEBI).date().isoformat() == "2026-12-31"
    starts_at = datetime.fromisoformat(fired["starts_at"])
    assert starts_at >= new_year + timedelta(seconds=1)
    assert starts_at.astimezone(HEBI).date().isoformat() == "2027-01-01"
    assert watch.states("door_open_after_hours") == ["firing", "resolved"]


@pytest.mark.parametrize("midnight", MIDNIGHTS)
def test_closed_time_counts_back_across_the_local_midnight(midnight: datetime) -> None:
    """Closed since 20:00 the day before: at 00:30 that is 4.5 h, into the previous month or
    year alike; open until 24:00 it is 30 min."""
    hours = directory(opening_hours={"daily": "08:00-20:00"}).sites[0].hours()
    late = directory(opening_hours={"daily": "08:00-24:00"}).sites[0].hours()
    local = (midnight + timedelta(minutes=30)).astimezone(HEBI)

    assert (local.hour, local.minute) == (0, 30)
    assert hours.closed_for(local) == timedelta(hours=4, minutes=30)
    assert late.closed_for(local) == timedelta(minutes=30)
    assert late.closed_for((midnight - timedelta(microseconds=1)).astimezone(HEBI)) is None
