"""Take a batch off the intake queue: up to ``size`` items, ``interval`` after the first, or
sooner once no item arrived for ``idle``.

Why ``idle``: the broker sends at most its in-flight window of unacked QoS 1
messages (Mosquitto's ``max_inflight_messages``, our MQTT Receive Maximum) and
then waits for acks. Waiting for a full batch would wait for messages that only
come once this batch is written and acked.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TypeVar

__all__ = ["collect_batch"]

T = TypeVar("T")

#: How long an empty queue is waited on before the caller checks for shutdown again.
POLL_S = 0.1


def collect_batch(
    source: queue.Queue[T],
    *,
    size: int,
    interval: float,
    idle: float,
    closing: threading.Event,
) -> list[T]:
    """The next batch, or ``[]`` when nothing arrived within :data:`POLL_S`.

    Once ``closing`` is set it no longer waits: it takes what is queued, up to ``size``.
    """
    try:
        batch = [source.get(timeout=POLL_S)]
    except queue.Empty:
        return []
    deadline = time.monotonic() + interval
    while len(batch) < size:
        try:
            # Take what is already there without a timed wait per item.
            batch.append(source.get_nowait())
            continue
        except queue.Empty:
            pass
        wait = min(idle, deadline - time.monotonic())
        if closing.is_set() or wait <= 0:
            break
        try:
            batch.append(source.get(timeout=wait))
        except queue.Empty:
            break
    return batch
