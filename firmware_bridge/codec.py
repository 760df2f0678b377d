"""Sans-IO codec of the qihe serial protocol: bytes in, frames out; frame in, bytes out.

On the wire every frame is COBS-encoded and sent between two ``0x00`` bytes, so
a receiver that joins mid-stream or meets line noise resynchronises at the next
zero, and noise before a frame is cut off by the frame's leading zero. Decoded, a frame is::

    0         1         2         4                   n-2        n
    +---------+---------+---------+-------------------+----------+
    | version |  type   | seq BE  | payload (type's)  | CRC16 BE |
    +---------+---------+---------+-------------------+----------+

The CRC is CRC-16/CCITT-FALSE over version..payload. ``docs/protocol.md`` is the
full specification with test vectors.

Nothing here touches a port, a clock or a logger.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TypeVar

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
    Message,
    MessageType,
    Nack,
    NackReason,
    People,
    Ping,
    Reboot,
    ReportAck,
    Resend,
    Seat,
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
    "read_frame",
]

DELIMITER = b"\x00"
#: Largest decoded frame (header + payload + CRC). Keeps a receiver's buffer bounded.
MAX_BODY = 254
#: Largest COBS-encoded frame without its delimiter we accept. Our encoder needs at most
#: MAX_BODY + 1; a board using the original paper's encoder may add a final 0x01 code byte.
MAX_ENCODED = MAX_BODY + 2
_E = TypeVar("_E", SensorKind, FaultCode, NackReason)
_HEADER = struct.Struct(">BBH")
_CRC = struct.Struct(">H")
_MIN_BODY = _HEADER.size + _CRC.size
#: Type byte -> type; a dict lookup is several times cheaper than calling the enum.
_TYPES: dict[int, MessageType] = {kind.value: kind for kind in MessageType}


# -- payloads ---------------------------------------------------------------


def _encode_payload(message: Message) -> tuple[MessageType, bytes]:
    match message:
        case Hello(device_id, firmware, interval, sensors, boot):
            raw_id = device_id.encode("ascii")
            parts = [
                struct.pack(">B", len(raw_id)),
                raw_id,
                struct.pack(">BBBH", *firmware, interval),
            ]
            parts.append(struct.pack(">B", len(sensors)))
            parts.extend(struct.pack(">BH", s.kind, s.index) for s in sensors)
            parts.append(struct.pack(">I", boot))
            return MessageType.HELLO, b"".join(parts)
        case Seat(seat, occupied):
            return MessageType.SEAT, struct.pack(">HB", seat, occupied)
        case People(counter, in_total, out_total):
            return MessageType.PEOPLE, struct.pack(">HII", counter, in_total, out_total)
        case Door(door, is_open):
            return MessageType.DOOR, struct.pack(">HB", door, is_open)
        case Heartbeat(uptime_s, supply_mv):
            return MessageType.HEARTBEAT, struct.pack(">IH", uptime_s, supply_mv)
        case Fault(sensor, code, active):
            return MessageType.FAULT, struct.pack(">BHBB", sensor.kind, sensor.index, code, active)
        case Window(boot, dropped, held):
            bitmap = held.to_bytes(WINDOW_SPAN // 8, "little")  # bit i in byte i // 8
            return MessageType.WINDOW, struct.pack(">II32s", boot, dropped, bitmap)
        case Ping():
            return MessageType.PING, b""
        case SetReportInterval(seconds):
            return MessageType.SET_REPORT_INTERVAL, struct.pack(">H", seconds)
        case Identify(seconds):
            return MessageType.IDENTIFY, struct.pack(">B", seconds)
        case Reboot():
            return MessageType.REBOOT, b""
        case ReportAck(seq):
            return MessageType.REPORT_ACK, struct.pack(">H", seq)
        case Resend():
            return MessageType.RESEND, b""
        case Ack(ref_seq):
            return MessageType.ACK, struct.pack(">H", ref_seq)
        case Nack(ref_seq, reason):
            return MessageType.NACK, struct.pack(">HB", ref_seq, reason)
    raise MessageValueError(f"not a protocol message: {message!r}")


def _flag(value: int, name: str) -> bool:
    if value not in (0, 1):
        raise PayloadError(f"{name} byte is {value:#04x}; only 0x00 and 0x01 are defined")
    return bool(value)


def _enum(cls: type[_E], value: int) -> _E:
    try:
        return cls(value)
    except ValueError:
        raise PayloadError(f"{value:#04x} is not a known {cls.__name__}") from None


def _fixed(fmt: str) -> Callable[[bytes], tuple[int, ...]]:
    shape = struct.Struct(fmt)

    def unpack(payload: bytes) -> tuple[int, ...]:
        if len(payload) != shape.size:
            raise PayloadError(f"payload is {len(payload)} bytes; this type has {shape.size}")
        return shape.unpack(payload)

    return unpack


_SEAT = _fixed(">HB")
_PEOPLE = _fixed(">HII")
_DOOR = _fixed(">HB")
_HEARTBEAT = _fixed(">IH")
_FAULT = _fixed(">BHBB")
_WINDOW = _fixed(">II32x")  # boot, dropped; the 32-byte bitmap is read as one integer
_EMPTY = _fixed(">")
_U16 = _fixed(">H")
_U8 = _fixed(">B")
_NACK = _fixed(">HB")


def _decode_hello(payload: bytes) -> Hello:
    if not payload:
        raise PayloadError("HELLO payload is empty")
    id_len = payload[0]
    fixed_end = 1 + id_len + 6
    if len(payload) < fixed_end:
        raise PayloadError(f"HELLO payload of {len(payload)} bytes ends inside its header")
    try:
        device_id = payload[1 : 1 + id_len].decode("ascii")
    except UnicodeDecodeError:
        raise PayloadError("HELLO device id is not ASCII") from None
    major, minor, patch, interval, count = struct.unpack_from(">BBBHB", payload, 1 + id_len)
    sensors_end = fixed_end + 3 * count
    if len(payload) != sensors_end + 4:
        raise PayloadError(
            f"HELLO announces {count} sensors and a boot number ({3 * count + 4} bytes) "
            f"but carries {len(payload) - fixed_end}"
        )
    sensors = tuple(
        SensorRef(_enum(SensorKind, kind), index)
        for kind, index in struct.iter_unpack(">BH", payload[fixed_end:sensors_end])
    )
    (boot,) = struct.unpack_from(">I", payload, sensors_end)
    return Hello(device_id, (major, minor, patch), interval, sensors, boot)


def _decode_payload(kind: MessageType, payload: bytes) -> Message:
    match kind:
        case MessageType.HELLO:
            return _decode_hello(payload)
        case MessageType.SEAT:
            seat, state = _SEAT(payload)
            return Seat(seat, _flag(state, "seat state"))
        case MessageType.PEOPLE:
            counter, in_total, out_total = _PEOPLE(payload)
            return People(counter, in_total, out_total)
        case MessageType.DOOR:
            door, state = _DOOR(payload)
            return Door(door, _flag(state, "door state"))
        case MessageType.HEARTBEAT:
            uptime_s, supply_mv = _HEARTBEAT(payload)
            return Heartbeat(uptime_s, supply_mv)
        case MessageType.FAULT:
            sensor_kind, index, code, active = _FAULT(payload)
            return Fault(
                SensorRef(_enum(SensorKind, sensor_kind), index),
                _enum(FaultCode, code),
                _flag(active, "fault active"),
            )
        case MessageType.WINDOW:
            boot, dropped = _WINDOW(payload)
            return Window(boot, dropped, int.from_bytes(payload[8:], "little"))
        case MessageType.PING:
            _EMPTY(payload)
            return Ping()
        case MessageType.SET_REPORT_INTERVAL:
            (seconds,) = _U16(payload)
            if seconds == 0:
                raise PayloadError("SET_REPORT_INTERVAL of 0 seconds")
            return SetReportInterval(seconds)
        case MessageType.IDENTIFY:
            (seconds,) = _U8(payload)
            return Identify(seconds)
        case MessageType.REBOOT:
            _EMPTY(payload)
            return Reboot()
        case MessageType.REPORT_ACK:
            (seq,) = _U16(payload)
            return ReportAck(seq)
        case MessageType.RESEND:
            _EMPTY(payload)
            return Resend()
        case MessageType.ACK:
            (ref_seq,) = _U16(payload)
            return Ack(ref_seq)
        case MessageType.NACK:
            ref_seq, reason = _NACK(payload)
            return Nack(ref_seq, _enum(NackReason, reason))


# -- frames -------------------------------------------------------------------


def encode_body(frame: Frame) -> bytes:
    """The decoded frame: header, payload and CRC, before COBS."""
    kind, payload = _encode_payload(frame.message)
    head = _HEADER.pack(frame.version, kind, frame.seq) + payload
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
    kind = _TYPES.get(type_byte)
    if kind is None:
        raise UnknownTypeError(f"unknown message type {type_byte:#04x}")
    try:
        message = _decode_payload(kind, head[_HEADER.size :])
    except MessageValueError as exc:
        raise PayloadError(f"{kind.name}: {exc}") from exc
    except PayloadError as exc:
        raise PayloadError(f"{kind.name}: {exc}") from None
    return Frame(seq=seq, message=message, version=version)


def read_frame(buffer: bytes | bytearray) -> tuple[Frame | FrameError | None, int]:
    """Read at most one frame from the front of ``buffer``.

    Returns ``(result, consumed)``:

    * ``(None, 0)`` — need more bytes: no delimiter yet and the buffer could still be a frame;
    * ``(None, n)`` — ``n`` bytes of empty frames (bare delimiters) were skipped;
    * ``(Frame, n)`` — a frame, and the ``n`` bytes it took including its delimiter;
    * ``(FrameError, n)`` — ``n`` bytes were malformed and are to be dropped.

    A buffer with no delimiter that is already longer than any frame can be is
    reported as :class:`FrameTooLongError` and consumed whole; the receiver then
    resynchronises at the next delimiter.
    """
    end = buffer.find(DELIMITER)
    if end < 0:
        if len(buffer) > MAX_ENCODED:
            return FrameTooLongError(
                f"{len(buffer)} bytes without a delimiter", raw=bytes(buffer[:64])
            ), len(buffer)
        return None, 0
    if end == 0:
        return None, 1
    return _decode_raw(bytes(buffer[:end])), end + 1


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
        # One pass over the buffer, cut once at the end: what read_frame does frame by
        # frame, without moving the rest of the buffer after every frame.
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
