"""A real Prometheus (Debian's) scrapes the four services; promtool checks the sample config
and rules in ``deploy/prometheus/`` and runs their unit tests."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import InfluxdProcess, MosquittoProcess, PrometheusProcess, free_port
from devstack.processes import find_program
from tests.mqtt_helpers import wait_until
from tests.test_metrics import (
    alerts_running,
    consumer_config,
    consumer_running,
    gateway_running,
    live_running,
    open_door,
)

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
JOBS = ("qihe-consumer", "qihe-live", "qihe-alerts", "qihe-gateway")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    command = [find_program("promtool", "/usr/bin/promtool", package="prometheus"), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=DEPLOY, timeout=60)


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "rules/qihe.rules.yml"),
        ("test", "rules", "tests/qihe.rules.test.yml"),
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool_passes_the_sample_config_and_rules(args: tuple[str, ...]) -> None:
    done = promtool(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def scrape_config(ports: dict[str, int], rules: Path) -> str:
    """The sample ``prometheus.yml`` pointed at this test's ports, scraping every second."""
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules)]
    for job in config["scrape_configs"]:
        job.pop("file_sd_configs", None)
        job.pop("scrape_interval", None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    assert sorted(ports) == sorted(j["job_name"] for j in config["scrape_configs"])
    return yaml.safe_dump(config, allow_unicode=True)


async def until_series(
    prometheus: PrometheusProcess, promql: str, check: Callable[[list[float]], bool]
) -> list[float]:
    """Poll an instant query until its values pass ``check``; return them."""
    values: list[float] = []

    async def answered() -> bool:
        nonlocal values
        values = sorted((await asyncio.to_thread(prometheus.query, promql)).values())
        return check(values)

    try:
        async with asyncio.timeout(30):
            while not await answered():
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"{promql} never passed; last answer {values}") from None
    return values


async def test_a_real_prometheus_scrapes_all_four_services_and_evaluates_the_rules(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    ports = {job: free_port() for job in JOBS}
    consumer_setup = consumer_config(
        mosquitto, influxd, influx_db, topic_prefix, ports["qihe-consumer"]
    )
    prometheus = PrometheusProcess(
        tmp_path / "prometheus", scrape_config(ports, DEPLOY / "rules" / "qihe.rules.yml")
    )
    async with (
        consumer_running(consumer_setup) as consumer,
        live_running(mosquitto, topic_prefix, ports["qihe-live"]),
        alerts_running(mosquitto, topic_prefix, ports["qihe-alerts"]),
        gateway_running(mosquitto, topic_prefix, tmp_path, ports["qihe-gateway"]) as (
            gateway,
            pins,
        ),
    ):
        await asyncio.to_thread(prometheus.start)
        try:
            up = await until_series(prometheus, 'up{job=~"qihe-.*"}', lambda v: v == [1.0] * 4)
            # Traffic once Prometheus watches: its counters move between two scrapes.
            await open_door(pins, gateway, 2)
            await wait_until(lambda: consumer.stats().acked == 6 and not consumer.stats().pending)
            written = await until_series(
                prometheus, "qihe_consumer_points_written_total", lambda v: v == [6.0]
            )
            doors = await until_series(
                prometheus, 'qihe_gateway_readings_total{kind="door"}', lambda v: v == [5.0]
            )
            connected = await until_series(
                prometheus,
                '{__name__=~"qihe_(gateway_mqtt|live_broker|alerts_broker)_connected"}',
                lambda v: len(v) == 3,
            )
            # A recording rule over two scrapes of the counter, joined with nothing else.
            rate = await until_series(
                prometheus, "job:qihe_consumer_points_written:rate5m", lambda v: v > [0.0]
            )
            # ...and one that takes the site and gateway from qihe_gateway_info.
            per_gateway = await until_series(
                prometheus,
                'gateway:qihe_gateway_readings:rate5m{site="qibin-taoyuan", gateway="gw1"}',
                lambda v: v > [0.0],
            )
            rules = await asyncio.to_thread(prometheus.api, "rules")
            firing = await asyncio.to_thread(prometheus.query, 'ALERTS{alertstate="firing"}')
        finally:
            await asyncio.to_thread(prometheus.stop)

    assert up == [1.0, 1.0, 1.0, 1.0]
    assert written == [6.0]
    assert doors == [5.0]  # the contact's state at start, then four edges
    assert connected == [1.0, 1.0, 1.0]
    assert rate[0] > 0
    assert per_gateway[0] > 0
    health = {rule["name"]: rule["health"] for g in rules["groups"] for rule in g["rules"]}
    assert len(health) == 17
    assert set(health.values()) == {"ok"}, health
    assert firing == {}
