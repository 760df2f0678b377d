"""Saying a thing once: the one helper behind every "log this only once" in the project.

- :class:`Once`: a condition said when it starts, not again until it has ended
  (a store that fills, a database that cannot be reached).
- :class:`OncePerKey`: each of many keys said once (bounded: keys may come from the network).
- :class:`OncePerInterval`: each key said at most once per interval, with the count of what was
  not said in between (a broker refusing publishes for an hour gives a line a minute).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["Once", "OncePerInterval", "OncePerKey"]

K = TypeVar("K", bound=Hashable)


class Once:
    """``first()`` is True once, then False until ``reset()`` (the condition ended)."""

    __slots__ = ("_said",)

    def __init__(self) -> None:
        self._said = False

    def first(self) -> bool:
        if self._said:
            return False
        self._said = True
        return True

    def reset(self) -> None:
        self._said = False


class OncePerKey:
    """Remembers the most recent ``size`` keys: ``first(key)`` is True once per key.

    Bounded, because topics come from the network: a flood of distinct bad topics
    must not grow memory (the oldest are forgotten and may be logged again).
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()  # used from the network and the writer thread

    def first(self, key: str) -> bool:
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            self._seen[key] = None
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)
            return True


class OncePerInterval(Generic[K]):
    """``due(key, now)`` is True at most once per ``every`` seconds for each key; how many times
    it said False since it last said True is ``suppressed(key)`` (then forgotten).

    ``now`` is in seconds from any start (``time.monotonic()``, ``datetime.timestamp()``): the
    caller's clock, so tests pass their own. The keys are few and chosen by the caller (reason
    codes), not by the network."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._said_at: dict[K, float] = {}
        self._unsaid: Counter[K] = Counter()

    def due(self, key: K, now: float) -> bool:
        said = self._said_at.get(key)
        if said is not None and now - said < self._every:
            self._unsaid[key] += 1
            return False
        self._said_at[key] = now
        return True

    def suppressed(self, key: K) -> int:
        """How many times ``due(key)`` said False since it last said True; resets the count."""
        return self._unsaid.pop(key, 0)
