"""The central consumer: MQTT readings → InfluxDB, acknowledged only once InfluxDB has them.

Threads: paho's network loop (``on_message`` validates and queues), one writer thread
(takes batches) and ``writes_in_flight`` write slots (write, dead-letter; acks in order)::

    broker ──PUBLISH──▶ on_message ──▶ bounded queue ──▶ writer: batch ─▶ slots ─▶ InfluxDB
       ▲                 (validate,                                         │  (retry with
       └──────PUBACK──── topic check)                                       │   backoff,
                        ◀──── ack(mid), in message order, once a batch and   │   split on 400)
                              every batch before it are written (window.py) ┘─▶ dead letters

Delivery is at-least-once end to end: a message is acked after its point is
stored (or its dead letter confirmed by the broker). Anything not acked — a crash,
InfluxDB down at stop — stays in the broker's persistent session and comes again;
points carry their source timestamp, so writing one twice stores it once.
"""

from __future__ import annotations

import logging
import queue
import random
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import FrameType, TracebackType
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from central.consumer.batching import POLL_S, BatchQueue
from central.consumer.config import ConsumerConfig
from central.consumer.deadletter import PublishTracker
from central.consumer.flush import BatchFlusher, DeadLetterPublisher, classify_failure
from central.consumer.intake import Delivery, to_delivery
from central.consumer.retry import GiveUpError, Retrier
from central.consumer.stats import ConsumerStats, Counters
from central.consumer.window import AckWindow, Ticket
from central.errors import ConsumerStartError, InfluxWriteError
from central.influx import PointWriter, open_writer
from central.metrics import ConsumerMetrics
from central.refusal_log import RefusalLog
from qihe.backoff import Backoff
from qihe.clock import Clock, utc_now
from qihe.contract import TopicTree
from qihe.metrics import MetricsError
from qihe.mqtt import message_topic, paho_client, refusal, session_properties
from qihe.once import Once, OncePerKey

__all__ = ["Consumer"]

log = logging.getLogger(__name__)


class Consumer:
    """Consumes readings and gateway status from MQTT into InfluxDB.

    The constructor does no I/O; :meth:`start` connects and subscribes,
    :meth:`stop` flushes what is pending and disconnects. ``writer`` replaces
    the InfluxDB writer chosen by ``config.influx``; ``clock`` stamps
    ``received_at`` of dead letters; ``rng`` drives the backoff jitter.
    """

    def __init__(
        self,
        config: ConsumerConfig,
        *,
        writer: PointWriter | None = None,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._tree = TopicTree(config.mqtt.topic_prefix)
        self._writer = writer
        self._clock = clock
        # Bounded in messages (our Receive Maximum); batches are bounded in points.
        self._queue: BatchQueue[Delivery] = BatchQueue(
            config.max_pending, weight=lambda delivery: delivery.points
        )
        self._counters = Counters()
        #: ``/metrics`` when the config asks for it (docs/metrics.md).
        self._metrics = (
            None if config.metrics is None else ConsumerMetrics(config.metrics, self.stats)
        )
        self._refused_topics = OncePerKey()  # points InfluxDB refused, logged once per topic
        self._refusals = RefusalLog(log, "consumer", clock=clock)
        self._tracker = PublishTracker()
        self._dead_letter_topic = self._tree.dead_letter(config.mqtt.client_id)
        self._client: mqtt.Client | None = None
        # One flusher (and retrier) per write slot: a retrier keeps the state of one failure.
        self._flushers: queue.SimpleQueue[BatchFlusher] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._subscribed = threading.Event()
        self._failed = threading.Event()
        self._stop_deadline: float | None = None
        self._start_problem: str | None = None
        self._intake_blocked = False
        self._unreachable = Once()  # the broker cannot be reached: said once per outage
        # A message id only means something on the connection it came in on. Guarded by
        # _ack_lock so an ack is never sent on a newer connection than its message's.
        self._ack_lock = threading.Lock()
        self._connection = 0
        self._connected = False
        self._rng = rng or random.Random()
        self._retrier = self._new_retrier()  # the writer thread's (prepare)

    def _new_retrier(self) -> Retrier:
        config = self._config
        return Retrier(
            Backoff(
                config.retry_min_delay.total_seconds(),
                config.retry_max_delay.total_seconds(),
                self._rng,
            ),
            classify=lambda exc: classify_failure(exc, self._counters),
            give_up_at=lambda: self._stop_deadline,
            wake=self._closing,
            on_retry=lambda: self._counters.add(retries=1),
            logger=log,
        )

    # Life cycle ---------------------------------------------------------------

    def start(self) -> None:
        """Connect, subscribe, start the writer; raise :class:`ConsumerStartError` on failure."""
        if self._client is not None or self._closing.is_set():
            raise RuntimeError("a consumer starts once; make a new one to start again")
        mqtt_config = self._config.mqtt
        try:
            client = paho_client(mqtt_config, client_id=mqtt_config.client_id, manual_ack=True)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            problem = f"cannot set up TLS with {mqtt_config.ca_file}: {exc}"
            raise ConsumerStartError(problem) from exc
        if self._writer is None:
            self._writer = open_writer(self._config.influx)
        if self._metrics is not None:
            self._writer = self._metrics.timed(self._writer)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self._client = client
        for _ in range(self._config.writes_in_flight):
            retrier = self._new_retrier()
            dead_letters = None
            if self._config.dead_letter:
                topic = self._tree.dead_letter(mqtt_config.client_id)
                dead_letters = DeadLetterPublisher(
                    client, topic, self._tracker, retrier, self._counters
                )
            self._flushers.put(
                BatchFlusher(
                    self._writer,
                    retrier,
                    self._counters,
                    dead_letters=dead_letters,
                    log_first=self._refused_topics.first,
                )
            )
        self._thread = threading.Thread(
            target=self._supervise, name="qihe-consumer-writer", daemon=True
        )
        self._thread.start()
        if self._metrics is not None:
            try:
                self._metrics.start()
            except MetricsError as exc:
                self.stop()
                raise ConsumerStartError(str(exc)) from exc
        client.connect_async(
            mqtt_config.host,
            mqtt_config.port,
            keepalive=int(mqtt_config.keepalive.total_seconds()),
            clean_start=False,
            properties=session_properties(
                session_expiry=mqtt_config.session_expiry,
                receive_maximum=self._config.max_pending,
            ),
        )
        client.loop_start()
        timeout = mqtt_config.connect_timeout.total_seconds()
        if not self._subscribed.wait(timeout):
            problem = self._start_problem or f"no answer within {timeout:g} s"
            self.stop()
            raise ConsumerStartError(
                f"cannot consume from MQTT broker {mqtt_config.host}:{mqtt_config.port}: {problem}"
            )
        log.info("consuming %s into %s", self._tree.root, self._writer.target)

    def stop(self) -> None:
        """Stop taking messages, flush and ack what is pending (within ``stop_timeout``), leave."""
        client, thread = self._client, self._thread
        if client is None:
            return
        grace = self._config.stop_timeout.total_seconds()
        self._stop_deadline = time.monotonic() + grace
        self._closing.set()
        if thread is not None:
            # A request already on the wire may take up to the InfluxDB timeout.
            thread.join(grace + self._config.influx.timeout.total_seconds() + 1.0)
        client.disconnect()
        client.loop_stop()
        # The flushers hold the client (dead letters): drop them so it goes now, its sockets
        # closed by its finaliser, not later by the garbage collector.
        while not self._flushers.empty():
            self._flushers.get_nowait()
        self._refusals.flush()
        if self._writer is not None:
            self._writer.close()
        if self._metrics is not None:
            self._metrics.stop()
        self._client = None
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def run_forever(self) -> int:
        """Run until SIGTERM or SIGINT (exit code 0), or until the consumer fails (1)."""
        stop_requested = threading.Event()

        def request_stop(signum: int, frame: FrameType | None) -> None:
            log.info("%s received, stopping", signal.Signals(signum).name)
            stop_requested.set()

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            while not stop_requested.wait(0.5):
                if self._failed.is_set():
                    return 1
            return 0
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stats(self) -> ConsumerStats:
        """A snapshot of the counters."""
        return self._counters.snapshot()

    # MQTT callbacks (paho's network thread) -------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._start_problem = f"broker refused the connection: {reason_code}"
            log.error("MQTT %s", self._start_problem)
            return
        self._unreachable.reset()
        with self._ack_lock:
            self._connection += 1
            self._connected = True
            first = self._connection == 1
        if not flags.session_present and not first:
            log.warning("broker had no session for us: messages queued while away are lost")
        log.info("connected to MQTT broker (session present: %s)", flags.session_present)
        # retainHandling=1: retained messages only for a new subscription, not on every reconnect.
        options = SubscribeOptions(qos=1, retainHandling=1)
        filters = [
            *self._tree.reading_filters(),
            self._tree.status_filter(),
            self._tree.backlog_filter(),
        ]
        group = self._config.mqtt.shared_group
        if group is not None:
            # The broker sends each message of a shared subscription to one member only:
            # each reading is written once. (Mosquitto before 2.0.13 also replays every
            # retained message to a new member; those are points already stored, so
            # writing them again stores nothing new.)
            filters = [f"$share/{group}/{topic}" for topic in filters]
        client.subscribe([(topic, options) for topic in filters])

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho retries by itself, backing off (qihe/mqtt/clients.py): say it once per outage.
        if self._unreachable.first():
            config = self._config.mqtt
            log.warning("cannot reach MQTT broker %s:%d; retrying", config.host, config.port)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            self._start_problem = f"broker refused the subscriptions: {', '.join(refused)}"
            log.error("MQTT %s", self._start_problem)
            return
        if any(code.value < 1 for code in reason_codes):
            log.warning("broker granted QoS 0 only: messages cannot be acknowledged")
        self._subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._ack_lock:
            was_connected, self._connected = self._connected, False
        if was_connected and not self._closing.is_set():
            log.warning("lost the MQTT connection (%s); reconnecting", reason_code)

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        # A refusal is counted and logged by the dead-letter publisher, which publishes again.
        self._tracker.completed(mid, refusal(self._dead_letter_topic, reason_code))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._closing.is_set():
            return  # not acked: the broker sends it again to our next session
        try:
            self._take(message)
        except Exception:
            # A bug, not bad input (that becomes a dead letter). Fail loudly; unacked
            # messages come again after a restart.
            log.exception("consumer failed handling a message on %r", message_topic(message))
            self._failed.set()

    def _take(self, message: mqtt.MQTTMessage) -> None:
        topic = message_topic(message)  # never raises: bad bytes are refused as a bad topic
        delivery = to_delivery(
            self._tree,
            mid=message.mid,
            qos=message.qos,
            connection=self._connection,
            topic=topic,
            payload=bytes(message.payload),
            received_at=self._clock(),
        )
        self._counters.add(received=1, pending=1)
        if delivery.reason is not None:
            self._counters.add(invalid=1)
            # Never a line per message: a flood on varying topics must not flood the log.
            self._refusals.refused(topic, delivery.reason, delivery.reason_key or "other")
        self._enqueue(delivery)

    def _enqueue(self, delivery: Delivery) -> None:
        # Blocking here holds the network thread: the broker stops sending (backpressure).
        # It cannot grow memory; at worst the broker drops us and redelivers later.
        while True:
            try:
                self._queue.put(delivery, timeout=0.5 if self._intake_blocked else 0)
                self._intake_blocked = False
                return
            except queue.Full:
                if not self._intake_blocked:
                    self._intake_blocked = True
                    log.warning(
                        "intake queue full (max_pending=%d): holding MQTT intake until "
                        "InfluxDB catches up",
                        self._config.max_pending,
                    )
                if self._closing.is_set():
                    self._counters.add(pending=-1)
                    return

    # Writer thread --------------------------------------------------------------

    def _supervise(self) -> None:
        try:
            self._run_writer()
        except Exception:
            log.exception("consumer writer failed; pending messages stay unacked")
            self._failed.set()

    def _run_writer(self) -> None:
        writer = self._writer
        assert writer is not None

        def prepare() -> None:
            try:
                writer.prepare()
            except InfluxWriteError as exc:
                if exc.retryable:
                    raise
                # e.g. a write-only user may not CREATE DATABASE: the writes will tell.
                log.error("could not prepare %s, writing anyway: %s", writer.target, exc)

        try:
            self._retrier.run(prepare, f"preparing {writer.target}")
        except GiveUpError as exc:
            log.warning("%s", exc)
            return
        config = self._config
        window: AckWindow[list[Delivery]] = AckWindow(config.writes_in_flight, self._release)
        slots = ThreadPoolExecutor(
            max_workers=config.writes_in_flight, thread_name_prefix="qihe-consumer-write"
        )
        try:
            while not (window.stalled or self._failed.is_set()):
                # A full window: every slot busy, or written batches waiting behind a retry.
                if not window.wait_for_room(POLL_S):
                    self._refusals.tick()
                    continue
                batch = self._queue.take(
                    size=config.batch_size,
                    interval=config.flush_interval.total_seconds(),
                    idle=config.flush_idle.total_seconds(),
                    closing=self._closing,
                )
                self._refusals.tick()
                if batch:
                    slots.submit(self._write, window, window.add(batch))
                elif self._closing.is_set():
                    break
        finally:
            # Each write in flight ends by itself: written, or given up at the stop deadline.
            slots.shutdown(wait=True)

    def _write(self, window: AckWindow[list[Delivery]], ticket: Ticket[list[Delivery]]) -> None:
        """One write slot's work: one batch. Its acks wait for the batches taken before it."""
        try:
            window.finish(ticket, written=self._flush(window, ticket))
        except Exception:
            log.exception("consumer writer failed; pending messages stay unacked")
            self._failed.set()
            window.finish(ticket, written=False)

    def _flush(self, window: AckWindow[list[Delivery]], ticket: Ticket[list[Delivery]]) -> bool:
        """Write and dead-letter one batch; False when shutdown ended the retries first, or
        an earlier batch will never be released (then neither is this one)."""
        batch = ticket.batch
        flusher = self._flushers.get()  # one per slot: never waits
        try:
            refused = flusher.write(batch)
            if refused:
                # Dead letters in message order: after those of every earlier batch.
                if not window.wait_turn(ticket):
                    return False
                flusher.dead_letter(refused)
        except GiveUpError as exc:
            log.warning("%s; leaving %d messages unacked for redelivery", exc, len(batch))
            return False
        finally:
            self._flushers.put(flusher)
        return True

    def _release(self, batch: list[Delivery]) -> None:
        """Ack one written batch (called in the order batches were taken)."""
        self._ack(batch)
        self._counters.add(batches=1)

    def _ack(self, batch: Sequence[Delivery]) -> None:
        client = self._client
        assert client is not None
        stale = 0
        with self._ack_lock:
            current = self._connection if self._connected else None
            for delivery in batch:  # in arrival order, as MQTT asks of PUBACKs
                if delivery.qos == 0:
                    continue  # nothing to acknowledge, and never redelivered
                if delivery.connection != current:
                    stale += 1
                else:
                    client.ack(delivery.mid, delivery.qos)
        if stale:
            log.info(
                "%d messages came on an earlier connection: not acked, the broker redelivers them",
                stale,
            )
        self._counters.add(acked=len(batch) - stale, pending=-len(batch))
