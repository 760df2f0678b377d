"""Several writes in flight, acknowledgements strictly in order.

The writer thread takes batch after batch from the intake queue and hands each to a write
slot; while one request waits for InfluxDB the next batch is already on its way. MQTT still
needs the PUBACKs of QoS 1 messages in the order the messages came (MQTT 5, 4.6), and the
consumer promises to acknowledge nothing before it is written. So a batch is *released* (its
messages acked) only when it and every batch taken before it are done::

    taken:     [b1 writing] [b2 written] [b3 written]     → nothing released yet
    b1 done:   b1, b2, b3 released, in that order

A batch whose write fails is retried by its slot; everything taken after it waits, written or
not. A batch that is never done (shutdown gave up on it, or a bug) holds every later batch for
good: they stay unacked and the broker sends them all again to the next session, where writing
the same points again stores nothing new (a point's identity is its series and timestamp).
Dead letters keep message order too: a slot publishes its batch's dead letters only on its
turn (:meth:`AckWindow.wait_turn`), once every batch before it is released.

:class:`AckWindow` is only this bookkeeping, without I/O or threads of its own, so it is tested
alone (``tests/test_consumer_overlap.py``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["AckWindow", "Ticket"]

T = TypeVar("T")


class Ticket(Generic[T]):
    """One batch between taken and released: ``done`` once written, ``held`` if it never will be."""

    __slots__ = ("batch", "done", "held")

    def __init__(self, batch: T) -> None:
        self.batch = batch
        self.done = False
        self.held = False


class AckWindow(Generic[T]):
    """At most ``size`` batches taken and not yet released; released in the order taken.

    ``release`` is called for each batch, in order, under the window's lock (so two slots
    finishing at once cannot interleave their acks). Thread-safe.
    """

    def __init__(self, size: int, release: Callable[[T], None]) -> None:
        if size < 1:
            raise ValueError(f"a window holds at least one batch, not {size}")
        self._size = size
        self._release = release
        self._tickets: deque[Ticket[T]] = deque()
        self._changed = threading.Condition(threading.Lock())
        #: Set once a batch is held: nothing after it is released any more.
        self.stalled = False

    def __len__(self) -> int:
        with self._changed:
            return len(self._tickets)

    def wait_for_room(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until fewer than ``size`` batches are unreleased."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._tickets) < self._size, timeout)

    def wait_empty(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every batch is released or known held."""
        with self._changed:
            return self._changed.wait_for(self._settled, timeout)

    def add(self, batch: T) -> Ticket[T]:
        """Take ``batch`` into the window (the caller made sure there is room)."""
        ticket = Ticket(batch)
        with self._changed:
            self._tickets.append(ticket)
        return ticket

    def wait_turn(self, ticket: Ticket[T]) -> bool:
        """Wait until every batch taken before ``ticket``'s is released (what must follow
        message order, dead letters, goes then); False if one of them never will be."""
        with self._changed:
            self._changed.wait_for(lambda: self.stalled or self._tickets[0] is ticket)
            return not self.stalled

    def finish(self, ticket: Ticket[T], *, written: bool) -> None:
        """``ticket``'s batch is done (``written``) or never will be (``written=False``);
        release every batch at the head that is done."""
        with self._changed:
            if written:
                ticket.done = True
            else:
                ticket.held = True
                self.stalled = True
            tickets = self._tickets
            while tickets and tickets[0].done and not self.stalled:
                self._release(tickets.popleft().batch)
            self._changed.notify_all()

    def _settled(self) -> bool:
        # Not stalled, every done batch has been released: only an empty window is settled.
        return all(t.done or t.held for t in self._tickets)
