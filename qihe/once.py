"""Saying a thing once: a bounded memory of keys already logged."""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["OncePerKey"]


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
