"""The firmware's C core through ctypes, for tests/test_firmware_codec.py.

``build/host/libqiheboard.so`` (``make -C firmware hostlib``) holds the core and the test
shim (firmware/test/): a mirror of ``qp_frame_t`` carries frames both ways, checked against
the C layout by the test module; :class:`CDecoder` is the receiver between guard bytes;
:class:`CBoard` the board (core/board.c) on the fake HAL.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any, ClassVar

from firmware_bridge.codec import MAX_BODY, MAX_ENCODED, FrameDecoder
from firmware_bridge.errors import MessageValueError
from firmware_bridge.messages import (
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
    SeatPresence,
    SensorKind,
    SensorRef,
    SetReportInterval,
    Window,
)
from tests.firmware_build import firmware_build

__all__ = [
    "FRAME_OFFSETS",
    "QP_MAX_ID",
    "QP_MAX_SENSORS",
    "QP_NONE",
    "CBoard",
    "CDecoder",
    "QpFrame",
    "c_cobs_decode",
    "c_cobs_encode",
    "c_crc",
    "c_decode_body",
    "c_encode_body",
    "c_encode_wire",
    "error_kind",
    "frame_offset",
    "from_c",
    "lib",
    "to_c",
]

QP_MAX_ID = 32
QP_MAX_SENSORS = 78
QP_NONE = -1


# -- the ctypes mirror of proto.h -----------------------------------------------------------


class QpSensor(ctypes.Structure):
    _fields_: ClassVar = [("kind", ctypes.c_uint8), ("index", ctypes.c_uint16)]


class QpHello(ctypes.Structure):
    _fields_: ClassVar = [
        ("id_len", ctypes.c_uint8),
        ("device_id", ctypes.c_uint8 * (QP_MAX_ID + 1)),
        ("firmware", ctypes.c_uint8 * 3),
        ("report_interval_s", ctypes.c_uint16),
        ("sensor_count", ctypes.c_uint8),
        ("sensors", QpSensor * QP_MAX_SENSORS),
        ("boot", ctypes.c_uint32),
    ]


def _struct(name: str, *fields: tuple[str, Any]) -> type[ctypes.Structure]:
    return type(name, (ctypes.Structure,), {"_fields_": list(fields)})


QpSeat = _struct("QpSeat", ("seat", ctypes.c_uint16), ("occupied", ctypes.c_bool))
QpSeatPresence = _struct(
    "QpSeatPresence",
    ("seat", ctypes.c_uint16),
    ("occupied", ctypes.c_bool),
    ("present", ctypes.c_bool),
)
QpPeople = _struct(
    "QpPeople",
    ("counter", ctypes.c_uint16),
    ("in_total", ctypes.c_uint32),
    ("out_total", ctypes.c_uint32),
)
QpDoor = _struct("QpDoor", ("door", ctypes.c_uint16), ("open", ctypes.c_bool))
QpHeartbeat = _struct("QpHeartbeat", ("uptime_s", ctypes.c_uint32), ("supply_mv", ctypes.c_uint16))
QpFault = _struct(
    "QpFault", ("sensor", QpSensor), ("code", ctypes.c_uint8), ("active", ctypes.c_bool)
)
QpWindow = _struct(
    "QpWindow",
    ("boot", ctypes.c_uint32),
    ("dropped", ctypes.c_uint32),
    ("held", ctypes.c_uint8 * 32),
)
QpU16 = _struct("QpU16", ("value", ctypes.c_uint16))
QpU8 = _struct("QpU8", ("value", ctypes.c_uint8))
QpNack = _struct("QpNack", ("ref_seq", ctypes.c_uint16), ("reason", ctypes.c_uint8))


class QpMessages(ctypes.Union):
    _fields_: ClassVar = [
        ("hello", QpHello),
        ("seat", QpSeat),
        ("seat_presence", QpSeatPresence),
        ("people", QpPeople),
        ("door", QpDoor),
        ("heartbeat", QpHeartbeat),
        ("fault", QpFault),
        ("window", QpWindow),
        ("set_report_interval", QpU16),
        ("identify", QpU8),
        ("report_ack", QpU16),
        ("ack", QpU16),
        ("nack", QpNack),
    ]


class QpFrame(ctypes.Structure):
    _fields_: ClassVar = [("type", ctypes.c_uint8), ("seq", ctypes.c_uint16), ("m", QpMessages)]


def frame_offset(*path: str | int) -> int:
    """Offset of a field of QpFrame given as a path of names (and array indexes)."""
    cls: Any = QpFrame
    total = 0
    for step in path:
        if isinstance(step, int):
            total += step * ctypes.sizeof(cls._type_)
            cls = cls._type_
            continue
        field = getattr(cls, step)
        total += field.offset
        cls = dict(cls._fields_)[step]
    return total


# In the order of OFFSETS in firmware/test/shim.c.
FRAME_OFFSETS: list[tuple[str | int, ...]] = [
    ("type",),
    ("seq",),
    ("m",),
    *(
        ("m", "hello", name)
        for name in ("id_len", "device_id", "firmware", "report_interval_s", "sensor_count")
    ),
    ("m", "hello", "sensors"),
    ("m", "hello", "sensors", 1, "index"),
    ("m", "hello", "boot"),
    ("m", "seat", "seat"),
    ("m", "seat", "occupied"),
    ("m", "seat_presence", "seat"),
    ("m", "seat_presence", "occupied"),
    ("m", "seat_presence", "present"),
    ("m", "people", "counter"),
    ("m", "people", "in_total"),
    ("m", "people", "out_total"),
    ("m", "door", "door"),
    ("m", "door", "open"),
    ("m", "heartbeat", "uptime_s"),
    ("m", "heartbeat", "supply_mv"),
    ("m", "fault", "sensor", "kind"),
    ("m", "fault", "sensor", "index"),
    ("m", "fault", "code"),
    ("m", "fault", "active"),
    ("m", "window", "boot"),
    ("m", "window", "dropped"),
    ("m", "window", "held"),
    ("m", "set_report_interval", "value"),
    ("m", "identify", "value"),
    ("m", "report_ack", "value"),
    ("m", "ack", "value"),
    ("m", "nack", "ref_seq"),
    ("m", "nack", "reason"),
]


# -- the library ---------------------------------------------------------------------------


@functools.cache
def lib() -> ctypes.CDLL:
    """The core and the shim, built once per session and loaded with ctypes."""
    so = ctypes.CDLL(str(firmware_build("hostlib")))
    c_size_p = ctypes.POINTER(ctypes.c_size_t)
    u8_p = ctypes.POINTER(ctypes.c_uint8)
    frame_p = ctypes.POINTER(QpFrame)
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "qp_crc16": (ctypes.c_uint16, [u8_p, ctypes.c_size_t]),
        "qp_cobs_encode": (ctypes.c_size_t, [u8_p, ctypes.c_size_t, u8_p]),
        "qp_cobs_decode": (ctypes.c_int, [u8_p, ctypes.c_size_t, u8_p]),
        "qp_encode_body": (ctypes.c_size_t, [frame_p, u8_p]),
        "qp_encode_wire": (ctypes.c_size_t, [frame_p, u8_p]),
        "qp_wire_of_body": (ctypes.c_size_t, [u8_p, ctypes.c_size_t, u8_p]),
        "qp_decode_body": (ctypes.c_int, [u8_p, ctypes.c_size_t, frame_p]),
        "qp_error_kind": (ctypes.c_char_p, [ctypes.c_int]),
        "qp_decoder_init": (None, [ctypes.c_void_p]),
        "qp_decoder_feed": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint8, frame_p]),
        "qps_frame_size": (ctypes.c_size_t, []),
        "qps_decoder_size": (ctypes.c_size_t, []),
        "qps_frame_offsets": (ctypes.c_size_t, [c_size_p, ctypes.c_size_t]),
        "qps_feed": (
            ctypes.c_size_t,
            [
                ctypes.c_void_p,
                u8_p,
                ctypes.c_size_t,
                ctypes.POINTER(ctypes.c_int8),
                frame_p,
                ctypes.c_size_t,
            ],
        ),
        "qps_pending": (ctypes.c_uint16, [ctypes.c_void_p]),
        "qps_skipping": (ctypes.c_int, [ctypes.c_void_p]),
        "qps_board_size": (ctypes.c_size_t, []),
        "qps_board_start": (
            None,
            [
                ctypes.c_uint16,
                ctypes.c_bool,
                ctypes.c_bool,
                ctypes.c_uint32,
                ctypes.c_uint32,
                ctypes.c_uint32,
            ],
        ),
        "qps_board_rx": (None, [u8_p, ctypes.c_size_t, ctypes.c_uint32]),
        "qps_board_tick": (None, [ctypes.c_uint32]),
        "qps_board_halted": (ctypes.c_int, []),
        "qps_board_guards_intact": (ctypes.c_int, []),
        "hal_fake_take_output": (ctypes.c_size_t, [u8_p, ctypes.c_size_t]),
        "hal_fake_reboots": (ctypes.c_uint32, []),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(so, name)
        function.restype = restype
        function.argtypes = argtypes
    return so


def _in(data: bytes) -> Any:
    """A C copy of ``data`` (never empty: ctypes wants a buffer)."""
    return (ctypes.c_uint8 * max(1, len(data))).from_buffer_copy(data or b"\0")


def error_kind(code: int) -> str:
    kind: bytes = lib().qp_error_kind(code)
    return kind.decode()


def c_crc(data: bytes) -> int:
    return int(lib().qp_crc16(_in(data), len(data)))


def c_cobs_encode(data: bytes) -> bytes:
    out = (ctypes.c_uint8 * (len(data) + len(data) // 254 + 1))()
    n = lib().qp_cobs_encode(_in(data), len(data), out)
    return bytes(out[:n])


def c_cobs_decode(data: bytes) -> bytes | None:
    out = (ctypes.c_uint8 * max(1, len(data)))()
    n = lib().qp_cobs_decode(_in(data), len(data), out)
    return None if n < 0 else bytes(out[:n])


def c_encode_body(frame: QpFrame) -> bytes | None:
    out = (ctypes.c_uint8 * MAX_BODY)()
    n = lib().qp_encode_body(ctypes.byref(frame), out)
    return bytes(out[:n]) if n else None


def c_encode_wire(frame: QpFrame) -> bytes | None:
    out = (ctypes.c_uint8 * (MAX_ENCODED + 1))()  # QP_MAX_WIRE
    n = lib().qp_encode_wire(ctypes.byref(frame), out)
    return bytes(out[:n]) if n else None


def c_decode_body(body: bytes) -> QpFrame | str:
    frame = QpFrame()
    code = lib().qp_decode_body(_in(body), len(body), ctypes.byref(frame))
    return frame if code == 0 else error_kind(code)


class CDecoder:
    """The C receiver in a buffer with guard bytes on both sides, to see it never writes
    outside its fixed struct."""

    GUARD = 64
    PATTERN = 0xA5

    def __init__(self) -> None:
        self.size = int(lib().qps_decoder_size())
        self._memory = (ctypes.c_uint8 * (self.size + 2 * self.GUARD))(
            *([self.PATTERN] * (self.size + 2 * self.GUARD))
        )
        self.pointer = ctypes.addressof(self._memory) + self.GUARD
        lib().qp_decoder_init(self.pointer)

    def feed(self, data: bytes) -> list[Frame | str]:
        """Results in stream order: a Frame (converted from C) or an error kind."""
        if not data:
            return []
        results = (ctypes.c_int8 * len(data))()
        capacity = len(data) // 7 + 1  # a good frame takes at least 8 bytes of the stream
        frames_out = (QpFrame * capacity)()
        n = lib().qps_feed(self.pointer, _in(data), len(data), results, frames_out, capacity)
        good = iter(frames_out)
        out: list[Frame | str] = []
        for code in results[:n]:
            out.append(from_c(next(good)) if code == 0 else error_kind(code))
        assert self.pending <= MAX_ENCODED
        assert self.guards_intact()
        return out

    @property
    def pending(self) -> int:
        return int(lib().qps_pending(self.pointer))

    @property
    def skipping(self) -> bool:
        return bool(lib().qps_skipping(self.pointer))

    def guards_intact(self) -> bool:
        raw = bytes(self._memory)
        return raw[: self.GUARD] + raw[self.GUARD + self.size :] == bytes(
            [self.PATTERN] * 2 * self.GUARD
        )


# -- frames between Python and C -------------------------------------------------------------


def to_c(frame: Frame) -> QpFrame:
    """The C struct for a Python frame (version 1: C frames have no version field)."""
    assert frame.version == 1
    c = QpFrame()
    c.seq = frame.seq
    message = frame.message
    c.type = _TYPE_OF[type(message)]
    m = c.m
    match message:
        case Hello():
            raw = message.device_id.encode("ascii")
            m.hello.id_len = len(raw)
            m.hello.device_id[: len(raw)] = list(raw)
            m.hello.firmware[:] = list(message.firmware)
            m.hello.report_interval_s = message.report_interval_s
            m.hello.sensor_count = len(message.sensors)
            for i, sensor in enumerate(message.sensors):
                m.hello.sensors[i].kind = sensor.kind
                m.hello.sensors[i].index = sensor.index
            m.hello.boot = message.boot
        case Seat():
            m.seat.seat, m.seat.occupied = message.seat, message.occupied
        case SeatPresence():
            p = m.seat_presence
            p.seat, p.occupied, p.present = message.seat, message.occupied, message.present
        case People():
            m.people.counter = message.counter
            m.people.in_total, m.people.out_total = message.in_total, message.out_total
        case Door():
            m.door.door, m.door.open = message.door, message.open
        case Heartbeat():
            m.heartbeat.uptime_s, m.heartbeat.supply_mv = message.uptime_s, message.supply_mv
        case Fault():
            m.fault.sensor.kind, m.fault.sensor.index = message.sensor.kind, message.sensor.index
            m.fault.code, m.fault.active = message.code, message.active
        case Window():
            m.window.boot, m.window.dropped = message.boot, message.dropped
            m.window.held[:] = list(message.held.to_bytes(32, "little"))
        case SetReportInterval():
            m.set_report_interval.value = message.seconds
        case Identify():
            m.identify.value = message.seconds
        case ReportAck():
            m.report_ack.value = message.seq
        case Ack():
            m.ack.value = message.ref_seq
        case Nack():
            m.nack.ref_seq, m.nack.reason = message.ref_seq, message.reason
        case Ping() | Reboot() | Resend():
            pass
    return c


_TYPE_OF: dict[type[Any], int] = {
    Hello: MessageType.HELLO,
    Seat: MessageType.SEAT,
    People: MessageType.PEOPLE,
    Door: MessageType.DOOR,
    Heartbeat: MessageType.HEARTBEAT,
    Fault: MessageType.FAULT,
    Window: MessageType.WINDOW,
    SeatPresence: MessageType.SEAT_PRESENCE,
    Ping: MessageType.PING,
    SetReportInterval: MessageType.SET_REPORT_INTERVAL,
    Identify: MessageType.IDENTIFY,
    Reboot: MessageType.REBOOT,
    ReportAck: MessageType.REPORT_ACK,
    Resend: MessageType.RESEND,
    Ack: MessageType.ACK,
    Nack: MessageType.NACK,
}


def _hello_of_c(h: QpHello) -> Hello:
    raw = bytes(h.device_id)[: h.id_len]
    try:
        device_id = raw.decode("ascii")
    except UnicodeDecodeError:
        raise MessageValueError(f"device id {raw!r} is not ASCII") from None
    sensors = tuple(SensorRef(SensorKind(s.kind), s.index) for s in h.sensors[: h.sensor_count])
    return Hello(device_id, tuple(h.firmware), h.report_interval_s, sensors, h.boot)


_FROM_C: dict[int, Callable[[QpMessages], Message]] = {
    MessageType.HELLO: lambda m: _hello_of_c(m.hello),
    MessageType.SEAT: lambda m: Seat(m.seat.seat, m.seat.occupied),
    MessageType.SEAT_PRESENCE: lambda m: SeatPresence(
        m.seat_presence.seat, m.seat_presence.occupied, m.seat_presence.present
    ),
    MessageType.PEOPLE: lambda m: People(m.people.counter, m.people.in_total, m.people.out_total),
    MessageType.DOOR: lambda m: Door(m.door.door, m.door.open),
    MessageType.HEARTBEAT: lambda m: Heartbeat(m.heartbeat.uptime_s, m.heartbeat.supply_mv),
    MessageType.FAULT: lambda m: Fault(
        SensorRef(SensorKind(m.fault.sensor.kind), m.fault.sensor.index),
        FaultCode(m.fault.code),
        m.fault.active,
    ),
    MessageType.WINDOW: lambda m: Window(
        m.window.boot, m.window.dropped, int.from_bytes(bytes(m.window.held), "little")
    ),
    MessageType.PING: lambda m: Ping(),
    MessageType.SET_REPORT_INTERVAL: lambda m: SetReportInterval(m.set_report_interval.value),
    MessageType.IDENTIFY: lambda m: Identify(m.identify.value),
    MessageType.REBOOT: lambda m: Reboot(),
    MessageType.REPORT_ACK: lambda m: ReportAck(m.report_ack.value),
    MessageType.RESEND: lambda m: Resend(),
    MessageType.ACK: lambda m: Ack(m.ack.value),
    MessageType.NACK: lambda m: Nack(m.nack.ref_seq, NackReason(m.nack.reason)),
}


def from_c(c: QpFrame) -> Frame:
    """The Python frame for a C struct; ValueError when a field is not one Python can carry."""
    if c.type not in _FROM_C:
        raise MessageValueError(f"type {c.type:#04x} is not a message")
    return Frame(seq=c.seq, message=_FROM_C[c.type](c.m))


# -- the board on the fake HAL ---------------------------------------------------------------

BOOT = 0xB0A7D


class CBoard:
    """The C board on the fake HAL, holding reports (retransmit 3 s), 4 seats, counter, door.

    Time moves 7 ms per piece received, with a tick after each, so resend bursts, RESEND
    and REPORT_ACK handling all run while the bytes arrive."""

    def __init__(self, boot: int = BOOT) -> None:
        self.now = 1000
        lib().qps_board_start(4, True, True, 3000, boot, self.now)
        self.output = bytearray()
        self._take()

    def rx(self, data: bytes) -> None:
        self.now += 7
        lib().qps_board_rx(_in(data), len(data), self.now)
        lib().qps_board_tick(self.now)
        assert lib().qps_board_guards_intact()
        self._take()

    def _take(self) -> None:
        out = (ctypes.c_uint8 * 65536)()
        while n := lib().hal_fake_take_output(out, len(out)):
            self.output += bytes(out[:n])

    def sent(self) -> list[Frame]:
        """Everything the board wrote, decoded: it never writes a malformed frame."""
        results = FrameDecoder().feed(bytes(self.output))
        assert all(isinstance(r, Frame) for r in results), results
        return [r for r in results if isinstance(r, Frame)]

    def replies(self) -> list[Message]:
        return [f.message for f in self.sent() if isinstance(f.message, Ack | Nack)]
