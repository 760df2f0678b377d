"""The fleet view in the running live service, fed through the real Mosquitto: the operator-only
API, a real gateway's throttling and uptime reaching it, and ``qihe fleet`` reading it."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from gpiozero.pins.mock import MockFactory

from central.live.service import LiveService
from central.sites import SiteDirectory
from devstack import MosquittoProcess
from edge.config import GatewayConfig
from edge.gateway import Gateway
from edge.system import HostProbe
from qihe.contract import (
    ConfigReport,
    GatewayStatus,
    LinkReading,
    OutboxReading,
    SystemReading,
    TopicTree,
    encode_payload,
)
from tests.clocks import RunningClock
from tests.mqtt_helpers import running, wait_until
from tests.test_live_service import live_config, serving

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "fleet-operator-token-0123"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
DIRECTORY = SiteDirectory.model_validate(
    {
        "sites": [
            {
                "id": "qibin-taoyuan",
                "name": "淇河书屋·桃园站",
                "district": "淇滨区",
                "district_en": "Qibin",
            },
            {
                "id": "shancheng-xinyuan2",
                "name": "淇河书屋·馨苑二区站",
                "district": "山城区",
                "district_en": "Shancheng",
            },
            {
                "id": "shifanqu-fanhuali",
                "name": "淇河书屋·繁花里站",
                "district": "市城乡一体化示范区",
                "district_en": "Demonstration Zone",
            },
            {
                "id": "qixian-qiyuan-daycare",
                "name": "淇县淇园社区日间照料中心",
                "kind": "day_care",
                "district": "淇县",
                "district_en": "Qi County",
            },
        ]
    }
)


class FleetPublisher:
    """Speaks for gateways: their status and periodic reports, where a gateway would."""

    def __init__(self, broker: MosquittoProcess, prefix: str) -> None:
        self.tree = TopicTree(prefix)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def raw(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def status(
        self,
        site: str,
        state: str = "online",
        *,
        gateway: str = "gw1",
        version: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        now = datetime.now(UTC)
        status = GatewayStatus(
            site=site, gateway=gateway, state=state, session=1, ts=now,  # type: ignore[arg-type]
            version=version, config=None if config is None else ConfigReport(at=now, **config),
        )  # fmt: skip
        self.raw(self.tree.status(site, gateway), encode_payload(status), retain=True)

    def reports(
        self, site: str, *, gateway: str = "gw1", queued: int = 0, lost: int = 0, **system: Any
    ) -> None:
        """One round of a gateway's periodic reports: system, outbox and one link."""
        own = {"site": site, "gateway": gateway, "device": "gateway", "sensor": gateway}
        now = datetime.now(UTC)
        reading = SystemReading(
            **own, ts=now, **{
                "disk_free_bytes": 9_000_000_000, "disk_total_bytes": 30_000_000_000,
                "mem_available_bytes": 1_500_000_000, "mem_total_bytes": 4_000_000_000,
                "cpu_temp_c": 50.0, "load_1m": 0.3, "throttled": 0,
                "host_uptime_s": 90_000, "process_uptime_s": 7_200,
            } | system,
        )  # fmt: skip
        outbox = OutboxReading(
            **own, ts=now, queued=queued, dropped_periodic=2, dropped_state=0, dropped_clock=0
        )
        link = LinkReading(
            site=site, gateway=gateway, device="board-a", sensor="board-a", ts=now, frames=900,
            crc_errors=1, malformed=0, lost=lost, duplicates=0, reconnects=0,
        )  # fmt: skip
        for message in (reading, outbox, link):
            topic = self.tree.reading(site, gateway, message.kind, message.sensor)
            self.raw(topic, encode_payload(message))


@pytest.fixture
def fleet_publisher(mosquitto: MosquittoProcess, topic_prefix: str) -> Iterator[FleetPublisher]:
    publisher = FleetPublisher(mosquitto, topic_prefix)
    yield publisher
    publisher.close()


def fleet_city(publisher: FleetPublisher) -> None:
    """Four gateways in four districts: one under-volted now, one hot, one offline."""
    applied = {"version": "v12", "hash": "3f2a9c0d1e4b", "state": "applied"}
    publisher.status("qibin-taoyuan", version="0.2.0", config=applied)
    publisher.reports("qibin-taoyuan", queued=3, cpu_temp_c=55.5)
    rejected = {"hash": "9b1c44e0a7d2", "state": "rejected", "error": "serial.0.path: required"}
    publisher.status("shancheng-xinyuan2", version="0.1.0", config=rejected)
    publisher.reports("shancheng-xinyuan2", queued=1200, lost=7, cpu_temp_c=81.0, throttled=0x50005)
    publisher.status("shifanqu-fanhuali")
    publisher.reports("shifanqu-fanhuali", cpu_temp_c=47.0, throttled=0x50000)
    publisher.status("qixian-qiyuan-daycare", "offline")


async def test_the_fleet_api_is_for_operators_and_lists_every_gateway(
    mosquitto: MosquittoProcess, topic_prefix: str, fleet_publisher: FleetPublisher
) -> None:
    config = live_config(mosquitto, topic_prefix, http={"operator_token": TOKEN})
    async with serving(config, DIRECTORY) as service:
        fleet_city(fleet_publisher)
        await wait_until(lambda: len(service.fleet_state) == 4)
        await wait_until(lambda: links_of(service, "shifanqu-fanhuali") == 1)
        async with httpx.AsyncClient(base_url=service.url) as http:
            refused = await http.get("/api/v1/fleet")
            wrong = await http.get("/api/v1/fleet", headers={"Authorization": "Bearer nope"})
            answer = await http.get("/api/v1/fleet", params={"sort": "-cpu_temp"}, headers=BEARER)
            shancheng = await http.get(
                "/api/v1/fleet", params={"district": "Shancheng"}, headers=BEARER
            )
            bad_sort = await http.get("/api/v1/fleet", params={"sort": "name"}, headers=BEARER)
            page = await http.get("/fleet")

    assert (refused.status_code, wrong.status_code) == (401, 401)
    assert refused.json() == {"detail": "operator token required"}
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    fleet = answer.json()
    assert [(r["site"], r["cpu_temp_c"], r["stale"]) for r in fleet["gateways"]] == [
        ("shancheng-xinyuan2", 81.0, False),
        ("qibin-taoyuan", 55.5, False),
        ("shifanqu-fanhuali", 47.0, False),
        ("qixian-qiyuan-daycare", None, True),
    ]
    hot = fleet["gateways"][0]
    assert (hot["outbox"], hot["drops"], hot["link_errors"], hot["uptime_s"]) == (1200, 2, 8, 7200)
    assert (hot["power"], hot["power_flags"][:2]) == ("now", ["under_voltage", "throttled"])
    assert (fleet["total"], fleet["stale"]) == (4, 1)
    assert (hot["version"], hot["config_hash"], hot["config_state"]) == (
        "0.1.0",
        "9b1c44e0a7d2",
        "rejected",
    )
    assert (fleet["gateways"][1]["version"], fleet["gateways"][1]["config_version"]) == (
        "0.2.0",
        "v12",
    )
    assert fleet["districts"] == ["淇滨区", "山城区", "市城乡一体化示范区", "淇县"]
    assert [r["gateway"] for r in shancheng.json()["gateways"]] == ["gw1"]
    assert bad_sort.status_code == 422
    # The page is static and holds no data: it asks for the token itself, as the operator page.
    assert page.status_code == 200 and "网关一览" in page.text


async def test_a_gateway_silent_for_three_intervals_turns_stale_in_the_api(
    mosquitto: MosquittoProcess, topic_prefix: str, fleet_publisher: FleetPublisher
) -> None:
    clock = RunningClock(datetime(2026, 11, 28, 1, 0, tzinfo=UTC))
    async with serving(live_config(mosquitto, topic_prefix), DIRECTORY, clock=clock) as service:
        fleet_publisher.status("qibin-taoyuan")
        fleet_publisher.reports("qibin-taoyuan")
        await wait_until(lambda: links_of(service, "qibin-taoyuan") == 1)
        async with httpx.AsyncClient(base_url=service.url) as http:
            before = (await http.get("/api/v1/fleet")).json()["gateways"][0]
            clock.jump(clock() + timedelta(seconds=181))
            after = (await http.get("/api/v1/fleet")).json()["gateways"][0]

    assert (before["state"], before["stale"]) == ("online", False)
    assert (after["state"], after["stale"]) == ("online", True)


async def test_a_malformed_report_is_refused_and_the_fleet_keeps_the_last_good_one(
    mosquitto: MosquittoProcess, topic_prefix: str, fleet_publisher: FleetPublisher
) -> None:
    async with serving(live_config(mosquitto, topic_prefix), DIRECTORY) as service:
        fleet_publisher.reports("qibin-taoyuan", cpu_temp_c=52.0)
        await wait_until(lambda: links_of(service, "qibin-taoyuan") == 1)
        refused = service.refused
        topic = fleet_publisher.tree.reading("qibin-taoyuan", "gw1", "system", "gw1")
        fleet_publisher.raw(topic, b'{"schema": 1, "kind": "system", "throttled": "0x50005"}')
        await wait_until(lambda: service.refused == refused + 1)
        row = service.fleet(district=None, sort="site").gateways[0]

    assert (row.cpu_temp_c, row.throttled) == (52.0, 0)


async def test_a_real_gateway_on_a_pi_shows_its_throttling_and_uptime_in_qihe_fleet(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    # A Pi's firmware file, faked: under-volted and throttled now (0x50005).
    sysfs = tmp_path / "sys"
    firmware = sysfs / "devices" / "platform" / "soc" / "soc:firmware" / "get_throttled"
    firmware.parent.mkdir(parents=True)
    firmware.write_text("50005\n")
    (sysfs / "class").mkdir()
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    token_file, empty = tmp_path / "operator-token", tmp_path / "empty-token"
    token_file.write_text(f"{TOKEN}\n")
    empty.write_text("\n")
    gateway_config = GatewayConfig.model_validate(
        {
            "site": "qixian-qiyuan-daycare",
            "gateway": "gw1",
            "state_dir": state_dir,
            "broker": {
                "host": mosquitto.host,
                "port": mosquitto.port,
                "topic_prefix": topic_prefix,
            },
            "gpio": [{"pin": 17, "kind": "door", "sensor": "entrance", "debounce": 0.01}],
            "outbox": {"commit_interval": 0.02},
            "link_report_interval": 0.2,
        }
    )
    factory = MockFactory()
    gateway = Gateway(
        gateway_config, pin_factory=factory, system_probe=HostProbe(state_dir, sys=sysfs)
    )
    config = live_config(mosquitto, topic_prefix, http={"operator_token": TOKEN})
    try:
        async with serving(config, DIRECTORY) as service:

            def row() -> Any:
                rows = service.fleet(district=None, sort="site").gateways
                return rows[0] if rows else None

            async with running(gateway):
                await wait_until(lambda: row() is not None and row().power == "now")
                live = await qihe_fleet(service.url, "--district", "淇县")
            await wait_until(lambda: row().state == "offline")
            stopped = await qihe_fleet(service.url)
            as_json = await qihe_fleet(service.url, "--json")
            no_token = await qihe_fleet(service.url, token=None)
            via_file = await qihe_fleet(service.url, "--token-file", str(token_file), token=None)
            empty_file = await qihe_fleet(service.url, "--token-file", str(empty), token=None)
            bad_sort = await qihe_fleet(service.url, "--sort", "name")
    finally:
        factory.reset()

    code, out, err = live
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("站点 Site")
    assert "qixian-qiyuan-daycare  gw1" in lines[2]
    assert "淇县" in lines[2] and "在线 online" in lines[2]
    assert "⚠ 欠压 under-voltage, 降频 throttled" in lines[2]
    assert lines[-1] == "共 1 台网关，显示 1 台，失联 0 台 · 1 gateways, 1 shown, 0 stale"
    # The host's uptime is this machine's (since boot, as /proc/uptime counts it).
    assert 0 < row().host_uptime_s <= time.clock_gettime(time.CLOCK_BOOTTIME)
    assert row().uptime_s is not None

    code, out, _ = stopped
    assert code == 0
    assert "⚠ 离线 offline" in out.splitlines()[2]
    assert out.splitlines()[-1].endswith("1 gateways, 1 shown, 1 stale")
    assert as_json[0] == 0 and '"power":"now"' in as_json[1]
    assert no_token[0] == 1
    assert no_token[2].strip() == (
        "qihe fleet: 需要操作员令牌 operator token required or wrong: "
        "--token-file FILE or $QIHE_OPERATOR_TOKEN"
    )
    assert via_file[0] == 0 and "⚠ 离线 offline" in via_file[1]
    assert empty_file[0] == 1
    assert empty_file[2] == f"qihe fleet: 令牌文件为空 the token file {empty} is empty\n"
    assert bad_sort[0] == 2 and "cannot sort by 'name'" in bad_sort[2]


async def test_qihe_fleet_says_in_one_line_when_the_live_service_is_not_there() -> None:
    code, out, err = await qihe_fleet("http://127.0.0.1:9/", token=None)
    assert (code, out) == (1, "")
    assert err.startswith("qihe fleet: 无法连接实时服务 cannot reach the live service at ")
    assert len(err.strip().splitlines()) == 1


def links_of(service: LiveService, site: str) -> int | None:
    """How many serial links the fleet row of ``site`` counts (None: no row yet)."""
    rows = service.fleet(district=None, sort="site").gateways
    return next((row.links for row in rows if row.site == site), None)


async def qihe_fleet(url: str, *args: str, token: str | None = TOKEN) -> tuple[int, str, str]:
    """Run the real ``qihe fleet`` command against ``url``: (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in ("QIHE_OPERATOR_TOKEN", "QIHE_LIVE_URL")}
    if token is not None:
        env["QIHE_OPERATOR_TOKEN"] = token
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "qihe_cli.main", "fleet", "--url", url, *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
