"""Helpers for tests against the real broker: a recording subscriber, a running gateway."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml

from devstack import MosquittoProcess
from edge.gateway import Gateway


@contextlib.asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[Gateway]:
    """Run a gateway for the length of the block, then cancel it and wait for it to finish."""
    task = asyncio.create_task(gateway.run(), name="gateway-under-test")
    try:
        yield gateway
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise AssertionError("the gateway crashed") from task.exception()


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` without blocking the event loop; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Recorder:
    """Subscribes to ``topic_filter`` and keeps every message in arrival order."""

    def __init__(self, broker: MosquittoProcess, topic_filter: str) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.on_connect = lambda c, *a: c.subscribe(topic_filter, qos=1)
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        if not self._subscribed.wait(5):
            raise TimeoutError(f"could not subscribe to {topic_filter}")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, msg.payload, bool(msg.retain)))

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.snapshot()
            if predicate(messages):
                return messages
            time.sleep(0.02)
        raise AssertionError(f"timed out; received {len(self.snapshot())} messages")

    async def until(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> list[Received]:
        """Like :meth:`wait_for`, without blocking the event loop the code under test runs on."""
        async with asyncio.timeout(timeout):
            while not predicate(messages := self.snapshot()):
                await asyncio.sleep(0.02)
        return messages

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


class GatewayProcess:
    """``qihe gateway run`` in its own process, so it can be killed or frozen for real."""

    def __init__(
        self,
        broker: MosquittoProcess,
        prefix: str,
        folder: Path,
        link: Path,
        *,
        site: str,
        device: str,
    ) -> None:
        self.config = folder / "gateway.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "site": site,
                    "gateway": "gw1",
                    "state_dir": str(folder / "state"),
                    "broker": {
                        "host": broker.host,
                        "port": broker.port,
                        "topic_prefix": prefix,
                        "keepalive": 5,
                    },
                    "serial": [{"path": str(link), "device": device}],
                    "link_report_interval": 1,
                }
            )
        )
        self.log = folder / "gateway.log"
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> GatewayProcess:
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *(
                    sys.executable,
                    "-m",
                    "qihe_cli.main",
                    "gateway",
                    "run",
                    "--config",
                    str(self.config),
                ),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        return self

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        os.kill(self.process.pid, sig)

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
        async with asyncio.timeout(10):
            await self.process.wait()
