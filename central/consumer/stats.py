"""Counters of the consumer, read as a frozen snapshot (for the demo, tests and logs)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

__all__ = ["ConsumerStats", "Counters"]


@dataclass(frozen=True, slots=True)
class ConsumerStats:
    """What the consumer has done since it was created.

    ``received`` counts every MQTT message handed to the consumer (redeliveries
    included). ``invalid`` were refused before writing (bad JSON, schema, topic
    mismatch); ``rejected_points`` were refused by InfluxDB itself. Both kinds
    end in ``dead_lettered`` once the broker confirmed the dead-letter publish.
    ``acked`` messages are done for good; ``pending`` were received and are not
    acked yet (in the queue or in the batch being written).
    """

    received: int = 0
    invalid: int = 0
    written_points: int = 0
    batches: int = 0
    rejected_points: int = 0
    dead_lettered: int = 0
    #: Dead-letter publishes the broker refused (each is published again; nothing is acked).
    dead_letters_refused: int = 0
    acked: int = 0
    retries: int = 0
    write_errors: int = 0
    pending: int = 0


class Counters:
    """Thread-safe increments of :class:`ConsumerStats` fields.

    Plain integers under a lock: the network thread counts every message, so an increment
    must not build a new frozen snapshot (``snapshot()`` does, when someone asks).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(_FIELDS, 0)

    def add(self, **counts: int) -> None:
        with self._lock:
            values = self._values
            for name, n in counts.items():
                values[name] += n

    def snapshot(self) -> ConsumerStats:
        with self._lock:
            return ConsumerStats(**self._values)


_FIELDS = tuple(field.name for field in fields(ConsumerStats))
