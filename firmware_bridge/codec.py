"""Sans-IO codec of the qihe serial protocol: bytes in, frames out; frame in, bytes out.

On the wire every frame is COBS-encoded and sent between two ``0x00`` bytes, so
a receiver that joins mid-stream or meets line noise resynchronises at the next
zero, and noise before a frame is cut off by the frame's leading zero. Decoded, a frame is::

    0         1         2         4                   n-2        n
    +---------+---------+---------+-------------------+----------+
    | version |  type   | seq BE  | payload (type's)  | CRC16 BE |
    +---------+---------+---------+-------------------+----------+

The CRC is CRC-16/CCITT-FALSE over version..payload. Each type's payload layout is
one entry of the table ``_LAYOUTS``, which the encoder and the decoder both read.
``docs/protocol.md`` is the full specification with test vectors.

Nothing here touches a port, a clock or a logger.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from firmware_bridge import cobs
from firmware_bridge.crc import crc16_ccitt_false
from firmware_bridge.errors import (
    CrcError,
    FrameError,
    FrameTooLongError,
    FrameTooShortError,
    MessageValueError,
    PayloadError,
    UnknownTypeError,
    UnsupportedVersionError,
)
from firmware_bridge.messages import (
    PROTOCOL_VERSION,
    WINDOW_SPAN,
    Ack,
    Door,
    Fault,
    FaultCode,
    Frame,
    Heartbeat,
    Hello,
    Identify,
    MessageType,
    Nack,
    NackReason,
    People,
    Ping,
    Reboot,
    ReportAck,
    Resend,
    Seat,
    SeatPresence,
    SensorKind,
    SensorRef,
    SetReportInterval,
    Window,
)

__all__ = [
    "DELIMITER",
    "MAX_BODY",
    "MAX_ENCODED",
    "FrameDecoder",
    "decode_body",
    "encode",
    "encode_body",
]

DELIMITER = b"\x00"
#: Largest decoded frame (header + payload + CRC). Keeps a receiver's buffer bounded.
MAX_BODY = 254
#: Largest COBS-encoded frame without its delimiter we accept. Our encoder needs at most
#: MAX_BODY + 1; a board using the original paper's encoder may add a final 0x01 code byte.
MAX_ENCODED = MAX_BODY + 2
_HEADER = struct.Struct(">BBH")
_CRC = struct.Struct(">H")
_MIN_BODY = _HEADER.size + _CRC.size
#: Type byte -> type; a dict lookup is several times cheaper than calling the enum.
_BY_BYTE: dict[int, MessageType] = {kind.value: kind for kind in MessageType}
_M = TypeVar("_M")
_E = TypeVar("_E", SensorKind, FaultCode, NackReason)


# -- payload layouts ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    """One message field on the wire: its struct code and, unless it is a plain unsigned
    integer, how the wire value becomes the field (``read``) and back (``write``)."""

    code: str
    read: Callable[[Any], object] | None = None
    write: Callable[[Any], object] | None = None


@dataclass(frozen=True, slots=True)
class _Layout(Generic[_M]):
    """How one message type's payload is laid out: the encoder and the decoder both use it."""

    cls: type[_M]
    pack: Callable[[_M], bytes]
    #: Raises :class:`PayloadError` or :class:`MessageValueError` for a payload it refuses.
    unpack: Callable[[bytes], _M]


def _struct(cls: type[_M], **fields: _Field) -> _Layout[_M]:
    """A fixed-size payload: the message's fields, in their order, as one big-endian struct."""
    names = tuple(fields)
    # The decoder passes the fields by position: the table must name them in their order.
    assert names == tuple(f.name for f in dataclasses.fields(cls)), cls  # type: ignore[arg-type]
    shape = struct.Struct(">" + "".join(field.code for field in fields.values()))
    reads = tuple(field.read for field in fields.values())
    writes = tuple(field.write for field in fields.values())
    # Layouts of plain integers (most of them) skip the conversions.
    converts_in, converts_out = any(reads), any(writes)
    build: Callable[..., _M] = cls

    def pack(message: _M) -> bytes:
        values = [getattr(message, name) for name in names]
        if converts_out:
            values = [
                v if write is None else write(v) for v, write in zip(values, writes, strict=True)
            ]
        return shape.pack(*values)

    def unpack(payload: bytes) -> _M:
        if len(payload) != shape.size:
            raise PayloadError(f"payload is {len(payload)} bytes; this type has {shape.size}")
        values = shape.unpack(payload)
        if converts_in:
            values = tuple(
                v if read is None else read(v) for v, read in zip(values, reads, strict=True)
            )
        return build(*values)

    return _Layout(cls, pack, unpack)


def _flag(name: str) -> _Field:
    def read(value: int) -> bool:
        if value not in (0, 1):
            raise PayloadError(f"{name} byte is {value:#04x}; only 0x00 and 0x01 are defined")
        return bool(value)

    return _Field("B", read)


def _enum_value(cls: type[_E], value: int) -> _E:
    try:
        return cls(value)
    except ValueError:
        raise PayloadError(f"{value:#04x} is not a known {cls.__name__}") from None


def _enum(cls: type[_E]) -> _Field:
    return _Field("B", lambda value: _enum_value(cls, value))


_U8 = _Field("B")
_U16 = _Field("H")
_U32 = _Field("I")
_SENSOR = struct.Struct(">BH")  # a sensor's kind and index, in FAULT and in HELLO's list


def _sensor_ref(kind: int, index: int) -> SensorRef:
    return SensorRef(_enum_value(SensorKind, kind), index)


_SENSOR_REF = _Field(
    f"{_SENSOR.size}s",
    read=lambda raw: _sensor_ref(*_SENSOR.unpack(raw)),
    write=lambda ref: _SENSOR.pack(ref.kind, ref.index),
)
#: WINDOW's held map: bit i in byte i // 8 (little-endian as one integer).
_BITMAP = _Field(
    f"{WINDOW_SPAN // 8}s",
    read=lambda raw: int.from_bytes(raw, "little"),
    write=lambda held: held.to_bytes(WINDOW_SPAN // 8, "little"),
)
# HELLO: id length, id, firmware major/minor/patch, report interval, sensor count.
_HELLO_HEAD = struct.Struct(">BBBHB")
_HELLO_BOOT = struct.Struct(">I")


def _pack_hello(hello: Hello) -> bytes:
    raw_id = hello.device_id.encode("ascii")
    return b"".join(
        [
            bytes([len(raw_id)]),
            raw_id,
            _HELLO_HEAD.pack(*hello.firmware, hello.report_interval_s, len(hello.sensors)),
            *(_SENSOR.pack(s.kind, s.index) for s in hello.sensors),
            _HELLO_BOOT.pack(hello.boot),
        ]
    )


def _unpack_hello(payload: bytes) -> Hello:
    if not payload:
        raise PayloadError("HELLO payload is empty")
    id_len = payload[0]
    fixed_end = 1 + id_len + _HELLO_HEAD.size
    if len(payload) < fixed_end:
        raise PayloadError(f"HELLO payload of {len(payload)} bytes ends inside its header")
    try:
        device_id = payload[1 : 1 + id_len].decode("ascii")
    except UnicodeDecodeError:
        raise PayloadError("HELLO device id is not ASCII") from None
    major, minor, patch, interval, count = _HELLO_HEAD.unpack_from(payload, 1 + id_len)
    sensors_end = fixed_end + _SENSOR.size * count
    if len(payload) != sensors_end + _HELLO_BOOT.size:
        expected = _SENSOR.size * count + _HELLO_BOOT.size
        raise PayloadError(
            f"HELLO announces {count} sensors and a boot number ({expected} bytes) "
            f"but carries {len(payload) - fixed_end}"
        )
    sensors = tuple(
        _sensor_ref(kind, index)
        for kind, index in _SENSOR.iter_unpack(payload[fixed_end:sensors_end])
    )
    (boot,) = _HELLO_BOOT.unpack_from(payload, sensors_end)
    return Hello(device_id, (major, minor, patch), interval, sensors, boot)


#: Every payload layout, one entry per message type (``docs/protocol.md``, section 6). A
#: struct of the message's fields wherever the layout is one; HELLO, whose device id and
#: sensor list vary in length, has its own pair of functions.
_LAYOUTS: dict[MessageType, _Layout[Any]] = {
    MessageType.HELLO: _Layout(Hello, _pack_hello, _unpack_hello),
    MessageType.SEAT: _struct(Seat, seat=_U16, occupied=_flag("seat state")),
    MessageType.PEOPLE: _struct(People, counter=_U16, in_total=_U32, out_total=_U32),
    MessageType.DOOR: _struct(Door, door=_U16, open=_flag("door state")),
    MessageType.HEARTBEAT: _struct(Heartbeat, uptime_s=_U32, supply_mv=_U16),
    MessageType.FAULT: _struct(
        Fault, sensor=_SENSOR_REF, code=_enum(FaultCode), active=_flag("fault active")
    ),
    MessageType.WINDOW: _struct(Window, boot=_U32, dropped=_U32, held=_BITMAP),
    MessageType.SEAT_PRESENCE: _struct(
        SeatPresence, seat=_U16, occupied=_flag("seat state"), present=_flag("presence")
    ),
    MessageType.PING: _struct(Ping),
    MessageType.SET_REPORT_INTERVAL: _struct(SetReportInterval, seconds=_U16),
    MessageType.IDENTIFY: _struct(Identify, seconds=_U8),
    MessageType.REBOOT: _struct(Reboot),
    MessageType.REPORT_ACK: _struct(ReportAck, seq=_U16),
    MessageType.RESEND: _struct(Resend),
    MessageType.ACK: _struct(Ack, ref_seq=_U16),
    MessageType.NACK: _struct(Nack, ref_seq=_U16, reason=_enum(NackReason)),
}
#: Message class -> type, for the encoder.
_BY_CLASS: dict[type[Any], MessageType] = {layout.cls: kind for kind, layout in _LAYOUTS.items()}


# -- frames -------------------------------------------------------------------


def encode_body(frame: Frame) -> bytes:
    """The decoded frame: header, payload and CRC, before COBS."""
    message = frame.message
    kind = _BY_CLASS.get(type(message))
    if kind is None:
        raise MessageValueError(f"not a protocol message: {message!r}")
    head = _HEADER.pack(frame.version, kind, frame.seq) + _LAYOUTS[kind].pack(message)
    body = head + _CRC.pack(crc16_ccitt_false(head))
    if len(body) > MAX_BODY:
        raise MessageValueError(f"frame of {len(body)} bytes exceeds {MAX_BODY}")
    return body


def encode(frame: Frame) -> bytes:
    """Everything that goes on the wire for ``frame``: ``00 COBS(body) 00``.

    The leading delimiter ends whatever noise came before, so line noise between
    frames can never cost the frame that follows it.
    """
    return DELIMITER + cobs.encode(encode_body(frame)) + DELIMITER


def decode_body(body: bytes) -> Frame:
    """Decode one frame from its COBS-decoded body; raise a :class:`FrameError` leaf."""
    if len(body) < _MIN_BODY:
        raise FrameTooShortError(f"frame of {len(body)} bytes is shorter than {_MIN_BODY}")
    if len(body) > MAX_BODY:
        raise FrameTooLongError(f"frame of {len(body)} bytes exceeds {MAX_BODY}")
    head, (crc,) = body[:-2], _CRC.unpack(body[-2:])
    expected = crc16_ccitt_false(head)
    if crc != expected:
        raise CrcError(f"CRC {crc:#06x} does not match {expected:#06x}")
    version, type_byte, seq = _HEADER.unpack_from(head)
    if version != PROTOCOL_VERSION:
        raise UnsupportedVersionError(
            f"protocol version {version}; this gateway speaks {PROTOCOL_VERSION}"
        )
    kind = _BY_BYTE.get(type_byte)
    if kind is None:
        raise UnknownTypeError(f"unknown message type {type_byte:#04x}")
    try:
        message = _LAYOUTS[kind].unpack(head[_HEADER.size :])
    except MessageValueError as exc:
        raise PayloadError(f"{kind.name}: {exc}") from exc
    except PayloadError as exc:
        raise PayloadError(f"{kind.name}: {exc}") from None
    return Frame(seq=seq, message=message, version=version)


def _decode_raw(raw: bytes) -> Frame | FrameError:
    """One frame's bytes between two delimiters: the frame, or what is wrong with them."""
    try:
        if len(raw) > MAX_ENCODED:
            raise FrameTooLongError(f"encoded frame of {len(raw)} bytes exceeds {MAX_ENCODED}")
        return decode_body(cobs.decode(raw))
    except FrameError as exc:
        exc.raw = raw[:64]
        return exc


class FrameDecoder:
    """Stream decoder: feed it bytes as they arrive, get frames and errors in order.

    Memory is bounded by :data:`MAX_ENCODED`: after an over-long run without a
    delimiter the decoder drops bytes until the next delimiter.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False

    @property
    def pending(self) -> int:
        """Bytes held while waiting for a delimiter."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        """Decode what ``data`` completes: frames and errors in stream order, never raising.

        Bytes after the last delimiter are held (:attr:`pending`) until the next one
        arrives: a partial frame is "need more bytes", never malformed. Empty frames
        (delimiters in a row) are skipped. A run without a delimiter longer than any
        frame is reported once as :class:`FrameTooLongError` and dropped up to the next
        delimiter.
        """
        # One pass over the buffer, cut once at the end: the rest of the buffer is not
        # moved after every frame.
        out: list[Frame | FrameError] = []
        buffer = self._buffer
        buffer += data
        start, size = 0, len(buffer)
        while start < size:
            end = buffer.find(DELIMITER, start)
            if self._discarding:
                if end < 0:
                    start = size
                    break
                start = end + 1
                self._discarding = False
                continue
            if end < 0:
                if size - start > MAX_ENCODED:
                    out.append(
                        FrameTooLongError(
                            f"{size - start} bytes without a delimiter",
                            raw=bytes(buffer[start : start + 64]),
                        )
                    )
                    start = size
                    self._discarding = True
                break
            if end > start:
                out.append(_decode_raw(bytes(buffer[start:end])))
            start = end + 1
        del buffer[:start]
        return out
