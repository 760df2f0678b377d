"""Fan-out of live events to stream subscribers, each with a bounded queue.

A subscriber that cannot keep up is not allowed to hold memory or slow the others: when
its queue is full, what it has queued is dropped and it is sent one ``resync`` event,
after which the page fetches a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from central.live.events import LiveEvent

__all__ = ["MOST_PER_WRITE", "EventHub", "HubFullError", "Subscription"]

#: Seconds without an event before a stream gets a keep-alive comment.
KEEPALIVE_S = 15.0
#: Most events sent to a stream in one write (what was queued meanwhile goes together).
MOST_PER_WRITE = 500

log = logging.getLogger(__name__)


class HubFullError(RuntimeError):
    """More stream subscribers than the configured limit."""


@dataclass(eq=False)
class Subscription:
    #: Only this site's events (None: every site).
    site: str | None
    #: Seat and device events too (the overview page needs only site and door events).
    seats: bool
    queue: asyncio.Queue[LiveEvent | None] = field(default_factory=lambda: asyncio.Queue(1000))
    resyncs: int = 0

    async def frames(self) -> AsyncIterator[bytes]:
        """What a stream writes: the queued events' frames, a burst in one write (at most
        ``MOST_PER_WRITE``), a comment every ``KEEPALIVE_S`` while nothing comes (so proxies
        and browsers keep the connection); ends when the service stops."""
        queue = self.queue
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    event = await queue.get()
            except TimeoutError:
                yield b": ping\n\n"
                continue
            frames: list[bytes] = []
            while event is not None:
                frames.append(event.frame)
                if len(frames) >= MOST_PER_WRITE or queue.empty():
                    break
                event = queue.get_nowait()
            if frames:
                yield b"".join(frames)
            if event is None:  # the service is stopping
                return

    def wants(self, event: LiveEvent) -> bool:
        if self.site is not None and event.site != self.site:
            return False
        return self.seats or event.kind not in ("seat", "device", "alerts", "air")


class EventHub:
    def __init__(self, *, max_subscribers: int = 500, queue_size: int = 1000) -> None:
        self._subscribers: set[Subscription] = set()
        self._max = max_subscribers
        self._queue_size = queue_size
        self.version = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @asynccontextmanager
    async def subscribe(self, *, site: str | None, seats: bool) -> AsyncIterator[Subscription]:
        if len(self._subscribers) >= self._max:
            raise HubFullError(f"{len(self._subscribers)} live streams open, the limit")
        sub = Subscription(site, seats, asyncio.Queue(self._queue_size))
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def publish(self, events: Iterable[LiveEvent]) -> None:
        for event in events:
            self.version = event.version
            for sub in self._subscribers:
                if sub.wants(event):
                    self._offer(sub, event)

    def _offer(self, sub: Subscription, event: LiveEvent) -> None:
        try:
            sub.queue.put_nowait(event)
        except asyncio.QueueFull:
            while not sub.queue.empty():
                sub.queue.get_nowait()
            sub.resyncs += 1
            if sub.resyncs == 1 or sub.resyncs % 100 == 0:
                log.warning("a live stream fell behind (%d times): told to resync", sub.resyncs)
            sub.queue.put_nowait(LiveEvent.build("resync", None, event.version, {}))

    def close(self) -> None:
        """End every stream (at shutdown): each queue gets the end marker."""
        for sub in self._subscribers:
            while sub.queue.full():
                sub.queue.get_nowait()
            sub.queue.put_nowait(None)
