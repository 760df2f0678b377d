"""The live service's API for orders to the alert engine: operators only, sent over MQTT."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from devstack import MosquittoProcess
from qihe.contract import TopicTree, parse_alert_control
from tests.mqtt_helpers import Recorder, wait_until
from tests.test_live_service import SITE, live_config, serving

pytestmark = pytest.mark.integration

TOKEN = "operator-token-for-tests"


def _config(broker: MosquittoProcess, prefix: str, **extra: Any) -> Any:
    commands = {"mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
                "operator": "wang"}  # fmt: skip
    return live_config(broker, prefix, http={"operator_token": TOKEN}, commands=commands, **extra)


async def test_orders_need_the_operator_token(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    async with (
        serving(_config(mosquitto, topic_prefix)) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        ack = await http.post(f"/api/v1/alerts/{SITE}/door_open-1/ack", json={"note": "x"})
        silence = await http.post(
            "/api/v1/silences", json={"site": SITE, "rule": "door_open", "duration": 60}
        )
        listing = await http.get("/api/v1/silences")
        wrong = await http.get(
            "/api/v1/silences", headers={"Authorization": "Bearer nope-nope-nope"}
        )

    assert [r.status_code for r in (ack, silence, listing, wrong)] == [401, 401, 401, 401]


async def test_an_ack_and_a_silence_are_published_on_the_control_topic(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    tree = TopicTree(topic_prefix)
    recorder = Recorder(mosquitto, tree.alert_control(SITE))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with (
            serving(_config(mosquitto, topic_prefix)) as service,
            httpx.AsyncClient(base_url=service.url, headers=auth) as http,
        ):
            await wait_until(lambda: service.alert_desk._client is not None)
            ack = await http.post(
                f"/api/v1/alerts/{SITE}/device_fault-e1bf4e691537/ack", json={"note": "已派人"}
            )
            silence = await http.post(
                "/api/v1/silences",
                json={"site": SITE, "rule": "door_open", "duration": "PT2H", "note": "修门"},
            )
            listing = (await http.get("/api/v1/silences", params={"site": SITE})).json()
            await wait_until(lambda: len(recorder.snapshot()) == 2)
    finally:
        recorder.close()

    orders = [parse_alert_control(m.payload) for m in recorder.snapshot()]
    assert (ack.status_code, silence.status_code) == (202, 202)
    assert ack.json()["text"].startswith("确认已发送")
    assert [(o.action, o.by) for o in orders] == [("ack", "wang"), ("silence", "wang")]
    assert orders[0].note == "已派人"  # type: ignore[union-attr]
    assert orders[1].until - orders[1].at == timedelta(hours=2)  # type: ignore[union-attr]
    assert listing["can_order"] is True
    assert "door_open" in listing["rules"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/v1/alerts/no-such-site/door_open-1/ack", {}, 404),
        ("POST", f"/api/v1/alerts/{SITE}/a%20b/ack", {}, 422),
        ("POST", f"/api/v1/alerts/{SITE}/door_open-1/ack", {"note": "a\nb"}, 422),
        ("POST", f"/api/v1/alerts/{SITE}/door_open-1/ack", {"extra": 1}, 422),
        ("POST", "/api/v1/silences", {"site": SITE, "rule": "sofa", "duration": 60}, 422),
        ("POST", "/api/v1/silences", {"site": SITE, "rule": "door_open", "duration": 0}, 422),
        ("POST", "/api/v1/silences",
         {"site": SITE, "rule": "door_open", "duration": 31 * 86400}, 422),
    ],
)  # fmt: skip
async def test_bad_orders_are_refused_with_a_short_error(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    method: str,
    path: str,
    body: dict[str, Any],
    status: int,
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        serving(_config(mosquitto, topic_prefix)) as service,
        httpx.AsyncClient(base_url=service.url, headers=auth) as http,
    ):
        response = await http.request(method, path, json=body)

    assert response.status_code == status
    assert "Traceback" not in response.text


async def test_without_an_operator_account_orders_answer_503(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    async with (
        serving(live_config(mosquitto, topic_prefix)) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        ack = await http.post(f"/api/v1/alerts/{SITE}/door_open-1/ack", json={})
        listing = (await http.get("/api/v1/silences")).json()

    assert ack.status_code == 503
    assert "未配置操作员账号" in ack.json()["detail"]
    assert listing["can_order"] is False
