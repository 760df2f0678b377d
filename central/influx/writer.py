"""The seam between the consumer and an InfluxDB: one small protocol, one class per API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["PointWriter"]


class PointWriter(Protocol):
    """Writes batches of line-protocol lines; raises :class:`~central.errors.InfluxWriteError`."""

    @property
    def target(self) -> str:
        """Where points go, for logs (no secrets)."""
        ...

    def prepare(self) -> None:
        """Make the destination ready before the first write (may do I/O; may raise)."""
        ...

    def write(self, lines: Sequence[str]) -> None:
        """Write all ``lines`` in one request; return only once InfluxDB accepted them."""
        ...

    def close(self) -> None: ...
