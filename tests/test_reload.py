"""SIGHUP reloads the config of ``qihe alerts`` and ``qihe live`` without losing what they hold;
a bad new config is refused with one line and the old one kept. Real signals, sent to this
process with the handler installed on the loop, and to a ``qihe alerts`` child process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml

from central.alerts.cli import _load as load_alerts
from central.live.config import load_live_setup
from central.reload import ConfigReloader
from devstack import MosquittoProcess
from qihe.running import reload_on_sighup
from tests.alert_control_harness import ack, raise_fault
from tests.alert_harness import SITE, engine_running
from tests.mqtt_helpers import wait_until
from tests.test_live_service import serving

pytestmark = pytest.mark.integration


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    path.chmod(0o640)  # it may hold a secret (an operator token)
    return path


def _sites(folder: Path) -> Path:
    return _write(folder / "sites.yaml", {"sites": [{"id": SITE, "name": "淇河书屋·桃园站"}]})


def _alerts_yaml(
    broker: MosquittoProcess, prefix: str, folder: Path, **extra: Any
) -> dict[str, Any]:
    _sites(folder)
    return {
        "sites": "sites.yaml",
        "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
        "evaluation_interval": 0.1, "group_wait": 0, "group_interval": 0, "restore_wait": 0.3,
        "state_dir": "state",
        **extra,
    }  # fmt: skip


@contextlib.asynccontextmanager
async def sighup_reloads(reloader: ConfigReloader[Any]) -> AsyncIterator[Callable[[], Any]]:
    """SIGHUP to this process reloads; yields a coroutine function: send one and wait."""
    reload_on_sighup(reloader.trigger)

    async def hup() -> None:
        before = reloader.reloaded + reloader.refused
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_until(lambda: reloader.reloaded + reloader.refused > before)

    try:
        yield hup
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await reloader.aclose()


async def test_the_alert_engine_takes_a_new_config_on_sighup_and_keeps_its_alerts_and_acks(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    publisher: mqtt.Client,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = _write(tmp_path / "alerts.yaml", _alerts_yaml(mosquitto, topic_prefix, tmp_path))
    config, directory = load_alerts(path)
    async with engine_running(config, directory) as engine:
        reloader = ConfigReloader(
            "alerts", path, load=lambda: load_alerts(path), apply=lambda new: engine.reload(*new)
        )
        async with sighup_reloads(reloader) as hup:
            raise_fault(publisher, topic_prefix)
            await wait_until(lambda: bool(engine.book.firing))
            alert = engine.book.firing[0]
            engine.controls.take(engine._feed.tree.alert_control(SITE), ack(alert.id), False)
            await wait_until(lambda: engine.book.firing[0].acknowledged is not None)

            _write(path, _alerts_yaml(mosquitto, topic_prefix, tmp_path, repeat_interval="PT8H",
                                      rules={"door_open": {"open_longer_than": 1200}}))  # fmt: skip
            with caplog.at_level(logging.INFO, logger="central.reload"):
                await hup()

            assert reloader.reloaded == 1
            assert engine.config.repeat_interval.total_seconds() == 8 * 3600
            assert engine.config.rules.door_open.open_longer_than.total_seconds() == 1200
            assert [a.id for a in engine.book.firing] == [alert.id]
            assert engine.book.firing[0].starts_at == alert.starts_at
            assert engine.book.firing[0].acknowledged is not None
            assert "配置已重新加载 config reloaded" in caplog.text


@pytest.mark.parametrize(
    ("breaks", "complaint"),
    [
        pytest.param(lambda p, _: p.write_text("rules: [not: a: map"), "alerts.yaml",
                     id="not-yaml"),
        pytest.param(lambda p, d: _write(p, {**d, "repeat_interval": -5}), "repeat_interval",
                     id="invalid-value"),
        pytest.param(lambda p, d: _write(p, {**d, "mqtt": {**d["mqtt"], "port": 1}}),
                     "only at a restart", id="needs-restart"),
    ],
)  # fmt: skip
async def test_a_bad_new_alerts_config_is_refused_and_the_old_one_kept(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    breaks: Callable[[Path, dict[str, Any]], Any],
    complaint: str,
) -> None:
    data = _alerts_yaml(mosquitto, topic_prefix, tmp_path)
    path = _write(tmp_path / "alerts.yaml", data)
    config, directory = load_alerts(path)
    async with engine_running(config, directory) as engine:
        reloader = ConfigReloader(
            "alerts", path, load=lambda: load_alerts(path), apply=lambda new: engine.reload(*new)
        )
        async with sighup_reloads(reloader) as hup:
            breaks(path, data)
            await hup()

            assert (reloader.reloaded, reloader.refused) == (0, 1)
            assert engine.config is config
            assert engine.connected.is_set()
    assert "新配置被拒绝，继续使用原配置 new config refused, keeping the old one" in caplog.text
    assert complaint in caplog.text


async def test_the_live_service_takes_a_new_operator_token_on_sighup_keeping_its_streams(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    _sites(tmp_path)
    data = {
        "sites": "sites.yaml",
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "topic_prefix": topic_prefix},
        "http": {"port": 0, "operator_token": "first-token-0001"},
    }
    path = _write(tmp_path / "live.yaml", data)
    setup = load_live_setup(path)
    async with serving(setup.config, setup.directory) as service:
        reloader = ConfigReloader(
            "live", path, load=lambda: load_live_setup(path),
            apply=lambda new: service.reload(new.config, new.directory),
        )  # fmt: skip
        async with (
            sighup_reloads(reloader) as hup,
            httpx.AsyncClient(base_url=service.url, timeout=10) as http,
            http.stream("GET", "/api/v1/events",
                        headers={"Authorization": "Bearer first-token-0001"}) as stream,
        ):  # fmt: skip
            await wait_until(lambda: service.hub.subscribers == 1)
            _write(path, {**data, "http": {"port": 0, "operator_token": "second-token-0002"},
                          "gateway_silent_after": 600})  # fmt: skip
            await hup()
            old = await http.get(
                "/api/v1/sites", headers={"Authorization": "Bearer first-token-0001"}
            )
            new = await http.get(
                "/api/v1/sites", headers={"Authorization": "Bearer second-token-0002"}
            )
            still_open = service.hub.subscribers
            _write(path, {**data, "http": {"port": 1234, "operator_token": "second-token-0002"}})
            await hup()

            assert stream.status_code == 200
    assert (old.status_code, new.status_code) == (401, 200)
    assert still_open == 1
    assert service.state.timeouts.gateway_silent_after.total_seconds() == 600
    assert (reloader.reloaded, reloader.refused) == (1, 1)


def test_qihe_alerts_reloads_on_sighup_and_refuses_a_broken_file(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    data = _alerts_yaml(mosquitto, topic_prefix, tmp_path)
    path = _write(tmp_path / "alerts.yaml", data)
    log = tmp_path / "alerts.log"
    with open(log, "wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "qihe_cli.main", "alerts", "--config", str(path)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for(log, "listening at")
        _write(path, {**data, "repeat_interval": "PT8H"})
        child.send_signal(signal.SIGHUP)
        _wait_for(log, "config reloaded")
        path.write_text("mqtt: [")
        child.send_signal(signal.SIGHUP)
        _wait_for(log, "new config refused")
        assert child.poll() is None  # still running on the old config
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=10)
    assert child.returncode == 0


def _wait_for(log: Path, text: str, timeout: float = 15) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the log:\n{log.read_text(errors='replace')}")
