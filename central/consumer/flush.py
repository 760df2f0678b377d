"""Deliver one batch: write its points (splitting it when InfluxDB refuses some) and publish
dead letters for every refused message. Once :meth:`BatchFlusher.write` and then
:meth:`BatchFlusher.dead_letter` have returned, every message of the batch is done and may be
acked; :class:`~central.retry.GiveUpError` means none is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt

from central.consumer.deadletter import PendingPublish, PublishTracker, dead_letter_payload
from central.consumer.intake import Delivery
from central.consumer.retry import Retrier, TransientError
from central.consumer.stats import Counters
from central.errors import CentralError, InfluxWriteError
from central.influx import PointWriter
from qihe.mqtt import PublishRefusedError, reason_label

__all__ = [
    "BatchFlusher",
    "DeadLetterPublisher",
    "classify_failure",
]

log = logging.getLogger(__name__)

#: How long one wait for the broker's PUBACKs of dead letters lasts before it counts as failed.
DEAD_LETTER_WAIT_S = 5.0

Refused = tuple[Delivery, str]


class DeadLetterPendingError(CentralError):
    """The broker has not confirmed every dead letter yet (disconnected, slow)."""


class DeadLetterRefusedError(CentralError):
    """The broker refused dead letters (PUBACK 0x80 or above): they are published again,
    and the messages they stand for stay unacked until the broker takes them."""

    def __init__(self, refused: PublishRefusedError, count: int) -> None:
        super().__init__(
            f"代理拒绝了 {count} 封死信 the broker refused {count} dead letters on "
            f"{refused.topic}: {reason_label(refused.reason_code, refused.reason_name)}; "
            "检查代理的 ACL check the broker's ACL (the messages stay unacked meanwhile)"
        )
        self.refused = refused
        self.count = count


def classify_failure(exc: Exception, counters: Counters) -> TransientError | None:
    """The retry policy: which failures are retried (and how loudly), which are re-raised."""
    if isinstance(exc, DeadLetterPendingError):
        return TransientError(str(exc))
    if isinstance(exc, DeadLetterRefusedError):
        # Settings (the broker's ACL), not the data: hold the messages and keep trying.
        return TransientError(str(exc), level=logging.ERROR)
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
    """Publishes dead letters at QoS 1 and returns once the broker accepted them all.

    A dead letter the broker refuses is counted (``dead_letters_refused``) and published
    again on the next attempt, after the retrier's backoff; until every one is accepted
    (or shutdown gives up) :meth:`publish` does not return, so nothing is acked.
    """

    def __init__(
        self,
        client: mqtt.Client,
        topic: str,
        tracker: PublishTracker,
        retrier: Retrier,
        counters: Counters,
    ) -> None:
        self._client = client
        self._topic = topic
        self._tracker = tracker
        self._retrier = retrier
        self._counters = counters

    def publish(self, refused: Sequence[Refused]) -> None:
        letters = [
            dead_letter_payload(delivery.topic, reason, delivery.payload, delivery.received_at)
            for delivery, reason in refused
        ]
        waiting: dict[int, PendingPublish] = {}  # letter index → its publish on the wire
        accepted: set[int] = set()

        def send_and_confirm() -> None:
            for index, payload in enumerate(letters):
                if index not in accepted and index not in waiting:
                    # paho queues it even while disconnected and resends it after reconnecting.
                    info = self._client.publish(self._topic, payload, qos=1)
                    waiting[index] = self._tracker.expect(info.mid)
            refusals: list[PublishRefusedError] = []
            for index, pending in list(waiting.items()):
                if not pending.done.wait(DEAD_LETTER_WAIT_S):
                    raise DeadLetterPendingError("the broker has not confirmed the dead letters")
                self._tracker.forget(pending.mid)
                del waiting[index]
                if pending.refused is None:
                    accepted.add(index)
                else:
                    refusals.append(pending.refused)
            if refusals:
                self._counters.add(dead_letters_refused=len(refusals))
                raise DeadLetterRefusedError(refusals[0], len(refusals))

        try:
            self._retrier.run(send_and_confirm, f"publishing {len(letters)} dead letters")
        finally:
            for pending in waiting.values():
                self._tracker.forget(pending.mid)


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

    def write(self, batch: Sequence[Delivery]) -> list[Refused]:
        """Write every point of ``batch`` InfluxDB takes; return the messages refused, each
        with its reason: the invalid ones, then those whose point InfluxDB refused."""
        refused = [(d, d.reason) for d in batch if d.reason is not None]
        valid = [d for d in batch if d.line is not None]
        if valid:
            refused += self._write_splitting(valid)
        return refused

    def dead_letter(self, refused: Sequence[Refused]) -> None:
        """Publish ``refused`` as dead letters; return once the broker took them all."""
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
