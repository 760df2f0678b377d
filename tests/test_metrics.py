"""``/metrics`` of the consumer, the live service, the alert engine and the gateway.

Each service runs for real (a real Mosquitto and InfluxDB, a gateway on gpiozero's mock pins as
the source of traffic); what its endpoint says after the traffic is compared with the stats the
service itself keeps. The gateway's endpoint is opt-in and loopback by default; an address that
is not an IP or a port already taken is one clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from gpiozero.pins.mock import MockFactory
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from central.alerts.config import AlertsConfig
from central.alerts.engine import AlertEngine
from central.consumer.config import ConsumerConfig
from central.consumer.service import Consumer
from central.errors import ConsumerStartError
from central.live.client import read_events
from central.live.config import LiveConfig
from central.live.service import LiveService
from central.sites import SiteDirectory
from devstack import InfluxdProcess, MosquittoProcess, free_port
from edge.config import GatewayConfig, load_gateway_config
from edge.gateway import Gateway
from qihe.configfile import ConfigError
from qihe.metrics import MetricsConfig, MetricsError, MetricsServer, parse_listen
from tests.mqtt_helpers import running, wait_until

pytestmark = pytest.mark.integration

SITE = "qibin-taoyuan"
DIRECTORY = SiteDirectory.model_validate({"sites": [{"id": SITE, "name": "淇河书屋·桃园站"}]})

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# Scraping ---------------------------------------------------------------------------------


async def scrape(port: int) -> Samples:
    """Every sample of ``http://127.0.0.1:PORT/metrics``: (name, labels) → value."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    response.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no {name}{labels}; have {sorted(n for n, _ in samples)}"
    return samples[key]


# The services, each with its endpoint on a free port --------------------------------------


def metrics_on(port: int) -> dict[str, str]:
    return {"listen": f"127.0.0.1:{port}"}


def gateway_config(
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
            **extra,
        }
    )  # fmt: skip


@contextlib.asynccontextmanager
async def gateway_running(
    broker: MosquittoProcess, prefix: str, folder: Path, port: int
) -> AsyncIterator[tuple[Gateway, MockFactory]]:
    pins = MockFactory()
    gateway = Gateway(
        gateway_config(broker, prefix, folder, metrics=metrics_on(port)), pin_factory=pins
    )
    try:
        async with running(gateway):
            await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
            yield gateway, pins
    finally:
        pins.reset()


def consumer_config(
    broker: MosquittoProcess, influxd: InfluxdProcess, database: str, prefix: str, port: int
) -> ConsumerConfig:
    return ConsumerConfig.model_validate(
        {
            "mqtt": {
                "host": broker.host,
                "port": broker.port,
                "client_id": f"consumer-{database}",
                "topic_prefix": prefix,
            },
            "influx": {"api": "v1", "url": influxd.url, "database": database},
            "flush_interval": 0.2,
            "metrics": metrics_on(port),
        }
    )


@contextlib.asynccontextmanager
async def consumer_running(config: ConsumerConfig) -> AsyncIterator[Consumer]:
    consumer = Consumer(config)
    await asyncio.to_thread(consumer.start)  # threads of its own; start waits for the broker
    try:
        yield consumer
    finally:
        await asyncio.to_thread(consumer.stop)


@contextlib.asynccontextmanager
async def live_running(
    broker: MosquittoProcess, prefix: str, port: int
) -> AsyncIterator[LiveService]:
    config = LiveConfig.model_validate(
        {
            "sites": "unused.yaml",
            "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
            "http": {"port": 0},
            "refresh_interval": 0.1,
            "metrics": metrics_on(port),
        }
    )
    service = LiveService(config, DIRECTORY)
    async with _task(service.run(), "live") as task:
        await _first(task, service.broker_connected.wait())
        yield service


@contextlib.asynccontextmanager
async def alerts_running(
    broker: MosquittoProcess, prefix: str, port: int
) -> AsyncIterator[AlertEngine]:
    config = AlertsConfig.model_validate(
        {
            "sites": "unused.yaml",
            "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
            "evaluation_interval": 0.1,
            "group_wait": 0,
            "group_interval": 0,
            "restore_wait": 0.3,
            "rules": {"gateway_offline": {"for": 0}},
            "routes": [{"type": "log", "name": "duty-log"}],
            "metrics": metrics_on(port),
        }
    )
    engine = AlertEngine(config, DIRECTORY)
    async with _task(engine.run(), "alerts") as task:
        await _first(task, engine.evaluating.wait())
        yield engine


@contextlib.asynccontextmanager
async def _task(coro: Any, name: str) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(coro, name=f"{name}-under-test")
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    if not task.cancelled() and task.exception() is not None:
        raise AssertionError(f"{name} crashed") from task.exception()


async def _first(task: asyncio.Task[None], ready: Any) -> None:
    """Wait for ``ready``; a service that fails first raises its own error instead."""
    waiting = asyncio.ensure_future(ready)
    async with asyncio.timeout(15):
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if task.done():
        task.result()


async def open_door(pins: MockFactory, gateway: Gateway, times: int) -> None:
    """Open and shut the door ``times`` times; every edge is a reading (and so is the state
    the contact was in when the gateway started)."""
    door = pins.pin(17)

    def readings() -> int:
        return gateway.stats().readings_by_kind.get("door", 0)

    for _ in range(times):
        for drive in (door.drive_high, door.drive_low):
            before = readings()
            drive()
            await wait_until(lambda before=before: readings() == before + 1)


# What each endpoint says ------------------------------------------------------------------


async def test_gateway_metrics_match_its_stats_and_listen_on_loopback(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    async with gateway_running(mosquitto, topic_prefix, tmp_path, port) as (gateway, pins):
        await open_door(pins, gateway, 3)
        await wait_until(lambda: gateway.stats().queued == 0)
        samples = await scrape(port)
        stats = gateway.stats()
        url = gateway.metrics.url if gateway.metrics else ""

    assert url == f"http://127.0.0.1:{port}/metrics"
    assert value(samples, "qihe_gateway_info", site=SITE, gateway="gw1") == 1
    assert value(samples, "qihe_gateway_readings_total", kind="door") == 7  # the first, then 6
    assert stats.readings_by_kind == {"door": 7}
    assert value(samples, "qihe_gateway_outbox_readings") == stats.queued == 0
    assert value(samples, "qihe_gateway_mqtt_connected") == 1
    assert value(samples, "qihe_gateway_published_total") == stats.publisher.published
    assert value(samples, "qihe_gateway_mqtt_connects_total") == stats.publisher.connects == 1
    assert value(samples, "qihe_gateway_publish_held_readings") == 0
    assert not [name for name, _ in samples if name == "qihe_gateway_dropped_total"]


async def test_consumer_metrics_match_its_stats_after_real_traffic(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    port = free_port()
    config = consumer_config(mosquitto, influxd, influx_db, topic_prefix, port)
    async with (
        consumer_running(config) as consumer,
        gateway_running(mosquitto, topic_prefix, tmp_path, free_port()) as (gateway, pins),
    ):
        await open_door(pins, gateway, 2)
        # Five door readings and the gateway's online status, written and acknowledged.
        await wait_until(lambda: consumer.stats().acked == 6 and not consumer.stats().pending)
        samples = await scrape(port)
        stats = consumer.stats()

    assert value(samples, "qihe_consumer_points_written_total") == stats.written_points == 6
    assert value(samples, "qihe_consumer_messages_received_total") == stats.received == 6
    assert value(samples, "qihe_consumer_messages_acked_total") == stats.acked == 6
    assert value(samples, "qihe_consumer_messages_refused_total", reason="invalid") == 0
    assert value(samples, "qihe_consumer_messages_pending") == 0
    assert value(samples, "qihe_consumer_batches_total") == stats.batches
    # One write request per batch when nothing fails; each took some time.
    assert value(samples, "qihe_consumer_write_seconds_count") == stats.batches
    assert value(samples, "qihe_consumer_write_seconds_bucket", le="+Inf") == stats.batches
    assert value(samples, "qihe_consumer_write_seconds_sum") > 0


async def test_live_metrics_count_streams_and_events(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    async with (
        live_running(mosquitto, topic_prefix, port) as live,
        gateway_running(mosquitto, topic_prefix, tmp_path, free_port()) as (gateway, pins),
        httpx.AsyncClient(base_url=live.url) as http,
    ):
        events = read_events(http, "/api/v1/events")
        assert (await anext(events)).kind == "ready"
        await open_door(pins, gateway, 1)
        await wait_until(lambda: live.received >= 3)  # status and two door readings
        samples = await scrape(port)
        version, received = live.state.version, live.received
        await events.aclose()

    assert value(samples, "qihe_live_sse_clients") == 1
    assert value(samples, "qihe_live_events_total") == version > 0
    assert value(samples, "qihe_live_messages_received_total") == received
    assert value(samples, "qihe_live_messages_refused_total") == 0
    assert value(samples, "qihe_live_broker_connected") == 1


async def test_alerts_metrics_show_the_firing_rule_and_its_notification(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    async with alerts_running(mosquitto, topic_prefix, port) as engine:

        def online() -> bool:
            site = engine.facts.sites.get(SITE)
            return site is not None and site.gateways["gw1"].status == "online"

        async with gateway_running(mosquitto, topic_prefix, tmp_path, free_port()):
            await wait_until(online)
        # Stopped, the gateway says it is offline: the rule fires and the route is told.
        (worker,) = engine.workers
        await wait_until(lambda: worker.stats.delivered == 1, timeout=20)
        samples = await scrape(port)

    assert value(samples, "qihe_alerts_active", rule="gateway_offline") == 1
    assert value(samples, "qihe_alerts_active", rule="device_silent") == 0
    delivered = {"route": "duty-log", "outcome": "delivered"}
    assert value(samples, "qihe_alerts_notifications_total", **delivered) == 1
    failed = {"route": "duty-log", "outcome": "failed"}
    assert value(samples, "qihe_alerts_notifications_total", **failed) == 0
    assert value(samples, "qihe_alerts_route_attempts_total", route="duty-log") == 1
    assert value(samples, "qihe_alerts_route_queue", route="duty-log") == 0
    assert value(samples, "qihe_alerts_published_total") == engine.published >= 1
    assert value(samples, "qihe_alerts_broker_connected") == 1


# Off unless asked, loopback unless told, one clear error when it cannot listen -------------


def test_the_gateway_endpoint_is_off_unless_configured(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    plain = Gateway(gateway_config(mosquitto, topic_prefix, tmp_path))
    asked = gateway_config(mosquitto, topic_prefix, tmp_path, metrics={"listen": 9467})

    assert plain.metrics is None
    assert asked.metrics is not None
    assert asked.metrics.listen == "127.0.0.1:9467"


@pytest.mark.parametrize(
    ("given", "host", "port"),
    [
        (9464, "127.0.0.1", 9464),
        ("9464", "127.0.0.1", 9464),
        (":9464", "127.0.0.1", 9464),
        ("localhost:9464", "127.0.0.1", 9464),
        ("10.8.0.12:9464", "10.8.0.12", 9464),
        ("0.0.0.0:9464", "0.0.0.0", 9464),
        ("[::1]:9464", "::1", 9464),
        ("127.0.0.1:0", "127.0.0.1", 0),
    ],
)
def test_listen_takes_a_port_or_an_ip_and_a_port(given: str | int, host: str, port: int) -> None:
    assert parse_listen(given) == (host, port)


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("metrics.example.org:9464", "the host must be an IP address"),
        ("::1:9464", "write an IPv6 address in brackets"),
        ("127.0.0.1:70000", "the port must be a number from 0 to 65535"),
        ("127.0.0.1:", "the port must be a number from 0 to 65535"),
        ("all", "the port must be a number from 0 to 65535"),
        ("127.0.0.1:94 64", "the port must be a number from 0 to 65535"),
    ],
)
def test_a_bad_listen_address_is_refused_with_the_reason(given: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_listen(given)


def test_a_bad_metrics_address_in_a_gateway_config_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "site": SITE,
                "gateway": "gw1",
                "broker": {"host": "127.0.0.1"},
                "gpio": [{"pin": 17, "kind": "door", "sensor": "entrance"}],
                "metrics": {"listen": "pi.local:9467"},
            }
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path)

    assert "metrics.listen" in str(caught.value)
    assert "the host must be an IP address" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "port"),
    [("consumer", 9464), ("live", 9465), ("alerts", 9466), ("gateway-taoyuan", 9467)],
)
def test_the_sample_configs_show_a_metrics_block_that_validates(name: str, port: int) -> None:
    text = (Path(__file__).resolve().parent.parent / "config" / f"{name}.yaml").read_text()
    head, _, block = text.partition("\n# metrics:\n")
    assert head and block, f"config/{name}.yaml has no commented metrics block"
    uncommented = "metrics:\n" + "".join(
        line.removeprefix("#") + "\n" for line in block.splitlines() if line.startswith("#  ")
    )
    config = MetricsConfig.model_validate(yaml.safe_load(uncommented)["metrics"])

    assert config.listen == f"127.0.0.1:{port}"


@contextlib.contextmanager
def port_taken() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def test_a_consumer_whose_metrics_port_is_taken_does_not_start(
    mosquitto: MosquittoProcess, influxd: InfluxdProcess, influx_db: str, topic_prefix: str
) -> None:
    with port_taken() as port:
        consumer = Consumer(consumer_config(mosquitto, influxd, influx_db, topic_prefix, port))
        with pytest.raises(ConsumerStartError) as caught:
            consumer.start()

    assert str(caught.value) == (
        "consumer: 指标端点无法监听 the metrics endpoint cannot listen on "
        f"127.0.0.1:{port}: Address already in use"
    )


async def test_a_live_service_whose_metrics_port_is_taken_stops_with_the_reason(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    with (
        port_taken() as port,
        pytest.raises(MetricsError, match=f"cannot listen on 127.0.0.1:{port}"),
    ):
        async with live_running(mosquitto, topic_prefix, port):
            pass


def test_gateway_run_with_its_metrics_port_taken_exits_with_one_line(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "gateway.yaml"
    with port_taken() as port:
        config = {
            "site": SITE,
            "gateway": "gw1",
            "state_dir": str(tmp_path / "state"),
            "broker": {
                "host": mosquitto.host,
                "port": mosquitto.port,
                "topic_prefix": topic_prefix,
            },
            "gpio": [{"pin": 17, "kind": "door", "sensor": "entrance"}],
            "metrics": metrics_on(port),
        }
        path.write_text(yaml.safe_dump(config))
        done = subprocess.run(
            [sys.executable, "-m", "qihe_cli.main", "gateway", "run", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "qihe: gateway: 指标端点无法监听 the metrics endpoint cannot listen on "
        f"127.0.0.1:{port}: Address already in use"
    )


def test_alerts_with_its_metrics_port_taken_exits_with_one_line(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    (tmp_path / "sites.yaml").write_text(
        yaml.safe_dump(DIRECTORY.model_dump(mode="json", exclude_defaults=True), allow_unicode=True)
    )
    path = tmp_path / "alerts.yaml"
    with port_taken() as port:
        config = {
            "sites": "sites.yaml",
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "topic_prefix": topic_prefix},
            "metrics": metrics_on(port),
        }
        path.write_text(yaml.safe_dump(config))
        done = subprocess.run(
            [sys.executable, "-m", "qihe_cli.main", "alerts", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "qihe: alerts: 指标端点无法监听 the metrics endpoint cannot listen on "
        f"127.0.0.1:{port}: Address already in use"
    )


# Reads on the service's own loop ---------------------------------------------------------


class _WhereRead:
    """A collector that notes which thread reads it."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def collect(self) -> Iterable[Metric]:
        self.threads.append(threading.current_thread())
        yield GaugeMetricFamily("qihe_test_reads", "Reads so far.", value=len(self.threads))


async def test_an_asyncio_services_collectors_are_read_on_its_event_loop() -> None:
    collector = _WhereRead()
    server = MetricsServer(MetricsConfig(listen="127.0.0.1:0"), [collector], service="test")
    await server.astart()
    try:
        assert server.port is not None
        samples = await scrape(server.port)
    finally:
        await server.astop()

    assert value(samples, "qihe_test_reads") == 1
    assert collector.threads == [threading.current_thread()]
    assert server.port is None
