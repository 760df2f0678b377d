"""Publish readings from the outbox to MQTT, and keep the gateway's availability topic true.

Per connection: a new session number; a Last Will ``offline`` for that session;
a retained ``online`` status; then readings at QoS 1, a bounded number in
flight, each confirmed to the outbox only after its PUBACK. The gateway also
watches its own status topic: if the broker publishes a late Will of an older
session over our ``online``, we publish ``online`` again.

A PUBACK that refuses (MQTT 5 reason 0x80 or above: Mosquitto's 0x87 when its ACL
denies the topic) confirms nothing: the reading stays in the outbox, is counted by
kind and reason, and is retried with a backoff while other sensors' readings flow
(``edge/refusals.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import aiomqtt
from paho.mqtt.client import topic_matches_sub

from edge.config import GatewayConfig
from edge.outbox import Outbox, StoredReading
from edge.refusals import HeldReadings, RefusalCounter, RefusalSnapshot
from edge.session import SessionCounter
from qihe.backoff import Backoff
from qihe.clock import Clock, utc_now
from qihe.contract import (
    RETAINED_KINDS,
    ConfigReport,
    ContractError,
    GatewayStatus,
    RefusedKind,
    TopicTree,
    encode_batch,
    encode_payload,
    parse_status,
)
from qihe.mqtt import MqttClient, PublishRefusedError, connect

__all__ = ["MessageHandler", "MqttPublisher", "PublisherStats"]

log = logging.getLogger(__name__)

#: Publishes waiting this long for any PUBACK mean a broker that stopped acknowledging.
_ACK_TIMEOUT = 10.0

#: Opens one connection with the given Last Will; the client is connected inside the ``async
#: with`` and the connection ends with it. A lost connection raises :class:`aiomqtt.MqttError`.
Connect = Callable[[aiomqtt.Will], contextlib.AbstractAsyncContextManager[MqttClient]]

#: Called on the event loop with the topic and payload of a message that came on a filter
#: registered with :meth:`MqttPublisher.listen`; it must not block (schedule work instead).
MessageHandler = Callable[[str, bytes], None]


class _Flight:
    """The publishes awaiting their PUBACK: a bounded window, and a watch on its progress."""

    def __init__(self, window: int, ack_timeout: float) -> None:
        self.slots = asyncio.Semaphore(window)
        self._ack_timeout = ack_timeout
        self._in_flight = 0
        self._progress = time.monotonic()

    def started(self) -> None:
        if not self._in_flight:  # the clock runs only while something waits
            self._progress = time.monotonic()
        self._in_flight += 1

    def done(self) -> None:
        self._in_flight -= 1
        self._progress = time.monotonic()
        self.slots.release()

    async def watch(self) -> None:
        """Raise :class:`aiomqtt.MqttError` once publishes wait ``ack_timeout`` for a PUBACK."""
        timeout = self._ack_timeout
        while True:
            await asyncio.sleep(timeout / 4)
            if self._in_flight and time.monotonic() - self._progress > timeout:
                raise aiomqtt.MqttError(
                    f"no PUBACK for {timeout:.0f}s with {self._in_flight} publishes waiting"
                )


@dataclass(frozen=True, slots=True)
class PublisherStats:
    connected: bool
    session: int
    published: int
    connects: int
    connection_failures: int
    will_corrections: int
    backlog_batches: int
    #: Publishes the broker refused (PUBACK 0x80 or above), and readings held for a retry now.
    refused: int = 0
    held: int = 0


class MqttPublisher:
    """Publishes the outbox to the broker of ``config`` until cancelled (:meth:`run`).

    ``connect`` replaces how a connection is opened (by default an MQTT 5 client built by
    :func:`qihe.mqtt.connect`): a test passes a fake client. ``clock`` stamps the status;
    ``version`` (the software's) and ``config_report`` (asked at every status) go in it.
    """

    def __init__(
        self,
        config: GatewayConfig,
        outbox: Outbox,
        *,
        clock: Clock = utc_now,
        connect: Connect | None = None,
        version: str | None = None,
        config_report: Callable[[], ConfigReport | None] | None = None,
    ) -> None:
        self._config = config
        self._version = version
        self._config_report = config_report
        self._outbox = outbox
        self._clock = clock
        self._connect = connect or self._connect_to_broker
        self._topics = TopicTree(config.broker.topic_prefix)
        self._status_topic = self._topics.status(config.site, config.gateway)
        self._backlog_topic = self._topics.backlog(config.site, config.gateway)
        # Site and gateway were checked with the config, every sensor id when its reading
        # was built: the per-reading topic is a plain join, no regex on the hot path.
        self._gateway_root = self._topics.gateway_root(config.site, config.gateway)
        self._backlog_batch = config.outbox.backlog_batch
        self._sessions = SessionCounter(config.state_dir / "mqtt-session")
        self._backoff = Backoff(
            config.broker.reconnect_min.total_seconds(),
            config.broker.reconnect_max.total_seconds(),
        )
        self.connected = asyncio.Event()
        self._session = 0
        self._published = 0
        self._connects = 0
        self._failures = 0
        self._will_corrections = 0
        self._backlog_batches = 0
        self.refusals = RefusalCounter()
        self._held: HeldReadings | None = None
        #: Readings of a refused backlog batch, waiting for its retry.
        self._backlog_held = 0
        #: Topic filters the gateway listens on besides its status (commands, config).
        self._listeners: list[tuple[str, MessageHandler]] = []
        #: The connected client, while there is one (for :meth:`send`).
        self._client: MqttClient | None = None

    def listen(self, topic_filter: str, handler: MessageHandler) -> None:
        """Subscribe to ``topic_filter`` (QoS 1) at every connection and hand each message
        on it to ``handler``. Register before :meth:`run`."""
        self._listeners.append((topic_filter, handler))

    async def send(
        self, topic: str, payload: bytes, *, kind: RefusedKind, retain: bool = False
    ) -> bool:
        """Publish one message at QoS 1 on the current connection, outside the outbox (a
        command reply, a config report): True once acknowledged; False when there is no
        connection, the connection failed, or the broker refused it (counted under ``kind``,
        logged)."""
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=_ACK_TIMEOUT)
        except PublishRefusedError as exc:
            self.refusals.count(kind, exc)
            return False
        except aiomqtt.MqttError as exc:
            log.info("未能发送 could not send %s: %s", topic, exc)
            return False
        return True

    def refusal_snapshot(self) -> RefusalSnapshot:
        """Refusals so far, and the readings held for a retry now (for the health reading)."""
        return self.refusals.snapshot(self._held_now())

    def _held_now(self) -> int:
        return (0 if self._held is None else len(self._held)) + self._backlog_held

    def stats(self) -> PublisherStats:
        return PublisherStats(
            connected=self.connected.is_set(),
            session=self._session,
            published=self._published,
            connects=self._connects,
            connection_failures=self._failures,
            will_corrections=self._will_corrections,
            backlog_batches=self._backlog_batches,
            refused=self.refusals.total,
            held=self._held_now(),
        )

    def _status(self, state: Literal["online", "offline"], session: int) -> bytes:
        return encode_payload(
            GatewayStatus(
                site=self._config.site,
                gateway=self._config.gateway,
                state=state,
                session=session,
                ts=self._clock(),
                version=self._version,
                config=None if self._config_report is None else self._config_report(),
            )
        )

    async def restate_status(self) -> bool:
        """Publish the retained ``online`` status again (its config report changed): True
        once acknowledged, False without a connection (the next one publishes it anyway)."""
        status = self._status("online", self._session)
        return await self.send(self._status_topic, status, kind="status", retain=True)

    def _connect_to_broker(
        self, will: aiomqtt.Will
    ) -> contextlib.AbstractAsyncContextManager[MqttClient]:
        broker = self._config.broker
        return connect(
            broker,
            identifier=f"qihe-gw-{self._config.site}-{self._config.gateway}",
            will=will,
            max_inflight=broker.max_inflight,
        )

    async def run(self) -> None:
        """Connect, publish, reconnect with backoff; until cancelled (then say offline)."""
        broker = self._config.broker
        while True:
            session = await asyncio.to_thread(self._sessions.next)
            self._session = session
            will = aiomqtt.Will(
                self._status_topic, self._status("offline", session), qos=1, retain=True
            )
            try:
                async with self._connect(will) as client:
                    try:
                        await self._serve(client, session)
                    except asyncio.CancelledError:
                        await self._say_offline(client, session)
                        raise
            except aiomqtt.MqttError as exc:
                self._failures += 1
                delay = self._backoff.next_delay()
                log.warning(
                    "broker %s:%d: %s; reconnecting in %.1fs", broker.host, broker.port, exc, delay
                )
                await asyncio.sleep(delay)
            finally:
                self.connected.clear()
                self._client = None

    async def _serve(self, client: MqttClient, session: int) -> None:
        await self._publish_status(client, "online", session)
        await client.subscribe(self._status_topic, qos=1)
        for topic_filter, _ in self._listeners:
            await client.subscribe(topic_filter, qos=1)
        self._client = client
        self._connects += 1
        self._backoff.reset()
        self.connected.set()
        log.info("connected to broker as session %d", session)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._drain(client), name="mqtt-drain")
                tg.create_task(self._watch_status(client, session), name="mqtt-status-watch")
        except ExceptionGroup as group:
            # A lost connection fails both tasks: surface one MqttError to the reconnect loop.
            broker_errors, others = group.split(aiomqtt.MqttError)
            if broker_errors is None or others is not None:
                raise
            first: BaseException = broker_errors
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None

    async def _drain(self, client: MqttClient) -> None:
        """Live state first, then live readings as they come, the backlog in between.

        Readings stored before this connection are the backlog: first the newest
        state of each sensor is published retained (so dashboards are right at
        once), then live readings always go before the next backlog batch, and
        the backlog drains oldest first in packed, non-retained batches.

        Live readings go out as they are put, before the commit that stores them
        (``Outbox.live``): a reading leaves the outbox once both are done, and the board is
        acknowledged only after the commit (``docs/reliability.md``). They go in a sliding
        window: at most ``max_inflight`` await
        their PUBACK at a time, in id order, and each is confirmed to the outbox as
        its own PUBACK arrives, so the link never idles while the slowest of a group
        is acknowledged. A broker that stops acknowledging while publishes wait for
        it fails the connection after ``_ACK_TIMEOUT`` (and we reconnect).

        A refused reading is held (with every later reading of its sensor) and
        retried by its own task with a backoff; the window moves on. A refused
        backlog batch is retried after a backoff while live readings go on. What is
        still held when the connection ends is backlog for the next one.
        """
        outbox, batch_size = self._outbox, self._backlog_batch
        window = self._config.broker.max_inflight
        broker = self._config.broker
        held = HeldReadings(
            minimum=broker.reconnect_min.total_seconds(),
            maximum=broker.reconnect_max.total_seconds(),
        )
        self._held, self._backlog_held = held, 0
        watermark = outbox.last_id
        if watermark:
            latest = await outbox.latest_states(watermark)
            await asyncio.gather(*(self._publish_latest(client, row) for row in latest))
            log.info("reconnected with a backlog: published the latest of %d sensors", len(latest))
        live_cursor, backlog_cursor = watermark, 0
        backlog_backoff = Backoff(
            broker.reconnect_min.total_seconds(), broker.reconnect_max.total_seconds()
        )
        backlog_due = 0.0
        flight = _Flight(window, _ACK_TIMEOUT)
        wake = asyncio.Event()  # a retry is scheduled, or a held reading went out
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(flight.watch(), name="mqtt-ack-watch")
                tasks.create_task(
                    self._retry_held(client, held, flight, wake, tasks), name="mqtt-refused-retry"
                )
                while True:
                    while held.full:  # bounded memory: wait for retries to go out
                        wake.clear()
                        await wake.wait()
                    live = await outbox.live(after=live_cursor, limit=window)
                    if live:
                        for row in live:
                            reason = held.reason(row)
                            if reason is not None:
                                held.hold(row)  # behind its sensor's refused reading
                                self.refusals.count(row.kind, reason, quiet=True)
                                continue
                            await flight.slots.acquire()
                            flight.started()
                            tasks.create_task(self._publish_row(client, row, flight, held, wake))
                        live_cursor = live[-1].id
                        continue
                    wait: float | None = None
                    if backlog_cursor < watermark:
                        wait = backlog_due - time.monotonic()
                        if wait <= 0:
                            rows = await outbox.fetch(
                                after=backlog_cursor, upto=watermark, limit=batch_size
                            )
                            if not rows:
                                backlog_cursor = watermark
                                log.info("backlog drained")
                                continue
                            again = self._backlog_held > 0
                            if await self._publish_backlog(client, rows, again=again):
                                backlog_cursor = rows[-1].id
                                backlog_backoff.reset()
                                self._backlog_held = 0
                            else:
                                self._backlog_held = len(rows)
                                backlog_due = time.monotonic() + backlog_backoff.next_delay()
                            continue
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await outbox.wait_new(live_cursor)
        finally:
            self._held, self._backlog_held = None, 0

    async def _retry_held(
        self,
        client: MqttClient,
        held: HeldReadings,
        flight: _Flight,
        wake: asyncio.Event,
        tasks: asyncio.TaskGroup,
    ) -> None:
        """Publish each held sensor's oldest reading when its backoff has passed."""
        while True:
            for row in held.due():
                await flight.slots.acquire()
                flight.started()
                tasks.create_task(self._publish_row(client, row, flight, held, wake, retry=True))
            due = held.next_due()
            timeout = None if due is None else max(0.0, due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await wake.wait()
            wake.clear()

    def _topic(self, row: StoredReading) -> str:
        return f"{self._gateway_root}/{row.kind}/{row.sensor}"

    async def _send(
        self, client: MqttClient, row: StoredReading, ack_wait: float | None = math.inf
    ) -> None:
        """One reading at QoS 1 on its sensor's topic; raises PublishRefusedError if refused.

        No timeout of its own by default (on Python 3.11 each would cost a task and a
        timer): the flight's watchdog fails the connection if PUBACKs stop coming.
        """
        await client.publish(
            self._topic(row),
            row.payload,
            qos=1,
            retain=row.kind in RETAINED_KINDS,
            timeout=ack_wait,
        )

    async def _publish_latest(self, client: MqttClient, row: StoredReading) -> None:
        """A sensor's newest state after a reconnect. Not confirmed (it is in the backlog
        too), so a refusal is only counted: the backlog batch carries the reading."""
        try:
            await self._send(client, row, ack_wait=None)  # the client's own timeout
        except PublishRefusedError as exc:
            self.refusals.count(row.kind, exc)

    async def _publish_row(
        self,
        client: MqttClient,
        row: StoredReading,
        flight: _Flight,
        held: HeldReadings,
        wake: asyncio.Event,
        *,
        retry: bool = False,
    ) -> None:
        """A live reading, or the ``retry`` of a held one: confirmed once accepted; refused,
        it is held (a held one longer). ``wake`` tells the retry task a retry is due to be
        scheduled, or a held reading went out."""
        try:
            await self._send(client, row)
        except PublishRefusedError as exc:
            self.refusals.count(row.kind, exc, again=retry)
            if retry:
                held.retry_refused(row, exc)
            else:
                held.refused(row, exc)
            wake.set()
            return
        except BaseException:
            if retry:
                held.released(row)
                wake.set()
            raise
        finally:
            flight.done()
        self._outbox.confirm((row.id,))
        self._published += 1
        if retry:
            held.accepted(row)
            wake.set()

    async def _publish_backlog(
        self, client: MqttClient, rows: list[StoredReading], *, again: bool
    ) -> bool:
        """One packed backlog batch; False (counted, nothing confirmed) when refused."""
        payload = encode_batch(self._config.site, self._config.gateway, [r.payload for r in rows])
        try:
            await client.publish(self._backlog_topic, payload, qos=1, retain=False)
        except PublishRefusedError as exc:
            self.refusals.count("backlog", exc, again=again)
            return False
        self._outbox.confirm(row.id for row in rows)
        self._published += len(rows)
        self._backlog_batches += 1
        return True

    async def _publish_status(
        self, client: MqttClient, state: Literal["online", "offline"], session: int
    ) -> None:
        """Retained status at QoS 1; a refusal is counted and logged (the Will still holds)."""
        try:
            await client.publish(
                self._status_topic, self._status(state, session), qos=1, retain=True
            )
        except PublishRefusedError as exc:
            self.refusals.count("status", exc)

    async def _watch_status(self, client: MqttClient, session: int) -> None:
        async for message in client.messages:
            if not isinstance(message.payload, bytes):
                continue
            topic = str(message.topic)
            if topic != self._status_topic:
                self._dispatch(topic, message.payload)
                continue
            try:
                status = parse_status(message.payload)
            except ContractError:
                continue
            if status.state == "offline" and status.session < session:
                # A late Will of an old session overwrote our retained "online".
                log.info("late Last Will of session %d seen; restating online", status.session)
                await self._publish_status(client, "online", session)
                self._will_corrections += 1

    def _dispatch(self, topic: str, payload: bytes) -> None:
        for topic_filter, handler in self._listeners:
            if topic_matches_sub(topic_filter, topic):
                handler(topic, payload)

    async def _say_offline(self, client: MqttClient, session: int) -> None:
        """A clean stop sends no Will, so say offline ourselves (best effort)."""
        try:
            async with asyncio.timeout(2):
                await self._publish_status(client, "offline", session)
        except (aiomqtt.MqttError, TimeoutError):
            log.info("could not publish offline status at stop; the Will covers it")
