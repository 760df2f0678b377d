"""Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999).

Encoded data contains no ``0x00``; the framing layer adds one as delimiter.
"""

from __future__ import annotations

from firmware_bridge.errors import CobsError

__all__ = ["decode", "encode"]


def encode(data: bytes) -> bytes:
    out = bytearray()
    block = bytearray()
    full_block_ended = False
    for byte in data:
        full_block_ended = False
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
                full_block_ended = True
    # A 255 code implies no zero follows, so when the data ends right after a full
    # block a final 0x01 code adds nothing. Leaving it out (as Wikipedia's encoder
    # does; the 1999 paper's does not) keeps a 254-byte frame within 255 encoded
    # bytes, the most a receiver accepts (codec.MAX_ENCODED).
    if not full_block_ended:
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def decode(data: bytes) -> bytes:
    """Decode one COBS block sequence (without the delimiter); raise :class:`CobsError`."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise CobsError(f"zero byte inside an encoded frame at offset {i}", raw=data)
        end = i + code
        if end > n:
            raise CobsError(f"block at offset {i} runs {end - n} bytes past the frame", raw=data)
        out += data[i + 1 : end]
        i = end
        if code < 255 and i < n:
            out.append(0)
    return bytes(out)
