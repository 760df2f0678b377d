"""Alert routes against a real local HTTP server: requests field by field, retries,
isolation of a slow or dead route, rate limit and digests, queue bound, secrets, limits."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import socket
import traceback
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus

import pytest
import uvicorn
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

from central.alerts import render
from central.alerts.model import Alert, Notification, alert_id
from central.alerts.routes import (
    DingTalkRoute,
    DingTalkRouteConfig,
    LogRoute,
    LogRouteConfig,
    RouteConfig,
    RouteError,
    RouteWorker,
    WebhookRoute,
    WebhookRouteConfig,
    WeComRoute,
    WeComRouteConfig,
    build_route,
    build_worker,
    check_unique_names,
)
from devstack import free_port
from qihe.configfile import format_validation_error

STARTS = datetime(2024, 11, 28, 11, 40, tzinfo=UTC)  # 19:40 in Hebi
ENDS = datetime(2024, 11, 28, 11, 52, tzinfo=UTC)
FAST_RETRY: dict[str, Any] = {"retry_min_delay": 0.01, "retry_max_delay": 0.02}

# -- a real HTTP server that records every request ----------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"errcode": 0, "errmsg": "ok"})
    #: Never answer (until the test ends): a robot that hangs.
    hang: bool = False
    #: Put the request's path and query in ``errmsg``, as some servers do.
    echo: bool = False


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Recorder:
    """An ASGI app: records each request on arrival, answers from a script per path."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.scripts: dict[str, deque[Reply]] = {}
        self.release = asyncio.Event()

    def script(self, path: str, *replies: Reply) -> None:
        self.scripts.setdefault(path, deque()).extend(replies)

    def to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = Request(
            scope["method"],
            scope["path"],
            scope["query_string"].decode(),
            {k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body,
        )
        self.requests.append(request)
        script = self.scripts.get(request.path)
        reply = script.popleft() if script else Reply()
        if reply.hang:
            await self.release.wait()
            return
        answer = reply.body
        if reply.echo:
            answer = {"errcode": 93000, "errmsg": f"bad url {request.path}?{request.query}"}
        data = json.dumps(answer, ensure_ascii=False).encode()
        headers = [(b"content-type", b"application/json; charset=utf-8")]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # pytest owns the signals
        yield


@dataclass
class Server:
    url: str
    recorder: Recorder


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """uvicorn in this event loop on a free loopback port, recording what routes send."""
    recorder = Recorder()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    config = uvicorn.Config(
        recorder,
        lifespan="off",
        log_level="warning",
        access_log=False,
        ws="none",
        http="h11",
        timeout_graceful_shutdown=2,
    )
    srv = _EmbeddedServer(config)
    task = asyncio.create_task(srv.serve(sockets=[sock]), name="test-http-server")
    await eventually(lambda: srv.started, "the test server to start")
    try:
        yield Server(f"http://127.0.0.1:{sock.getsockname()[1]}", recorder)
    finally:
        recorder.release.set()
        srv.should_exit = True
        async with asyncio.timeout(15):
            await task
        sock.close()


async def eventually(predicate: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    """Wait for a condition (a generous deadline that only catches a hang)."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@contextlib.asynccontextmanager
async def running(*workers: RouteWorker) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(w.run(), name=f"route-{w.name}") for w in workers]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        async with asyncio.timeout(15):  # cancelled workers must not hang on a request
            results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results), results


def outcome(worker: RouteWorker) -> int:
    return worker.stats.delivered + worker.stats.failed


class FakeTime:
    """A monotonic clock and a sleep that only ends when the test advances the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.now

    @property
    def sleeping(self) -> int:
        return sum(1 for _, f in self._sleepers if not f.done())

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + delay, future))
        await future

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for wake, future in self._sleepers:
            if wake <= self.now and not future.done():
                future.set_result(None)


# -- alerts -------------------------------------------------------------------------------


def alert(
    site: str = "xinyuan-2",
    rule: str = "gateway_offline",
    *,
    severity: str = "critical",
    state: str = "firing",
    summary_zh: str = "网关离线",
    summary_en: str = "Gateway offline",
    value: float | None = None,
    site_name: str = "淇河书屋·馨苑二区站",
) -> Alert:
    labels = {"site": site, "gateway": "gw-01"}
    return Alert.model_validate(
        {
            "id": alert_id(rule, labels),
            "rule": rule,
            "severity": severity,
            "state": state,
            "site": site,
            "site_name": site_name,
            "gateway": "gw-01",
            "labels": labels,
            "summary_zh": summary_zh,
            "summary_en": summary_en,
            "value": value,
            "starts_at": STARTS,
            "ends_at": ENDS if state == "resolved" else None,
        }
    )


def notification(
    site: str = "xinyuan-2",
    site_name: str = "淇河书屋·馨苑二区站",
    firing: tuple[Alert, ...] | None = None,
    resolved: tuple[Alert, ...] = (),
) -> Notification:
    if firing is None:
        firing = (alert(site, site_name=site_name),)
    return Notification(
        site=site,
        site_name=site_name,
        status="firing" if firing else "resolved",
        firing=firing,
        resolved=resolved,
        created_at=ENDS,
    )


BATTERY = alert(
    rule="battery_low",
    severity="warning",
    summary_zh="电池电压低",
    summary_en="Battery low",
    value=3.3,
)
TWO_FIRING = notification(firing=(BATTERY, alert()))
WECOM_TWO_FIRING = (
    "### 【告警】淇河书屋·馨苑二区站 2 条告警 / 2 alerts firing\n"
    "🔴 网关离线 / Gateway offline · 起于 / since 11-28 19:40 · gw-01\n"
    "🟠 电池电压低 / Battery low · 起于 / since 11-28 19:40 · 值 / value 3.3 · gw-01"
)


def wecom(server: Server, **extra: Any) -> WeComRouteConfig:
    base_url = f"{server.url}/cgi-bin/webhook/send"
    settings = {"type": "wecom", "key": "wk-SECRET-0f1e2d", "base_url": base_url}
    return WeComRouteConfig.model_validate({**settings, **extra})


def dingtalk(server: Server, **extra: Any) -> DingTalkRouteConfig:
    base_url = f"{server.url}/robot/send"
    settings = {"type": "dingtalk", "access_token": "dt-TOKEN-77aa", "base_url": base_url}
    return DingTalkRouteConfig.model_validate({**settings, **extra})


def webhook(server: Server, path: str = "/hooks/alerts", **extra: Any) -> WebhookRouteConfig:
    settings = {"type": "webhook", "url": f"{server.url}{path}"}
    return WebhookRouteConfig.model_validate({**settings, **extra})


# -- what each route sends ----------------------------------------------------------------


async def test_wecom_posts_markdown_to_its_key(server: Server) -> None:
    route = WeComRoute(wecom(server, mentioned_userids=["zhangsan"]))
    try:
        await route.send([TWO_FIRING])
        await route.send([notification(firing=(), resolved=(alert(state="resolved"),))])
    finally:
        await route.aclose()
    first, second = server.recorder.requests
    assert (first.method, first.path, first.query) == (
        "POST",
        "/cgi-bin/webhook/send",
        "key=wk-SECRET-0f1e2d",
    )
    assert first.headers["content-type"] == "application/json; charset=utf-8"
    assert "淇河书屋·馨苑二区站".encode() in first.body  # UTF-8, not \u escapes
    assert first.json() == {
        "msgtype": "markdown",
        "markdown": {"content": WECOM_TWO_FIRING + "\n<@zhangsan>"},
    }
    # Recoveries wake nobody.
    assert second.json()["markdown"]["content"] == (
        "### 【恢复】淇河书屋·馨苑二区站 1 条告警已恢复 / 1 alert resolved\n"
        "✅ 网关离线 / Gateway offline · 恢复于 / resolved 11-28 19:52 · gw-01"
    )


async def test_wecom_accepts_the_whole_webhook_url(server: Server) -> None:
    url = f"{server.url}/cgi-bin/webhook/send?key=wk-SECRET-0f1e2d"
    route = build_route(WeComRouteConfig.model_validate({"type": "wecom", "url": url}))
    try:
        await route.send([TWO_FIRING])
    finally:
        await route.aclose()
    (request,) = server.recorder.requests
    assert (request.path, request.query) == ("/cgi-bin/webhook/send", "key=wk-SECRET-0f1e2d")


async def test_dingtalk_signs_the_url_with_timestamp_and_secret(server: Server) -> None:
    secret = "SECb1f0c0ffee+/="
    config = dingtalk(server, secret=secret, at_mobiles=["13800001111"])
    route = DingTalkRoute(config, clock=lambda: 1732794000.123456)
    try:
        await route.send([TWO_FIRING])
    finally:
        await route.aclose()
    (request,) = server.recorder.requests
    assert (request.method, request.path) == ("POST", "/robot/send")
    query = parse_qs(request.query)
    assert query["access_token"] == ["dt-TOKEN-77aa"]
    assert query["timestamp"] == ["1732794000123"]
    # Recomputed here as DingTalk's docs describe it.
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"1732794000123\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert query["sign"] == [expected]
    assert f"&sign={quote_plus(expected)}" in request.query
    assert request.json() == {
        "msgtype": "markdown",
        "markdown": {
            "title": "【告警】淇河书屋·馨苑二区站 2 条告警 / 2 alerts firing",
            "text": WECOM_TWO_FIRING.replace("\n", "\n\n") + "\n\n@13800001111",
        },
        "at": {"atMobiles": ["13800001111"], "isAtAll": False},
    }


async def test_dingtalk_without_secret_sends_no_signature(server: Server) -> None:
    route = build_route(dingtalk(server))
    try:
        await route.send([TWO_FIRING])
    finally:
        await route.aclose()
    (request,) = server.recorder.requests
    assert request.query == "access_token=dt-TOKEN-77aa"


async def test_webhook_posts_alertmanager_payload_with_headers(server: Server) -> None:
    config = webhook(
        server,
        path="/hooks/alerts",
        name="ops",
        headers={"Authorization": "Bearer hk-SECRET-99"},
        external_url="https://live.example.cn/operator",
    )
    mixed = notification(firing=(BATTERY,), resolved=(alert(state="resolved"),))
    route = build_route(config)
    try:
        await route.send([mixed])
    finally:
        await route.aclose()
    (request,) = server.recorder.requests
    assert (request.method, request.path, request.query) == ("POST", "/hooks/alerts", "")
    assert request.headers["authorization"] == "Bearer hk-SECRET-99"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    labels = {"gateway": "gw-01", "site": "xinyuan-2"}
    assert request.json() == {
        "version": "4",
        "groupKey": '{}:{site="xinyuan-2"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "ops",
        "groupLabels": {"site": "xinyuan-2"},
        "commonLabels": labels,
        "commonAnnotations": {"site_name": "淇河书屋·馨苑二区站"},
        "externalURL": "https://live.example.cn/operator",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "battery_low", "severity": "warning", **labels},
                "annotations": {
                    "summary": "电池电压低",
                    "summary_en": "Battery low",
                    "site_name": "淇河书屋·馨苑二区站",
                    "description": "测量值 / value: 3.3",
                },
                "startsAt": "2024-11-28T11:40:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": BATTERY.id,
            },
            {
                "status": "resolved",
                "labels": {"alertname": "gateway_offline", "severity": "critical", **labels},
                "annotations": {
                    "summary": "网关离线",
                    "summary_en": "Gateway offline",
                    "site_name": "淇河书屋·馨苑二区站",
                },
                "startsAt": "2024-11-28T11:40:00Z",
                "endsAt": "2024-11-28T11:52:00Z",
                "generatorURL": "",
                "fingerprint": alert().id,
            },
        ],
    }


async def test_log_route_writes_one_line_per_alert(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="central.alerts")
    route = LogRoute(LogRouteConfig(type="log"))
    await route.send([notification(firing=(BATTERY,), resolved=(alert(state="resolved"),))])
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "central.alerts"]
    assert lines == [
        (
            "WARNING",
            "告警 警告 淇河书屋·馨苑二区站 | 🟠 电池电压低 / Battery low · 起于 / since 11-28 19:40"
            f" · 值 / value 3.3 · gw-01 [{BATTERY.id}]",
        ),
        (
            "INFO",
            "恢复 淇河书屋·馨苑二区站 | ✅ 网关离线 / Gateway offline"
            f" · 恢复于 / resolved 11-28 19:52 · gw-01 [{alert().id}]",
        ),
    ]


# -- retries and failures -----------------------------------------------------------------


async def test_server_errors_are_retried_until_delivered(server: Server) -> None:
    server.recorder.script("/hooks/alerts", Reply(500), Reply(503), Reply(200))
    worker = build_worker(webhook(server, **FAST_RETRY))
    async with running(worker):
        worker.offer(TWO_FIRING)
        await eventually(lambda: worker.stats.delivered, "delivery")
    assert len(server.recorder.requests) == 3
    assert (worker.stats.delivered, worker.stats.attempts, worker.stats.failed) == (1, 3, 0)
    assert "HTTP 503" in (worker.stats.last_error or "")


@pytest.mark.parametrize(
    ("make", "path", "errcode"),
    [(wecom, "/cgi-bin/webhook/send", 45009), (dingtalk, "/robot/send", 130101)],
)
async def test_robot_rate_limit_errcodes_are_retried(
    server: Server, make: Callable[..., RouteConfig], path: str, errcode: int
) -> None:
    server.recorder.script(path, Reply(body={"errcode": errcode, "errmsg": "freq out of limit"}))
    worker = build_worker(make(server, **FAST_RETRY))
    async with running(worker):
        worker.offer(TWO_FIRING)
        await eventually(lambda: worker.stats.delivered, "delivery")
    assert (worker.stats.attempts, worker.stats.delivered, worker.stats.failed) == (2, 1, 0)
    assert len(server.recorder.to(path)) == 2


async def test_client_error_fails_at_once_and_is_counted(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.recorder.script("/hooks/alerts", Reply(400, {"error": "bad payload"}))
    worker = build_worker(webhook(server, name="ops", **FAST_RETRY))
    async with running(worker):
        worker.offer(TWO_FIRING)
        await eventually(lambda: worker.stats.failed, "the failure")
    assert (worker.stats.attempts, worker.stats.failed, worker.stats.delivered) == (1, 1, 0)
    assert len(server.recorder.requests) == 1
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "alert route ops:" in record.getMessage()
    assert "HTTP 400" in record.getMessage() and "not retryable" in record.getMessage()


async def test_dingtalk_bad_signature_fails_at_once_with_a_hint(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    refused = {"errcode": 310000, "errmsg": "sign not match"}
    server.recorder.script("/robot/send", Reply(body=refused))
    worker = build_worker(dingtalk(server, secret="SECwrong", **FAST_RETRY))
    async with running(worker):
        worker.offer(TWO_FIRING)
        await eventually(lambda: worker.stats.failed, "the failure")
    assert worker.stats.attempts == 1
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "errcode 310000" in record.getMessage() and "加签" in record.getMessage()


async def test_a_hanging_server_times_out_and_is_retried(server: Server) -> None:
    server.recorder.script("/hooks/alerts", Reply(hang=True), Reply(hang=True))
    worker = build_worker(webhook(server, timeout=0.2, max_attempts=2, **FAST_RETRY))
    async with running(worker):
        worker.offer(TWO_FIRING)
        await eventually(lambda: worker.stats.failed, "the failure")
    assert (worker.stats.attempts, worker.stats.failed) == (2, 1)
    assert "no answer" in (worker.stats.last_error or "")


async def test_webhook_retries_only_the_sites_not_yet_delivered(server: Server) -> None:
    """A digest is one POST per site; after a failure the delivered ones are not resent."""
    server.recorder.script("/hooks/alerts", Reply(200), Reply(500), Reply(200))
    time = FakeTime()
    config = webhook(server, max_per_minute=1)
    worker = RouteWorker(build_route(config), config, clock=time.monotonic, sleep=time.sleep)
    worker.offer(notification("site-a"))
    worker.offer(notification("site-b"))  # two waiting, one token: one digest
    async with running(worker):
        await eventually(lambda: time.sleeping, "the retry to wait")
        assert worker.stats.delivered == 1
        time.advance(60)
        await eventually(lambda: worker.stats.delivered == 2, "delivery")
    sites = [r.json()["groupLabels"]["site"] for r in server.recorder.requests]
    assert sites == ["site-a", "site-b", "site-b"]


# -- one route never delays another -------------------------------------------------------


async def test_a_hanging_route_does_not_delay_a_healthy_one(server: Server) -> None:
    server.recorder.script("/slow", Reply(hang=True))
    slow = build_worker(webhook(server, path="/slow", name="slow", timeout=60))
    healthy = build_worker(wecom(server))
    async with running(slow, healthy) as tasks:
        slow.offer(TWO_FIRING)
        await eventually(lambda: server.recorder.to("/slow"), "the slow request to arrive")
        healthy.offer(TWO_FIRING)
        await eventually(lambda: healthy.stats.delivered, "the healthy delivery")
        # The slow route is still stuck in its first request.
        assert (slow.stats.attempts, slow.stats.delivered, slow.stats.failed) == (1, 0, 0)
    assert all(task.done() for task in tasks)  # cancel did not wait for the hanging request


async def test_a_dead_route_does_not_delay_a_healthy_one(server: Server) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}/hooks/alerts"
    dead_config = WebhookRouteConfig.model_validate(
        {"type": "webhook", "name": "dead", "url": dead_url, "max_attempts": 100}
    )
    dead = build_worker(dead_config)
    healthy = build_worker(dingtalk(server))
    async with running(dead, healthy):
        dead.offer(TWO_FIRING)
        await eventually(lambda: dead.stats.attempts, "the dead route's first attempt")
        healthy.offer(TWO_FIRING)
        await eventually(lambda: healthy.stats.delivered, "the healthy delivery")
        assert (dead.stats.delivered, dead.stats.failed) == (0, 0)  # still retrying
    assert "cannot reach http://127.0.0.1" in (dead.stats.last_error or "")


# -- rate limit, digests, queue bound -----------------------------------------------------


async def test_notifications_waiting_for_the_rate_limit_leave_in_one_digest(
    server: Server,
) -> None:
    time = FakeTime()
    config = wecom(server, max_per_minute=2)
    worker = RouteWorker(build_route(config), config, clock=time.monotonic, sleep=time.sleep)
    sites = [notification(f"site-{i}", f"站点{i}") for i in range(10)]
    async with running(worker):
        worker.offer(sites[0])
        await eventually(lambda: worker.stats.delivered == 1, "a single message")
        worker.offer(sites[1])
        await eventually(lambda: worker.stats.delivered == 2, "another single message")
        for later in sites[2:]:
            worker.offer(later)
        await eventually(lambda: time.sleeping, "the worker to wait for a token")
        assert len(server.recorder.requests) == 2
        time.advance(60)
        await eventually(lambda: worker.stats.delivered == 10, "the digest")
    requests = server.recorder.requests
    assert len(requests) == 3
    assert (worker.stats.attempts, worker.stats.failed) == (3, 0)
    digest = requests[2].json()["markdown"]["content"]
    assert digest.startswith("### 【告警汇总】8 个站点 8 条告警 / 8 sites: 8 alerts firing\n")
    assert all(f"**站点{i}**" in digest for i in range(2, 10))
    assert "站点0" in requests[0].json()["markdown"]["content"]


async def test_a_burst_beyond_the_tokens_becomes_one_message(server: Server) -> None:
    config = wecom(server, max_per_minute=2)
    worker = build_worker(config)
    for i in range(10):
        worker.offer(notification(f"site-{i}", f"站点{i}"))
    async with running(worker):
        await eventually(lambda: worker.stats.delivered == 10, "delivery")
    (request,) = server.recorder.requests
    assert "10 个站点 10 条告警" in request.json()["markdown"]["content"]


async def test_a_full_queue_drops_the_oldest_counts_and_logs_once(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    worker = build_worker(webhook(server, name="ops", queue_size=3))
    accepted = [worker.offer(notification(f"site-{i}")) for i in range(6)]
    assert accepted == [True, True, True, False, False, False]
    assert (worker.stats.dropped, worker.pending) == (3, 3)
    warnings = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert len(warnings) == 1 and "alert route ops" in warnings[0].getMessage()
    async with running(worker):
        await eventually(lambda: worker.stats.delivered == 3, "delivery")
    sites = [r.json()["groupLabels"]["site"] for r in server.recorder.requests]
    assert sites == ["site-3", "site-4", "site-5"]


# -- secrets and limits -------------------------------------------------------------------

SECRETS = ("wk-SECRET-0f1e2d", "dt-TOKEN-77aa", "SECsigning-5150", "hk-SECRET-99", "PATHSECRET")


async def test_secrets_never_reach_logs_or_errors(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # httpx's own level too: the ``qihe`` command quiets it, and other tests run it in-process.
    caplog.set_level(logging.DEBUG, logger="httpx")
    hook_path = "/hooks/PATHSECRET"
    configs: list[RouteConfig] = [
        wecom(server, **FAST_RETRY),
        dingtalk(server, secret="SECsigning-5150", **FAST_RETRY),
        webhook(server, path=hook_path, headers={"X-Token": "hk-SECRET-99"}, **FAST_RETRY),
    ]
    for path in ("/cgi-bin/webhook/send", "/robot/send"):
        server.recorder.script(path, Reply(), Reply(400, echo=True), Reply(echo=True))
    server.recorder.script(hook_path, Reply(), Reply(400, echo=True), Reply(503, echo=True))
    errors: list[RouteError] = []
    for config in configs:
        route = build_route(config)
        try:
            await route.send([TWO_FIRING])  # accepted
            for _ in range(2):  # HTTP 400, then errcode 93000 or 503, echoing the URL
                with pytest.raises(RouteError) as caught:
                    await route.send([TWO_FIRING])
                errors.append(caught.value)
        finally:
            await route.aclose()
    dead = WebhookRouteConfig.model_validate(
        {
            "type": "webhook",
            "url": f"http://127.0.0.1:{free_port()}/PATHSECRET",
            "headers": {"X-Token": "hk-SECRET-99"},
            "max_attempts": 2,
            **FAST_RETRY,
        }
    )
    for config in [*configs, dead]:  # through workers too: their logs and counters
        worker = build_worker(config)
        async with running(worker):
            worker.offer(TWO_FIRING)
            await eventually(partial(outcome, worker), "an outcome")
        errors.append(RouteError("x", worker.stats.last_error or "", retryable=False))
    assert sum(1 for r in server.recorder.requests if "SECRET" in r.query + r.path) >= 6
    reported = [caplog.text, *(r.getMessage() for r in caplog.records), repr(configs)]
    for exc in errors:
        reported += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    assert any("HTTP Request: POST" in r.getMessage() for r in caplog.records)  # httpx logs
    for secret in SECRETS:
        leaks = [text for text in reported if secret in text]
        assert not leaks, (secret, leaks[:1])


async def test_wecom_content_stays_within_4096_bytes(server: Server) -> None:
    many = tuple(
        alert(
            rule=f"seat_fault_{i}",
            severity="warning",
            summary_zh=f"座位传感器故障 {i} 号" * 3,
            summary_en=f"Seat sensor {i} faulty" * 2,
        )
        for i in range(150)
    )
    route = build_route(wecom(server))
    try:
        await route.send([notification(firing=many)])
    finally:
        await route.aclose()
    content = server.recorder.requests[0].json()["markdown"]["content"]
    assert 3500 < len(content.encode()) <= 4096
    lines = content.split("\n")
    shown = sum(1 for line in lines if line.startswith("🟠"))
    assert lines[-1] == f"…以及另外 {150 - shown} 条 / and {150 - shown} more"
    assert lines[0] == "### 【告警】淇河书屋·馨苑二区站 150 条告警 / 150 alerts firing"


def test_markdown_in_names_is_neutralised() -> None:
    odd = '**馨苑**<font color="warning">[x](u)</font>\n# `c` > q <@all>'
    text = render.markdown([notification(site_name=odd)], max_bytes=4096)
    head, line = text.split("\n")
    assert head == (
        '### 【告警】＊＊馨苑＊＊＜font color="warning"＞［x］(u)＜/font＞'
        " ＃ ｀c｀ ＞ q ＜@all＞ 1 条告警 / 1 alert firing"
    )
    assert line.startswith("🔴 网关离线 / Gateway offline")


_odd_text = st.text(st.characters(codec="utf-8"), max_size=300)


@settings(max_examples=150, deadline=None)
@given(
    site_name=_odd_text,
    summary=_odd_text,
    value=st.none() | st.floats(allow_nan=True, allow_infinity=True),
    count=st.integers(0, 30),
    sites=st.integers(1, 3),
    max_bytes=st.integers(300, 5000),
)
def test_render_never_fails_and_keeps_its_byte_limit(
    site_name: str, summary: str, value: float | None, count: int, sites: int, max_bytes: int
) -> None:
    alerts = tuple(
        alert(
            rule=f"r{i}",
            summary_zh=summary,
            summary_en=summary,
            value=value,
            site_name=site_name,
            state="resolved" if i % 3 == 0 else "firing",
        )
        for i in range(count)
    )
    firing = tuple(a for a in alerts if a.state == "firing")
    resolved = tuple(a for a in alerts if a.state == "resolved")
    batch = [notification(f"s{i}", site_name, firing, resolved) for i in range(sites)]
    text = render.markdown(batch, max_bytes=max_bytes, footer="<@zhangsan>")
    assert len(text.encode()) <= max_bytes
    assert text.startswith("### 【")
    for a in alerts:
        assert "\n" not in render.alert_text(a, markdown=True)


# -- configuration ------------------------------------------------------------------------

SAMPLE_YAML = """
routes:
  - type: log
  - type: webhook
    name: ops-webhook
    url: https://ops.example.cn/hooks/qihe-8c1f   # a secret, as in Alertmanager
    headers:
      Authorization: Bearer change-me
    external_url: https://live.example.cn/operator
    timeout: 10
  - type: wecom
    name: wecom-maintenance
    key: 693a91f6-0000-4bc4-97a0-000000000000
    mentioned_userids: [zhangsan]
  - type: dingtalk
    name: dingtalk-daycare
    access_token: 0123456789abcdef
    secret: SEC0123456789abcdef
    at_mobiles: ["13800001111"]
    max_per_minute: 20
    max_attempts: 5
    retry_min_delay: 1
    retry_max_delay: PT1M
    queue_size: 100
"""


def test_sample_config_builds_each_route() -> None:
    data = yaml.safe_load(SAMPLE_YAML)["routes"]
    configs = TypeAdapter(tuple[RouteConfig, ...]).validate_python(data)
    check_unique_names(configs)
    routes = [build_route(c) for c in configs]
    assert [type(r) for r in routes] == [LogRoute, WebhookRoute, WeComRoute, DingTalkRoute]
    names = ["log", "ops-webhook", "wecom-maintenance", "dingtalk-daycare"]
    assert [r.name for r in routes] == names
    assert [c.max_per_minute for c in configs] == [None, None, 20, 20]


def test_config_errors_name_the_problem_without_the_secret() -> None:
    """Neither the repo's one-line-per-problem report nor a route model's own error echoes
    a secret (a model that contains routes must set ``hide_input_in_errors`` itself)."""
    adapter: TypeAdapter[RouteConfig] = TypeAdapter(RouteConfig)
    models: dict[str, type[BaseModel]] = {
        "wecom": WeComRouteConfig,
        "webhook": WebhookRouteConfig,
        "dingtalk": DingTalkRouteConfig,
    }
    bad: list[dict[str, Any]] = [
        {"type": "wecom"},
        {"type": "wecom", "key": "wk-SECRET-0f1e2d", "url": "https://x.cn/?key=wk-SECRET-0f1e2d"},
        {"type": "webhook", "url": "ftp://host/PATHSECRET"},
        {"type": "webhook", "url": "https://x.cn/", "headers": {"X-Token": ["hk-SECRET-99"]}},
        {
            "type": "dingtalk",
            "access_token": "dt-TOKEN-77aa",
            "retry_min_delay": 9,
            "retry_max_delay": 1,
        },
        {"type": "sms"},
    ]
    for data in bad:
        with pytest.raises(ValidationError) as caught:
            adapter.validate_python(data)
        shown = [format_validation_error(caught.value, "alerts.yaml")]
        if data["type"] in models:
            with pytest.raises(ValidationError) as direct:
                models[data["type"]].model_validate(data)
            shown.append(str(direct.value))
        assert not [s for s in SECRETS for text in shown if s in text], shown
    with pytest.raises(ValueError, match="two routes are named 'log'"):
        routes = TypeAdapter(tuple[RouteConfig, ...]).validate_python([{"type": "log"}] * 2)
        check_unique_names(routes)


# -- which alerts a route carries --------------------------------------------------------------


def test_a_route_without_a_match_carries_every_alert() -> None:
    assert LogRouteConfig(type="log").carries(TWO_FIRING) is TWO_FIRING


def test_a_sites_staff_route_carries_only_its_sites() -> None:
    route = LogRouteConfig(type="log", name="staff-xinyuan", sites=("xinyuan-2",))
    assert route.carries(TWO_FIRING) is TWO_FIRING
    assert route.carries(notification(site="qibin-taoyuan")) is None


def test_a_route_by_rule_or_severity_gets_only_those_alerts_of_a_notification() -> None:
    gentle = LogRouteConfig(type="log", name="gentle", severities=("warning",))
    carried = gentle.carries(TWO_FIRING)
    assert carried is not None and carried.firing == (BATTERY,)
    by_rule = LogRouteConfig(
        type="log", name="power", rules=("battery_low",), severities=("critical",)
    )
    assert by_rule.carries(TWO_FIRING) is None  # all given must match
    resolved_only = notification(firing=(), resolved=(alert(state="resolved"),))
    narrowed = LogRouteConfig(type="log", name="x", rules=("gateway_offline",)).carries(
        resolved_only
    )
    assert narrowed is not None and narrowed.status == "resolved"


async def test_a_worker_queues_nothing_its_route_does_not_carry() -> None:
    worker = build_worker(
        LogRouteConfig(type="log", name="staff-taoyuan", sites=("qibin-taoyuan",))
    )
    assert worker.offer(TWO_FIRING) is True
    assert worker.pending == 0


def test_a_route_naming_an_unknown_rule_is_refused(tmp_path: Path) -> None:
    from central.alerts.config import AlertsConfig

    with pytest.raises(ValidationError, match="route staff: unknown rules: seat_stolen"):
        AlertsConfig.model_validate(
            {
                "sites": tmp_path / "sites.yaml",
                "routes": [{"type": "log", "name": "staff", "rules": ["seat_stolen"]}],
            }
        )
