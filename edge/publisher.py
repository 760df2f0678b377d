"""Publish readings from the outbox to MQTT, and keep the gateway's availability topic true.

Per connection: a new session number; a Last Will ``offline`` for that session;
a retained ``online`` status; then readings at QoS 1, a bounded number in
flight, each confirmed to the outbox only after its PUBACK. The gateway also
watches its own status topic: if the broker publishes a late Will of an older
session over our ``online``, we publish ``online`` again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from dataclasses import dataclass
from typing import Literal

import aiomqtt

from edge.config import GatewayConfig
from edge.normalise import Clock, utc_now
from edge.outbox import Outbox, StoredReading
from edge.session import SessionCounter
from qihe.backoff import Backoff
from qihe.contract import (
    RETAINED_KINDS,
    ContractError,
    GatewayStatus,
    TopicTree,
    encode_batch,
    encode_payload,
    parse_status,
)

__all__ = ["MqttPublisher", "PublisherStats"]

log = logging.getLogger(__name__)

#: Publishes waiting this long for any PUBACK mean a broker that stopped acknowledging.
_ACK_TIMEOUT = 10.0


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


class MqttPublisher:
    def __init__(
        self,
        config: GatewayConfig,
        outbox: Outbox,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._config = config
        self._outbox = outbox
        self._clock = clock
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

    def stats(self) -> PublisherStats:
        return PublisherStats(
            connected=self.connected.is_set(),
            session=self._session,
            published=self._published,
            connects=self._connects,
            connection_failures=self._failures,
            will_corrections=self._will_corrections,
            backlog_batches=self._backlog_batches,
        )

    def _status(self, state: Literal["online", "offline"], session: int) -> bytes:
        return encode_payload(
            GatewayStatus(
                site=self._config.site,
                gateway=self._config.gateway,
                state=state,
                session=session,
                ts=self._clock(),
            )
        )

    async def _tls_context(self) -> ssl.SSLContext | None:
        broker = self._config.broker
        if not broker.tls:
            return None
        cafile = str(broker.ca_file) if broker.ca_file else None
        return await asyncio.to_thread(ssl.create_default_context, cafile=cafile)

    async def run(self) -> None:
        """Connect, publish, reconnect with backoff; until cancelled (then say offline)."""
        broker = self._config.broker
        while True:
            session = await asyncio.to_thread(self._sessions.next)
            self._session = session
            try:
                client = aiomqtt.Client(
                    broker.host,
                    broker.port,
                    username=broker.username,
                    password=broker.password.get_secret_value() if broker.password else None,
                    identifier=f"qihe-gw-{self._config.site}-{self._config.gateway}",
                    protocol=aiomqtt.ProtocolVersion.V5,
                    will=aiomqtt.Will(
                        self._status_topic, self._status("offline", session), qos=1, retain=True
                    ),
                    keepalive=max(5, int(broker.keepalive.total_seconds())),
                    max_inflight_messages=broker.max_inflight,
                    tls_context=await self._tls_context(),
                    timeout=10,
                )
                # aiomqtt warns past 10 publishes awaiting their PUBACK; we allow max_inflight.
                client.pending_calls_threshold = broker.max_inflight
                async with client:
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

    async def _serve(self, client: aiomqtt.Client, session: int) -> None:
        await client.publish(
            self._status_topic, self._status("online", session), qos=1, retain=True
        )
        await client.subscribe(self._status_topic, qos=1)
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

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Live state first, then live readings as they come, the backlog in between.

        Readings stored before this connection are the backlog: first the newest
        state of each sensor is published retained (so dashboards are right at
        once), then live readings always go before the next backlog batch, and
        the backlog drains oldest first in packed, non-retained batches.

        Live readings go out in a sliding window: at most ``max_inflight`` await
        their PUBACK at a time, in id order, and each is confirmed to the outbox as
        its own PUBACK arrives, so the link never idles while the slowest of a group
        is acknowledged. A broker that stops acknowledging while publishes wait for
        it fails the connection after ``_ACK_TIMEOUT`` (and we reconnect).
        """
        outbox, batch_size = self._outbox, self._backlog_batch
        window = self._config.broker.max_inflight
        watermark = outbox.last_id
        if watermark:
            latest = await outbox.latest_states(watermark)
            await asyncio.gather(*(self._publish(client, row) for row in latest))
            log.info("reconnected with a backlog: published the latest of %d sensors", len(latest))
        live_cursor, backlog_cursor = watermark, 0
        flight = _Flight(window, _ACK_TIMEOUT)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(flight.watch(), name="mqtt-ack-watch")
            while True:
                live = await outbox.fetch(after=live_cursor, limit=window)
                if live:
                    for row in live:
                        await flight.slots.acquire()
                        flight.started()
                        tasks.create_task(self._publish_live(client, row, flight))
                    live_cursor = live[-1].id
                    continue
                if backlog_cursor < watermark:
                    rows = await outbox.fetch(
                        after=backlog_cursor, upto=watermark, limit=batch_size
                    )
                    if rows:
                        await self._publish_backlog(client, rows)
                        backlog_cursor = rows[-1].id
                        continue
                    backlog_cursor = watermark
                    log.info("backlog drained")
                await outbox.wait_committed(live_cursor)

    async def _publish(self, client: aiomqtt.Client, row: StoredReading) -> None:
        topic = f"{self._gateway_root}/{row.kind}/{row.sensor}"
        await client.publish(topic, row.payload, qos=1, retain=row.kind in RETAINED_KINDS)

    async def _publish_live(
        self, client: aiomqtt.Client, row: StoredReading, flight: _Flight
    ) -> None:
        topic = f"{self._gateway_root}/{row.kind}/{row.sensor}"
        try:
            # No timeout of its own (on Python 3.11 each would cost a task and a timer):
            # the flight's watchdog fails the connection if PUBACKs stop coming.
            await client.publish(
                topic, row.payload, qos=1, retain=row.kind in RETAINED_KINDS, timeout=math.inf
            )
        finally:
            flight.done()
        self._outbox.confirm((row.id,))
        self._published += 1

    async def _publish_backlog(self, client: aiomqtt.Client, rows: list[StoredReading]) -> None:
        payload = encode_batch(self._config.site, self._config.gateway, [r.payload for r in rows])
        await client.publish(self._backlog_topic, payload, qos=1, retain=False)
        self._outbox.confirm(row.id for row in rows)
        self._published += len(rows)
        self._backlog_batches += 1

    async def _watch_status(self, client: aiomqtt.Client, session: int) -> None:
        async for message in client.messages:
            if str(message.topic) != self._status_topic or not isinstance(message.payload, bytes):
                continue
            try:
                status = parse_status(message.payload)
            except ContractError:
                continue
            if status.state == "offline" and status.session < session:
                # A late Will of an old session overwrote our retained "online".
                log.info("late Last Will of session %d seen; restating online", status.session)
                await client.publish(
                    self._status_topic, self._status("online", session), qos=1, retain=True
                )
                self._will_corrections += 1

    async def _say_offline(self, client: aiomqtt.Client, session: int) -> None:
        """A clean stop sends no Will, so say offline ourselves (best effort)."""
        try:
            async with asyncio.timeout(2):
                await client.publish(
                    self._status_topic, self._status("offline", session), qos=1, retain=True
                )
        except (aiomqtt.MqttError, TimeoutError):
            log.info("could not publish offline status at stop; the Will covers it")
