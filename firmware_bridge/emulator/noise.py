"""Line noise on purpose: random bytes between frames or inside them. Pure; seeded.

Every frame on the wire is ``00 COBS(body) 00``, so noise is confined to the
segment it lands in. Noise *between* frames costs no frame (the receiver
reports a malformed segment and resynchronises); noise *inside* a frame
destroys that frame and no other. Each corrupted result is checked with the real
decoder, so noise never turns into a valid frame the receiver would accept.
"""

from __future__ import annotations

import random

from firmware_bridge.codec import DELIMITER, FrameDecoder
from firmware_bridge.messages import Frame

__all__ = ["LineNoise"]


def _decodes_to_a_frame(data: bytes) -> bool:
    return any(isinstance(item, Frame) for item in FrameDecoder().feed(data + DELIMITER))


class LineNoise:
    """Bursts of noise with probability ``rate`` per frame sent."""

    def __init__(self, rng: random.Random, rate: float = 0.0) -> None:
        self._rng = rng
        self.rate = rate

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"noise rate {value} is outside 0..1")
        self._rate = value

    def apply(self, wire: bytes) -> tuple[bytes, bool]:
        """Return the bytes to put on the line for ``wire`` and whether the frame is destroyed."""
        if self._rate == 0.0 or self._rng.random() >= self._rate:
            return wire, False
        if self._rng.random() < 0.5:
            return self._between(wire), False
        return self._inside(wire), True

    def _garbage(self, low: int, high: int) -> bytes:
        return bytes(self._rng.randrange(256) for _ in range(self._rng.randint(low, high)))

    def _between(self, wire: bytes) -> bytes:
        while True:
            garbage = self._garbage(1, 6)
            if not _decodes_to_a_frame(DELIMITER + garbage):
                return garbage + wire

    def _inside(self, wire: bytes) -> bytes:
        rng = self._rng
        while True:
            pos = rng.randrange(1, len(wire) - 1)  # keep both delimiters
            if rng.random() < 0.5:
                flipped = wire[pos] ^ rng.randrange(1, 256)
                corrupted = wire[:pos] + bytes([flipped]) + wire[pos + 1 :]
            else:
                corrupted = wire[:pos] + self._garbage(1, 3) + wire[pos:]
            if not _decodes_to_a_frame(corrupted):
                return corrupted
