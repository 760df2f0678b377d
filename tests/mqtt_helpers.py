"""Helpers for tests against the real broker: a recording subscriber, a running gateway."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from edge.gateway import Gateway
from qihe.devstack import MosquittoProcess


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
