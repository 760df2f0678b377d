"""The operator page's commands: the live service's command endpoint against a real Mosquitto,
a gateway and an emulated board; operators only, off unless configured."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from central.live.config import LiveConfig
from central.sites import SiteDirectory
from devstack import MosquittoProcess
from qihe.contract import parse_command
from tests.mqtt_helpers import Recorder
from tests.test_commands import DEVICE, SITE, a_site
from tests.test_live_service import serving

pytestmark = pytest.mark.integration

TOKEN = "qihe-ops-token-7f3a9c"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
DIRECTORY = SiteDirectory.model_validate(
    {
        "sites": [
            {
                "id": SITE,
                "name": "淇河书屋·桃园站",
                "district": "淇滨区",
                "opening_hours": {"daily": "00:00-24:00"},
                "seat_grids": [{"gateway": "gw1", "device": DEVICE, "count": 4, "cols": 2}],
            }
        ]
    }
)


def live_config(broker: MosquittoProcess, prefix: str, *, commands: bool = True) -> LiveConfig:
    mqtt = {"host": broker.host, "port": broker.port, "topic_prefix": prefix}
    extra: dict[str, Any] = {}
    if commands:
        extra["commands"] = {"mqtt": mqtt, "operator": "ops-desk", "timeout": 10}
    return LiveConfig.model_validate(
        {
            "sites": "unused.yaml",
            "mqtt": mqtt,
            "http": {"port": 0, "operator_token": TOKEN},
            "refresh_interval": 0.1,
            **extra,
        }
    )


async def test_an_operator_identifies_a_board_from_the_page_and_sees_the_round_trip(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="central.commands.sender")
    url = f"/api/v1/commands/{SITE}/gw1/{DEVICE}"
    commands = Recorder(mosquitto, f"{topic_prefix}/v1/+/+/cmd/+")
    try:
        async with (
            a_site(mosquitto, topic_prefix, tmp_path) as site,
            serving(live_config(mosquitto, topic_prefix), DIRECTORY) as service,
            httpx.AsyncClient(base_url=service.url, timeout=20) as http,
        ):
            assert (await http.get("/api/v1/commands", headers=BEARER)).json() == {"enabled": True}
            answer = await http.post(
                url, json={"command": "identify", "seconds": 5}, headers=BEARER
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert (body["result"], body["text"], body["by"]) == ("ok", "成功 ok", "ops-desk")
            assert body["round_trip_ms"] > 0
            assert site.emulator.board.counters.identifies == 1
            # The page's cookie works as the header does.
            http.cookies.set("qihe_operator", TOKEN)
            assert (await http.post(url, json={"command": "ping"})).json()["result"] == "ok"
    finally:
        commands.close()
    sent = [parse_command(m.payload) for m in commands.snapshot()]
    assert [(c.command, c.by) for c in sent] == [("identify", "ops-desk"), ("ping", "ops-desk")]
    logged = [r.getMessage() for r in caplog.records if r.name == "central.commands.sender"]
    assert any("identify 5" in line and "由 by ops-desk: ok" in line for line in logged)


async def test_commands_need_the_operator_token_and_reach_no_board_without_it(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    url = f"/api/v1/commands/{SITE}/gw1/{DEVICE}"
    async with (
        a_site(mosquitto, topic_prefix, tmp_path) as site,
        serving(live_config(mosquitto, topic_prefix), DIRECTORY) as service,
        httpx.AsyncClient(base_url=service.url, timeout=20) as http,
    ):
        anonymous = await http.post(url, json={"command": "reboot"})
        wrong = await http.post(
            url, json={"command": "reboot"}, headers={"Authorization": "Bearer nope"}
        )
        probe = await http.get("/api/v1/commands")
    assert anonymous.status_code == wrong.status_code == probe.status_code == 401
    assert site.emulator.board.counters.commands == 0


async def test_without_a_commands_account_the_endpoint_says_not_configured(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    config = live_config(mosquitto, topic_prefix, commands=False)
    async with (
        serving(config, DIRECTORY) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        enabled = await http.get("/api/v1/commands", headers=BEARER)
        answer = await http.post(
            f"/api/v1/commands/{SITE}/gw1/{DEVICE}", json={"command": "ping"}, headers=BEARER
        )
    assert enabled.json() == {"enabled": False}
    assert answer.status_code == 503
    assert answer.json() == {"detail": "命令未配置 commands not configured"}


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        pytest.param(f"{SITE}/gw1/{DEVICE}", {"command": "explode"}, 422, id="unknown-command"),
        pytest.param(f"{SITE}/gw1/{DEVICE}", {"command": "ping", "x": 1}, 422, id="extra-field"),
        pytest.param(
            f"{SITE}/gw1/{DEVICE}", {"command": "interval", "seconds": "60"}, 422, id="string"
        ),
        pytest.param(f"{SITE}/gw1/{DEVICE}", {"command": "interval"}, 422, id="no-seconds"),
        pytest.param(
            f"{SITE}/gw1/{DEVICE}", {"command": "identify", "seconds": 600}, 422, id="too-long"
        ),
        pytest.param(f"nowhere/gw1/{DEVICE}", {"command": "ping"}, 404, id="unknown-site"),
        pytest.param(f"{SITE}/gw%2B/{DEVICE}", {"command": "ping"}, 422, id="wildcard-gateway"),
    ],
)
async def test_bad_commands_are_refused_before_anything_is_published(
    mosquitto: MosquittoProcess, topic_prefix: str, path: str, body: dict[str, Any], status: int
) -> None:
    commands = Recorder(mosquitto, f"{topic_prefix}/v1/+/+/cmd/+")
    try:
        async with (
            serving(live_config(mosquitto, topic_prefix), DIRECTORY) as service,
            httpx.AsyncClient(base_url=service.url) as http,
        ):
            answer = await http.post(f"/api/v1/commands/{path}", json=body, headers=BEARER)
        assert answer.status_code == status, answer.text
        assert "Traceback" not in answer.text
    finally:
        commands.close()
    assert commands.snapshot() == []
