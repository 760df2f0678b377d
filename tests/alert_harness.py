"""Helpers for alert tests against the real broker: a running engine, an alert watcher, a site."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from central.alerts.config import AlertsConfig
from central.alerts.engine import AlertEngine
from central.alerts.model import Notification
from central.alerts.routes import RouteSettings, RouteWorker
from central.sites import SiteDirectory
from devstack import MosquittoProcess
from edge.config import GatewayConfig
from edge.gateway import Gateway
from edge.system import SystemProbe, SystemSnapshot
from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort
from qihe.clock import Clock, utc_now
from qihe.contract import TopicTree
from tests.mqtt_helpers import Received, Recorder, running, wait_until

SITE = "qibin-taoyuan"
DEVICE = "taoyuan-a"


def directory(**site: Any) -> SiteDirectory:
    return SiteDirectory.model_validate(
        {
            "sites": [
                {
                    "id": SITE,
                    "name": "淇河书屋·桃园站",
                    "opening_hours": {"daily": "00:00-24:00"},
                    **site,
                }
            ]
        }
    )


def alerts_config(broker: MosquittoProcess, prefix: str, **extra: Any) -> AlertsConfig:
    rules = extra.pop("rules", {})
    return AlertsConfig.model_validate(
        {
            "sites": "unused.yaml",
            "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
            "evaluation_interval": 0.1,
            "group_wait": 0,
            "group_interval": 0,
            "restore_wait": 0.3,
            "rules": rules,
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def engine_running(
    config: AlertsConfig,
    sites: SiteDirectory | None = None,
    workers: Sequence[RouteWorker] = (),
    *,
    clock: Clock = utc_now,
) -> AsyncIterator[AlertEngine]:
    engine = AlertEngine(config, sites or directory(), workers=workers, clock=clock)
    task = asyncio.create_task(engine.run(), name="alerts-under-test")
    try:
        async with asyncio.timeout(10):
            await engine.evaluating.wait()
        yield engine
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    if not task.cancelled() and task.exception() is not None:
        raise AssertionError("the alert engine crashed") from task.exception()


class AlertWatch:
    """Everything published under ``{prefix}/v1/_alerts/#``, decoded."""

    def __init__(self, broker: MosquittoProcess, prefix: str) -> None:
        self.recorder = Recorder(broker, TopicTree(prefix).alerts_filter())

    def close(self) -> None:
        self.recorder.close()

    def alerts(self) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.recorder.snapshot() if m.payload]

    def states(self, rule: str) -> list[str]:
        """The states published for ``rule``, in order, without repeats of the same state."""
        out: list[str] = []
        for alert in self.alerts():
            if alert["rule"] == rule and (not out or out[-1] != alert["state"]):
                out.append(alert["state"])
        return out

    async def until(self, rule: str, state: str, timeout: float = 20) -> dict[str, Any]:
        def found() -> bool:
            return any(a["rule"] == rule and a["state"] == state for a in self.alerts())

        with contextlib.suppress(TimeoutError):
            await wait_until(found, timeout=timeout)
        matches = [a for a in self.alerts() if a["rule"] == rule and a["state"] == state]
        assert matches, (
            f"no {state} {rule} alert; saw {[(a['rule'], a['state']) for a in self.alerts()]}"
        )
        return matches[-1]

    def retained(self) -> list[Received]:
        return [m for m in self.recorder.snapshot() if m.retain]


@contextlib.asynccontextmanager
async def watching(broker: MosquittoProcess, prefix: str) -> AsyncIterator[AlertWatch]:
    watch = AlertWatch(broker, prefix)
    try:
        yield watch
    finally:
        watch.close()


@contextlib.asynccontextmanager
async def board_site(
    broker: MosquittoProcess,
    prefix: str,
    folder: Path,
    *,
    emulator: dict[str, Any] | None = None,
    gateway: dict[str, Any] | None = None,
    system_probe: SystemProbe | None = None,
    clock: Clock = utc_now,
) -> AsyncIterator[tuple[BookHouseEmulator, Gateway]]:
    """A gateway (in this process) reading one scripted emulated board on a pty."""
    board = BookHouseEmulator(
        EmulatorConfig(device_id=DEVICE, seats=6, simulate=False, speed=1, **(emulator or {}))
    )
    link = folder / "usb-qihe_board"
    config = GatewayConfig.model_validate(
        {
            "site": SITE,
            "gateway": "gw1",
            "state_dir": folder / "state",
            "broker": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
            "serial": [{"path": str(link), "device": DEVICE}],
            "link_report_interval": 0.5,
            **(gateway or {}),
        }
    )
    gw = Gateway(config, system_probe=system_probe, clock=clock)
    async with PtyPort(link) as port, running(gw):
        await wait_until(lambda: gw.serial_sources[0].connected.is_set())
        async with board.attach(port):
            yield board, gw


class HostAtWill:
    """A gateway host whose disk, memory and temperature the test sets (read from threads:
    one attribute swap is atomic)."""

    def __init__(self) -> None:
        gib = 1 << 30
        self.snapshot = SystemSnapshot(
            disk_free_bytes=20 * gib,
            disk_total_bytes=32 * gib,
            mem_available_bytes=3 * gib,
            mem_total_bytes=4 * gib,
            cpu_temp_c=48.0,
            load_1m=0.3,
        )

    def read(self) -> SystemSnapshot:
        return self.snapshot

    def set(self, **values: Any) -> None:
        self.snapshot = replace(self.snapshot, **values)


class RecordingRoute:
    """A route that keeps what it is given (for what is sent when, not how it looks)."""

    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def send(self, notifications: Sequence[Notification]) -> None:
        self.sent.extend(notifications)

    async def aclose(self) -> None:
        return None

    def worker(self) -> RouteWorker:
        return RouteWorker(self, RouteSettings(name=self.name))
