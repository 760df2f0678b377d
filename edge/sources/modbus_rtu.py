"""Modbus RTU, the one exchange the gateway makes: read registers. Sans-IO.

A request and its replies, as bytes on the RS485 line (CRC-16/MODBUS, low byte first)::

    request    unit  fc (3 holding, 4 input)  address (2)  count (2)       crc (2)   8 bytes
    reply      unit  fc                       byte count   registers (2n)  crc (2)   5 + 2n
    exception  unit  fc | 0x80                code (1)                     crc (2)   5 bytes

pymodbus builds the request and decodes the reply's PDU (its ``FramerRTU`` and PDU
classes); this module only says which bytes of the line are the answer to the request
just sent, so a transport can tell "wait for more" apart from a CRC error, a garbled
answer and an exception reply (``docs/sensors.md``, "Link health"). The master speaks
first and a device answers only when asked, so there is at most one frame to find: bytes
before it are noise, and it is the one at the first offset whose header and CRC check out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest, ReadInputRegistersRequest

from edge.errors import EdgeError

__all__ = [
    "EXCEPTION_NAMES",
    "MAX_REGISTERS",
    "ExceptionReply",
    "ModbusFrameError",
    "ReadRequest",
    "Registers",
    "Table",
    "decode_reply",
    "encode_request",
    "silence_error",
]

#: Which registers: holding (function 3) or input (function 4).
Table = Literal["holding", "input"]

#: The most registers one read may ask for (Modbus application protocol §6.3).
MAX_REGISTERS = 125

_FUNCTION: dict[Table, int] = {"holding": 3, "input": 4}
_EXCEPTION_LEN = 5

#: Exception codes a device answers with (Modbus application protocol §7).
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}

_FRAMER = FramerRTU(DecodePDU(is_server=False))
_DECODER = DecodePDU(is_server=False)


class ModbusFrameError(EdgeError, ValueError):
    """What came back was no answer: ``kind`` is ``crc`` (the bytes of an answer, but the CRC
    does not match) or ``malformed`` (anything else: noise, a wrong length, another unit)."""

    def __init__(self, kind: Literal["crc", "malformed"], message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class ReadRequest:
    unit: int
    table: Table
    address: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.unit <= 247:
            raise ValueError(f"unit id {self.unit} is not 1-247")
        if not 1 <= self.count <= MAX_REGISTERS or not 0 <= self.address <= 0xFFFF - self.count + 1:
            raise ValueError(f"cannot read {self.count} registers at {self.address}")

    @property
    def function(self) -> int:
        return _FUNCTION[self.table]

    @property
    def reply_len(self) -> int:
        return 5 + 2 * self.count


@dataclass(frozen=True, slots=True)
class Registers:
    """The registers asked for; ``noise`` bytes came before the answer."""

    values: tuple[int, ...]
    noise: int = 0


@dataclass(frozen=True, slots=True)
class ExceptionReply:
    """The device answered with an exception code instead of registers."""

    code: int
    noise: int = 0

    @property
    def text(self) -> str:
        return EXCEPTION_NAMES.get(self.code, f"exception {self.code}")


def encode_request(request: ReadRequest) -> bytes:
    """The request's bytes on the line, CRC included."""
    pdu_class = (
        ReadHoldingRegistersRequest if request.table == "holding" else ReadInputRegistersRequest
    )
    pdu = pdu_class(address=request.address, count=request.count, dev_id=request.unit)
    return _FRAMER.buildFrame(pdu)


def _crc_ok(frame: bytes) -> bool:
    return FramerRTU.check_CRC(frame[:-2], int.from_bytes(frame[-2:], "big"))


def _decode_pdu(frame: bytes) -> ModbusPDU | None:
    return _DECODER.decode(frame[1:-2])


def _answer_at(request: ReadRequest, data: bytes, at: int) -> Registers | ExceptionReply | None:
    """A complete, CRC-checked answer starting at ``at``, or None."""
    if len(data) - at < _EXCEPTION_LEN or data[at] != request.unit:
        return None
    function = data[at + 1]
    if function == request.function | 0x80:
        frame = data[at : at + _EXCEPTION_LEN]
        pdu = _decode_pdu(frame) if _crc_ok(frame) else None
        if isinstance(pdu, ExceptionResponse):
            return ExceptionReply(pdu.exception_code, noise=at)
        return None
    if function != request.function or data[at + 2] != 2 * request.count:
        return None
    frame = data[at : at + request.reply_len]
    if len(frame) < request.reply_len or not _crc_ok(frame):
        return None
    pdu = _decode_pdu(frame)
    registers = getattr(pdu, "registers", None)
    if registers is None or len(registers) != request.count:
        return None
    return Registers(tuple(registers), noise=at)


def decode_reply(request: ReadRequest, data: bytes) -> Registers | ExceptionReply | None:
    """The answer to ``request`` in the bytes received since it was sent, or None: not yet.

    Raises :class:`ModbusFrameError` (``crc``) at once when the bytes from the first one on
    are the whole answer but the CRC does not match: the device will not send it again.
    Noise before a good answer is skipped and counted in the answer's ``noise``.
    """
    for at in range(len(data)):
        answer = _answer_at(request, data, at)
        if answer is not None:
            return answer
    if _looks_like_answer(request, data) and len(data) >= request.reply_len:
        raise ModbusFrameError(
            "crc",
            f"unit {request.unit}: CRC mismatch in a {len(data)}-byte answer: {data.hex()}",
        )
    if _looks_like_exception(request, data) and len(data) >= _EXCEPTION_LEN:
        raise ModbusFrameError(
            "crc",
            f"unit {request.unit}: CRC mismatch in an exception answer: {data.hex()}",
        )
    return None


def _looks_like_answer(request: ReadRequest, data: bytes) -> bool:
    return (
        len(data) >= 3
        and data[0] == request.unit
        and data[1] == request.function
        and data[2] == 2 * request.count
    )


def _looks_like_exception(request: ReadRequest, data: bytes) -> bool:
    return len(data) >= 2 and data[0] == request.unit and data[1] == request.function | 0x80


def silence_error(request: ReadRequest, data: bytes) -> ModbusFrameError | None:
    """What the bytes that came before the answer's time ran out were: None if there were
    none (the device is silent: a timeout), else a :class:`ModbusFrameError`."""
    if not data:
        return None
    return ModbusFrameError(
        "malformed",
        f"unit {request.unit}: no answer in {len(data)} byte(s) received: {data[:32].hex()}",
    )
