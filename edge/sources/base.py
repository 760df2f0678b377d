"""What every source has in common: it emits readings and runs until cancelled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from qihe.contract import Reading

__all__ = ["Emit", "Source"]

#: Hand a reading on (to the outbox). Never blocks.
Emit = Callable[[Reading], None]


class Source(Protocol):
    name: str

    async def run(self) -> None:
        """Produce readings until cancelled; recover from its own hardware's failures."""
