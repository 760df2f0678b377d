"""Capped exponential backoff with full jitter, for every reconnect loop."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """``next_delay()`` grows 2x per failure up to ``maximum``; ``reset()`` after a success."""

    minimum: float = 0.5
    maximum: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> float:
        # The exponent is capped so a months-long outage cannot overflow the float.
        ceiling = min(self.maximum, self.minimum * 2.0 ** min(self.failures, 32))
        self.failures += 1
        # Full jitter between half the ceiling and the ceiling: spread, but never a hot loop.
        jitter: float = self.rng.random()
        return ceiling / 2 + jitter * ceiling / 2

    def reset(self) -> None:
        self.failures = 0
