"""The intake queue: bounded in messages, taken in batches bounded in points.

The network thread puts one message at a time; the writer thread takes a batch: up to
``size`` points, ``interval`` after the first message, or sooner once no message arrived
for ``idle``. The writer is woken for the first message of a batch and for a full batch,
not for every message: while readings stream in, waking it per message would make the two
threads trade the GIL for every message.

Why ``idle``: the broker sends at most its in-flight window of unacked QoS 1 messages (our
MQTT Receive Maximum, which Mosquitto takes instead of its ``max_inflight_messages`` for an
MQTT 5 client) and then waits for acks. Waiting for a full batch would wait for messages
that only come once this batch is written and acked.

Why points and not messages: a backlog message carries up to ``MAX_BATCH`` readings, so a
batch of ``size`` messages could be one request of millions of points. A message is never
split (it is acked once, after all its points are written); a batch is larger than ``size``
only when its one message is.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["POLL_S", "BatchQueue"]

T = TypeVar("T")

#: How long an empty queue is waited on before the caller checks for shutdown again.
POLL_S = 0.1


class BatchQueue(Generic[T]):
    """A bounded FIFO of ``maxsize`` items; :meth:`take` returns batches of ``weight`` points."""

    def __init__(self, maxsize: int, *, weight: Callable[[T], int]) -> None:
        self._maxsize = maxsize
        self._weight = weight
        self._items: deque[tuple[T, int]] = deque()
        self._queued_weight = 0
        self._last_put = 0.0
        #: The weight that wakes a waiting taker (0: it waits for a first item only).
        self._wanted: int | None = None
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)

    def qsize(self) -> int:
        with self._not_empty:
            return len(self._items)

    def put(self, item: T, timeout: float = 0.0) -> None:
        """Append ``item``, waiting up to ``timeout`` seconds for room, else :class:`queue.Full`."""
        weight = max(1, self._weight(item))
        with self._not_full:
            if len(self._items) >= self._maxsize:
                deadline = time.monotonic() + timeout
                while len(self._items) >= self._maxsize:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise queue.Full
                    self._not_full.wait(remaining)
            self._items.append((item, weight))
            self._queued_weight += weight
            self._last_put = time.monotonic()
            wanted = self._wanted
            if wanted is not None and self._queued_weight >= wanted:
                self._wanted = None
                self._not_empty.notify()

    def take(self, *, size: int, interval: float, idle: float, closing: threading.Event) -> list[T]:
        """The next batch, or ``[]`` when nothing arrived within :data:`POLL_S`.

        Once ``closing`` is set it no longer waits for more: it takes what is queued.
        """
        with self._not_empty:
            if not self._items:
                self._wanted = 1
                self._not_empty.wait(POLL_S)
                self._wanted = None
                if not self._items:
                    return []
            deadline = time.monotonic() + interval
            while self._queued_weight < size and not closing.is_set():
                now = time.monotonic()
                wait = min(deadline, self._last_put + idle) - now
                if wait <= 0:
                    break
                self._wanted = size
                self._not_empty.wait(wait)
                self._wanted = None
            return self._pop(size)

    def _pop(self, size: int) -> list[T]:
        batch: list[T] = []
        taken = 0
        items = self._items
        while items and (not batch or taken + items[0][1] <= size):
            item, weight = items.popleft()
            batch.append(item)
            taken += weight
        self._queued_weight -= taken
        self._not_full.notify_all()
        return batch
