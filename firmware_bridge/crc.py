"""CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR.

Check value: ``crc16_ccitt_false(b"123456789") == 0x29B1``.

:func:`binascii.crc_hqx` is this very CRC (the CCITT polynomial, unreflected, no final
XOR) with the initial value as its second argument, computed in C: a gateway checks
every frame from every board with it.
"""

from __future__ import annotations

from binascii import crc_hqx

__all__ = ["crc16_ccitt_false"]


def crc16_ccitt_false(data: bytes, crc: int = 0xFFFF) -> int:
    return crc_hqx(data, crc)
