"""Where readings wait between their source and the broker's PUBACK.

:class:`MemoryOutbox` is bounded: when full it drops the oldest periodic
telemetry (heartbeat, link counters) first, and only then the oldest reading of
any kind, counting every drop. A reading leaves the outbox only when the
publisher confirms that the broker acknowledged it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Sequence
from typing import Protocol

from qihe.contract import Reading

__all__ = ["PERIODIC_KINDS", "MemoryOutbox", "Outbox"]

log = logging.getLogger(__name__)

#: Kinds that are re-sent periodically anyway, so they are the first to go when full.
PERIODIC_KINDS = frozenset({"heartbeat", "link"})


class Outbox(Protocol):
    def put(self, reading: Reading) -> None:
        """Accept a reading without blocking the source."""

    async def wait_batch(self, max_items: int) -> list[Reading]:
        """The oldest readings (at least one), left in place until :meth:`confirm`."""

    def confirm(self, done: Sequence[Reading]) -> None:
        """These readings (from :meth:`wait_batch`) were acknowledged by the broker."""

    def __len__(self) -> int: ...


class MemoryOutbox:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: deque[Reading] = deque()
        self._ready = asyncio.Event()
        self.dropped: Counter[str] = Counter()
        self.accepted = 0
        self.confirmed = 0
        self._warned = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, reading: Reading) -> None:
        if len(self._items) >= self.capacity:
            self._drop_one()
        self._items.append(reading)
        self.accepted += 1
        self._ready.set()

    def _drop_one(self) -> None:
        victim_index = next((i for i, r in enumerate(self._items) if r.kind in PERIODIC_KINDS), 0)
        victim = self._items[victim_index]
        del self._items[victim_index]
        self.dropped[victim.kind] += 1
        if not self._warned:
            self._warned = True
            log.warning(
                "outbox full (%d readings): dropping oldest %s readings first; "
                "further drops are counted, not logged",
                self.capacity,
                "periodic" if victim.kind in PERIODIC_KINDS else "state",
            )

    async def wait_batch(self, max_items: int) -> list[Reading]:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        n = min(max_items, len(self._items))
        return [self._items[i] for i in range(n)]

    def confirm(self, done: Sequence[Reading]) -> None:
        # By identity: a drop while the batch was in flight may have shifted the front.
        ids = {id(r) for r in done}
        while self._items and id(self._items[0]) in ids:
            self._items.popleft()
        self.confirmed += len(done)
