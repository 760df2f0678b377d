"""The gateway publisher without a broker: a fake client behind the ``MqttClient`` seam.

The window of publishes awaiting their PUBACK, readings the broker refuses, the status and
its Last Will: the publisher's own logic, with PUBACKs and deliveries in the test's hands.
The same behaviour against the real Mosquitto: tests/test_publish_refused.py,
tests/test_gateway_broker_outage.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt

from edge.config import GatewayConfig
from edge.outbox import Outbox
from edge.publisher import MqttPublisher, PublisherStats
from qihe.contract import (
    DoorReading,
    GatewayStatus,
    Reading,
    SeatReading,
    TopicTree,
    encode_payload,
    parse_status,
)
from qihe.mqtt import MqttClient, PublishRefusedError, ReceivedMessage
from tests.mqtt_helpers import wait_until

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
SITE, GATEWAY = "qibin-taoyuan", "gw1"
STATUS_TOPIC = TopicTree().status(SITE, GATEWAY)


def fixed_clock() -> datetime:
    return T0


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes


@dataclass(frozen=True)
class Published:
    topic: str
    payload: bytes
    retain: bool


class FakeBroker:
    """Stands in for Mosquitto: keeps what was published and answers each PUBACK as told.

    Publishes of readings wait at ``gate`` (closed: no PUBACK comes); a topic of a kind in
    ``refused_kinds`` is answered 0x87 Not authorized.
    """

    def __init__(self) -> None:
        self.wills: list[aiomqtt.Will] = []
        self.accepted: list[Published] = []
        self.refusals = 0
        self.refused_kinds: set[str] = set()
        self.gate = asyncio.Event()
        self.gate.set()
        self.in_flight = 0
        self.most_in_flight = 0
        self.client: FakeClient | None = None

    @contextlib.asynccontextmanager
    async def connect(self, will: aiomqtt.Will) -> AsyncIterator[MqttClient]:
        self.wills.append(will)
        self.client = FakeClient(self)
        try:
            yield self.client
        finally:
            self.client = None

    def deliver(self, topic: str, payload: bytes) -> None:
        """A message on a topic the publisher subscribed to."""
        assert self.client is not None
        self.client.inbox.put_nowait(Message(topic, payload))

    def drop(self) -> None:
        """The connection is lost."""
        assert self.client is not None
        self.client.inbox.put_nowait(aiomqtt.MqttError("connection lost"))

    def statuses(self) -> list[tuple[str, int]]:
        return [
            (status.state, status.session)
            for status in (
                parse_status(p.payload) for p in self.accepted if p.topic == STATUS_TOPIC
            )
        ]

    def readings(self, kind: str) -> list[dict[str, Any]]:
        return [json.loads(p.payload) for p in self.accepted if f"/{kind}/" in p.topic]


class FakeClient:
    """One connection to the :class:`FakeBroker`; implements :class:`qihe.mqtt.MqttClient`."""

    def __init__(self, broker: FakeBroker) -> None:
        self._broker = broker
        self.inbox: asyncio.Queue[Message | Exception] = asyncio.Queue()
        self.subscriptions: list[str] = []

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int,
        retain: bool = False,
        timeout: float | None = None,
    ) -> None:
        assert qos == 1
        broker = self._broker
        broker.in_flight += 1
        broker.most_in_flight = max(broker.most_in_flight, broker.in_flight)
        try:
            if topic != STATUS_TOPIC:
                await broker.gate.wait()
        finally:
            broker.in_flight -= 1
        if any(f"/{kind}/" in topic for kind in broker.refused_kinds):
            broker.refusals += 1
            raise PublishRefusedError(topic, 0x87, "Not authorized")
        broker.accepted.append(Published(topic, payload, retain))

    async def subscribe(self, topic: str, *, qos: int) -> object:
        self.subscriptions.append(topic)
        return (qos,)

    @property
    def messages(self) -> AsyncIterator[ReceivedMessage]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[ReceivedMessage]:
        while True:
            item = await self.inbox.get()
            if isinstance(item, Exception):
                raise item
            yield item


def gateway_config(tmp_path: Path, **broker: object) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "site": SITE,
            "gateway": GATEWAY,
            "state_dir": tmp_path / "state",
            "broker": {"host": "broker.invalid", "reconnect_min": 0.05, "reconnect_max": 0.2}
            | broker,
            "gpio": [{"pin": 17, "kind": "door", "sensor": "entrance"}],
        }
    )


def seat(n: int) -> SeatReading:
    return SeatReading(
        site=SITE,
        gateway=GATEWAY,
        device="board-a",
        sensor=f"board-a.{n % 4}",
        occupied=n % 2 == 0,
        ts=T0 + timedelta(seconds=n),
        seq=n,
    )


def door(n: int, *, is_open: bool) -> DoorReading:
    return DoorReading(
        site=SITE,
        gateway=GATEWAY,
        device="board-a",
        sensor="entrance",
        open=is_open,
        ts=T0 + timedelta(seconds=n),
        seq=n,
    )


@dataclass(frozen=True)
class Rig:
    broker: FakeBroker
    publisher: MqttPublisher
    outbox: Outbox

    def put(self, *readings: Reading) -> None:
        for reading in readings:
            self.outbox.put(reading)

    def stats(self) -> PublisherStats:
        return self.publisher.stats()


@contextlib.asynccontextmanager
async def publishing(tmp_path: Path, **broker_options: object) -> AsyncIterator[Rig]:
    """A publisher on an outbox of its own, connected to a :class:`FakeBroker`; stopped
    cleanly (as at a gateway's shutdown) when the block ends."""
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_readings=10_000, commit_interval=0.01)
    await outbox.open()
    broker = FakeBroker()
    config = gateway_config(tmp_path, **broker_options)
    publisher = MqttPublisher(config, outbox, clock=fixed_clock, connect=broker.connect)
    storing = asyncio.create_task(outbox.run(), name="outbox")
    running = asyncio.create_task(publisher.run(), name="publisher")
    try:
        await wait_until(publisher.connected.is_set)
        yield Rig(broker, publisher, outbox)
    finally:
        for task in (running, storing):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await outbox.close()


def will_session(will: aiomqtt.Will) -> int:
    assert isinstance(will.payload, bytes)
    status = parse_status(will.payload)
    assert status.state == "offline"
    return status.session


async def test_no_more_publishes_than_max_inflight_await_their_puback(tmp_path: Path) -> None:
    async with publishing(tmp_path, max_inflight=3) as rig:
        broker = rig.broker
        broker.gate.clear()  # no PUBACK comes
        rig.put(*(seat(n) for n in range(10)))
        await wait_until(lambda: broker.in_flight == 3)
        await asyncio.sleep(0.1)  # time enough for a fourth, were the window not bounded
        assert (broker.in_flight, rig.stats().published) == (3, 0)
        broker.gate.set()
        await wait_until(lambda: rig.stats().published == 10)
    assert broker.most_in_flight == 3
    assert sorted(reading["seq"] for reading in broker.readings("seat")) == list(range(10))


async def test_a_refused_reading_is_held_and_goes_out_once_when_the_broker_allows_it(
    tmp_path: Path,
) -> None:
    async with publishing(tmp_path) as rig:
        broker = rig.broker
        broker.refused_kinds.add("door")
        rig.put(door(1, is_open=True), seat(2), door(3, is_open=False))
        await wait_until(lambda: rig.stats().held == 2 and rig.stats().published == 1)
        assert len(broker.readings("seat")) == 1  # other sensors flow meanwhile
        await wait_until(lambda: broker.refusals >= 3)  # retried with a backoff, refused again
        stats = rig.stats()
        assert (stats.refused, stats.held, stats.published) == (2, 2, 1)  # counted once each
        assert rig.publisher.refusal_snapshot().by_kind == {("door", 0x87): 2}
        broker.refused_kinds.clear()
        await wait_until(lambda: rig.stats().published == 3)
        assert rig.stats().held == 0
    assert [reading["open"] for reading in broker.readings("door")] == [True, False]


async def test_online_under_a_will_of_its_session_and_offline_at_a_clean_stop(
    tmp_path: Path,
) -> None:
    async with publishing(tmp_path) as rig:
        broker, session = rig.broker, rig.stats().session
        [will] = broker.wills
        assert (will.topic, will.qos, will.retain) == (STATUS_TOPIC, 1, True)
        assert will_session(will) == session
        assert broker.statuses() == [("online", session)]
        assert all(p.retain for p in broker.accepted)
    assert broker.statuses() == [("online", session), ("offline", session)]


async def test_a_late_will_of_an_older_session_is_corrected_to_online(tmp_path: Path) -> None:
    async with publishing(tmp_path) as rig:
        broker, session = rig.broker, rig.stats().session
        late_will = GatewayStatus(
            site=SITE, gateway=GATEWAY, state="offline", session=session - 1, ts=T0
        )
        broker.deliver(STATUS_TOPIC, encode_payload(late_will))
        await wait_until(lambda: rig.stats().will_corrections == 1)
        assert broker.statuses() == [("online", session), ("online", session)]


async def test_a_lost_connection_reconnects_as_the_next_session_and_loses_no_reading(
    tmp_path: Path,
) -> None:
    async with publishing(tmp_path) as rig:
        broker, first = rig.broker, rig.stats().session
        broker.gate.clear()
        rig.put(seat(1))
        await wait_until(lambda: broker.in_flight == 1)
        broker.drop()  # with the reading still awaiting its PUBACK
        await wait_until(lambda: rig.stats().connects == 2)
        broker.gate.set()
        # Unconfirmed, it is backlog now: its latest state again, then the backlog batch.
        await wait_until(lambda: rig.stats().backlog_batches == 1)
        stats = rig.stats()
        assert (stats.session, stats.connection_failures, stats.published) == (first + 1, 1, 1)
        assert [will_session(will) for will in broker.wills] == [first, first + 1]
    assert [reading["seq"] for reading in broker.readings("seat")] == [1]
    [batch] = [p for p in broker.accepted if p.topic.endswith("/backlog")]
    assert [reading["seq"] for reading in json.loads(batch.payload)["readings"]] == [1]
