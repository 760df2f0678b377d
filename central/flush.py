"""Deliver one batch: write its points (splitting it when InfluxDB refuses some) and publish
dead letters for every refused message. Once :meth:`BatchFlusher.flush` returns, every message
of the batch is done and may be acked; :class:`~central.retry.GiveUpError` means none is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt

from central.deadletter import PublishTracker, dead_letter_payload
from central.errors import CentralError, InfluxWriteError
from central.influx import PointWriter
from central.intake import Delivery
from central.retry import Retrier, TransientError
from central.stats import Counters

__all__ = ["BatchFlusher", "DeadLetterPendingError", "DeadLetterPublisher", "classify_failure"]

log = logging.getLogger(__name__)

#: How long one wait for the broker's PUBACKs of dead letters lasts before it counts as failed.
DEAD_LETTER_WAIT_S = 5.0

Refused = tuple[Delivery, str]


class DeadLetterPendingError(CentralError):
    """The broker has not confirmed every dead letter yet (disconnected, slow)."""


def classify_failure(exc: Exception, counters: Counters) -> TransientError | None:
    """The retry policy: which failures are retried (and how loudly), which are re-raised."""
    if isinstance(exc, DeadLetterPendingError):
        return TransientError(str(exc))
    if not isinstance(exc, InfluxWriteError):
        return None
    counters.add(write_errors=1)
    if exc.retryable:
        return TransientError(str(exc), retry_after=exc.retry_after)
    if exc.rejects_points:
        return None  # the caller splits the batch
    # 401/403/404...: settings or permissions, not the data. Hold it and keep trying.
    return TransientError(
        f"{exc} (check the influx settings; nothing is dropped meanwhile)", level=logging.ERROR
    )


class DeadLetterPublisher:
    """Publishes dead letters at QoS 1 and returns once the broker acknowledged them all."""

    def __init__(
        self, client: mqtt.Client, topic: str, tracker: PublishTracker, retrier: Retrier
    ) -> None:
        self._client = client
        self._topic = topic
        self._tracker = tracker
        self._retrier = retrier

    def publish(self, refused: Sequence[Refused]) -> None:
        waits: list[tuple[int, threading.Event]] = []
        for delivery, reason in refused:
            payload = dead_letter_payload(
                delivery.topic, reason, delivery.payload, delivery.received_at
            )
            # paho queues it even while disconnected and resends it after reconnecting.
            info = self._client.publish(self._topic, payload, qos=1)
            waits.append((info.mid, self._tracker.expect(info.mid)))

        def confirmed() -> None:
            for _, event in waits:
                if not event.wait(DEAD_LETTER_WAIT_S):
                    raise DeadLetterPendingError("the broker has not confirmed the dead letters")

        try:
            self._retrier.run(confirmed, f"publishing {len(waits)} dead letters")
        finally:
            for mid, _ in waits:
                self._tracker.forget(mid)


class BatchFlusher:
    """Writes batches with retries; bisects a refused batch so every good point lands."""

    def __init__(
        self,
        writer: PointWriter,
        retrier: Retrier,
        counters: Counters,
        *,
        dead_letters: DeadLetterPublisher | None,
        log_first: Callable[[str], bool],
    ) -> None:
        self._writer = writer
        self._retrier = retrier
        self._counters = counters
        self._dead_letters = dead_letters
        self._log_first = log_first

    def flush(self, batch: Sequence[Delivery]) -> None:
        refused = [(d, d.reason) for d in batch if d.reason is not None]
        valid = [d for d in batch if d.line is not None]
        if valid:
            refused += self._write_splitting(valid)
        if refused and self._dead_letters is not None:
            self._dead_letters.publish(refused)
            self._counters.add(dead_lettered=len(refused))

    def _write_splitting(self, items: Sequence[Delivery]) -> list[Refused]:
        lines = [d.line for d in items if d.line is not None]
        points = sum(d.points for d in items)  # a backlog batch holds many
        try:
            self._retrier.run(lambda: self._writer.write(lines), f"writing {points} points")
        except InfluxWriteError as exc:  # only errors that refuse points get here
            if len(items) == 1:
                self._counters.add(rejected_points=1)
                if self._log_first(items[0].topic):
                    log.warning("InfluxDB refused the point of %s: %s", items[0].topic, exc.detail)
                return [(items[0], f"influxdb: {exc.detail}")]
            half = len(items) // 2
            return self._write_splitting(items[:half]) + self._write_splitting(items[half:])
        self._counters.add(written_points=points)
        return []
