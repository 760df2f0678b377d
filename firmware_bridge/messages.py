"""Typed messages of the qihe serial protocol (spec: ``docs/protocol.md``).

Every message is a frozen dataclass. A :class:`Frame` wraps one message with
the protocol version and the sender's sequence number. Field ranges are checked
on construction, so a message that exists can always be encoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from firmware_bridge.errors import MessageValueError

__all__ = [
    "DEVICE_ID_PATTERN",
    "PROTOCOL_VERSION",
    "WINDOW_SPAN",
    "Ack",
    "BoardMessage",
    "Door",
    "Fault",
    "FaultCode",
    "Frame",
    "GatewayMessage",
    "Heartbeat",
    "Hello",
    "Identify",
    "Message",
    "MessageType",
    "Nack",
    "NackReason",
    "People",
    "Ping",
    "Reboot",
    "Report",
    "ReportAck",
    "Resend",
    "Seat",
    "SeatPresence",
    "SensorKind",
    "SensorRef",
    "SetReportInterval",
    "Window",
]

PROTOCOL_VERSION = 1

#: Device ids travel into MQTT topics and InfluxDB tags, so they are plain ASCII slugs.
DEVICE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")

_U8 = 0xFF
_U16 = 0xFFFF
_U32 = 0xFFFF_FFFF


class MessageType(IntEnum):
    """The type byte of a frame. Device → gateway below 0x40, commands 0x40–0x7F, replies 0x80+."""

    HELLO = 0x01
    SEAT = 0x02
    PEOPLE = 0x03
    DOOR = 0x04
    HEARTBEAT = 0x05
    FAULT = 0x06
    WINDOW = 0x07
    SEAT_PRESENCE = 0x08
    PING = 0x40
    SET_REPORT_INTERVAL = 0x41
    IDENTIFY = 0x42
    REBOOT = 0x43
    REPORT_ACK = 0x44
    RESEND = 0x45
    ACK = 0x80
    NACK = 0x81


class SensorKind(IntEnum):
    SEAT = 1
    PEOPLE = 2
    DOOR = 3


class FaultCode(IntEnum):
    STUCK = 1
    NO_RESPONSE = 2
    OUT_OF_RANGE = 3
    SUPPLY_LOW = 4
    OTHER = 0xFF


class NackReason(IntEnum):
    UNKNOWN_COMMAND = 1
    BAD_ARGUMENT = 2
    BUSY = 3


def _check(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MessageValueError(f"{name}={value!r} is outside {low}..{high}")


def _check_flag(name: str, value: bool) -> None:
    # Any other value would encode to a byte that every receiver rejects.
    if not isinstance(value, int) or value not in (0, 1):
        raise MessageValueError(f"{name}={value!r} must be True or False")


def _check_enum(name: str, value: IntEnum, enum: type[IntEnum]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value not in set(enum):
        raise MessageValueError(f"{name}={value!r} is not a {enum.__name__}")


@dataclass(frozen=True, slots=True)
class SensorRef:
    """One sensor on a board: its kind and its index on that board (1-based by convention)."""

    kind: SensorKind
    index: int

    def __post_init__(self) -> None:
        _check_enum("sensor kind", self.kind, SensorKind)
        _check("sensor index", self.index, 0, _U16)


@dataclass(frozen=True, slots=True)
class Hello:
    """Sent by a board after power-up: who it is and what it carries."""

    device_id: str
    firmware: tuple[int, int, int]
    report_interval_s: int
    sensors: tuple[SensorRef, ...] = ()
    #: Drawn at random at every power-up: tells a new boot from a resent HELLO.
    boot: int = 0

    def __post_init__(self) -> None:
        _check("boot", self.boot, 0, _U32)
        if not DEVICE_ID_PATTERN.fullmatch(self.device_id):
            raise MessageValueError(
                f"device_id={self.device_id!r} must match {DEVICE_ID_PATTERN.pattern}"
            )
        if len(self.firmware) != 3:
            raise MessageValueError(f"firmware={self.firmware!r} must be (major, minor, patch)")
        for part in self.firmware:
            _check("firmware part", part, 0, _U8)
        _check("report_interval_s", self.report_interval_s, 1, _U16)
        if len(self.sensors) > _U8:
            raise MessageValueError(f"{len(self.sensors)} sensors; at most {_U8} fit a HELLO")


@dataclass(frozen=True, slots=True)
class Seat:
    seat: int
    occupied: bool

    def __post_init__(self) -> None:
        _check("seat", self.seat, 0, _U16)
        _check_flag("occupied", self.occupied)


@dataclass(frozen=True, slots=True)
class SeatPresence:
    """Both channels of a seat that has a presence channel (an mmWave radar above the desk)
    besides its occupancy channel: ``occupied`` as in :class:`Seat`, ``present`` whether
    someone is there. Occupied and not present is a seat left with things on it (暂离)."""

    seat: int
    occupied: bool
    present: bool

    def __post_init__(self) -> None:
        _check("seat", self.seat, 0, _U16)
        _check_flag("occupied", self.occupied)
        _check_flag("present", self.present)


@dataclass(frozen=True, slots=True)
class People:
    """Entrance counter as cumulative totals since the board's last reset."""

    counter: int
    in_total: int
    out_total: int

    def __post_init__(self) -> None:
        _check("counter", self.counter, 0, _U16)
        _check("in_total", self.in_total, 0, _U32)
        _check("out_total", self.out_total, 0, _U32)


@dataclass(frozen=True, slots=True)
class Door:
    door: int
    open: bool

    def __post_init__(self) -> None:
        _check("door", self.door, 0, _U16)
        _check_flag("open", self.open)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    uptime_s: int
    supply_mv: int

    def __post_init__(self) -> None:
        _check("uptime_s", self.uptime_s, 0, _U32)
        _check("supply_mv", self.supply_mv, 0, _U16)


@dataclass(frozen=True, slots=True)
class Fault:
    """A sensor fault raised (``active``) or cleared."""

    sensor: SensorRef
    code: FaultCode
    active: bool = True

    def __post_init__(self) -> None:
        _check_enum("code", self.code, FaultCode)
        _check_flag("active", self.active)


#: Numbers a WINDOW's bitmap describes: every number a board can still hold (section 8).
WINDOW_SPAN = 256


@dataclass(frozen=True, slots=True)
class Window:
    """What a board that holds reports still holds, and how many it gave up this boot.

    Sent first in every resend burst, numbered like a reply, never held or resent.
    ``held`` is a 256-bit map: bit ``i`` is set when the board still holds the report
    numbered ``frame.seq - 1 - i`` (mod 65536), for ``i`` in 0..255; on the wire it is
    32 bytes, bit ``i`` in byte ``i // 8`` with value ``1 << (i % 8)``. ``dropped``
    counts the reports this boot gave up without an acknowledgement, cumulative.
    """

    boot: int
    dropped: int
    held: int = 0

    def __post_init__(self) -> None:
        _check("boot", self.boot, 0, _U32)
        _check("dropped", self.dropped, 0, _U32)
        if isinstance(self.held, bool) or not isinstance(self.held, int):
            raise MessageValueError(f"held={self.held!r} must be an int bitmap")
        if not 0 <= self.held < 1 << WINDOW_SPAN:
            raise MessageValueError(f"held={self.held:#x} does not fit {WINDOW_SPAN} bits")

    @classmethod
    def of(cls, seq: int, boot: int, dropped: int, held: Iterable[int]) -> Window:
        """The WINDOW numbered ``seq`` for a board holding the reports numbered ``held``."""
        bitmap = 0
        for number in held:
            back = (seq - number) % 0x1_0000
            if not 1 <= back <= WINDOW_SPAN:
                raise MessageValueError(f"report {number} is outside the span of WINDOW {seq}")
            bitmap |= 1 << (back - 1)
        return cls(boot, dropped, bitmap)

    def holds(self, back: int) -> bool:
        """Whether the board holds the report ``back`` numbers before this WINDOW (1..256)."""
        return 1 <= back <= WINDOW_SPAN and bool(self.held >> (back - 1) & 1)


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class SetReportInterval:
    seconds: int

    def __post_init__(self) -> None:
        _check("seconds", self.seconds, 1, _U16)


@dataclass(frozen=True, slots=True)
class Identify:
    """Blink the board's LED for ``seconds`` so a technician can find it."""

    seconds: int = 10

    def __post_init__(self) -> None:
        _check("seconds", self.seconds, 0, _U8)


@dataclass(frozen=True, slots=True)
class Reboot:
    pass


@dataclass(frozen=True, slots=True)
class ReportAck:
    """Every report up to and including ``seq`` (the board's numbers, mod 2**16) is stored.

    Cumulative and never answered: the board forgets the reports it covers and
    stops sending them again. ``seq`` is the board's sequence number; the frame
    that carries it has the gateway's own.
    """

    seq: int

    def __post_init__(self) -> None:
        _check("seq", self.seq, 0, _U16)


@dataclass(frozen=True, slots=True)
class Resend:
    """Send everything you hold now: a gateway that (re)opened the port asks for a resend burst.

    Never answered and never retried, like :class:`ReportAck`: a board that holds
    reports answers with the burst its retransmit timer would send (a WINDOW, then
    every held report), unless it sent one very recently; a board holding nothing
    sends nothing. A board whose firmware predates it answers NACK UNKNOWN_COMMAND.
    """


@dataclass(frozen=True, slots=True)
class Ack:
    """The command with sequence number ``ref_seq`` was carried out."""

    ref_seq: int

    def __post_init__(self) -> None:
        _check("ref_seq", self.ref_seq, 0, _U16)


@dataclass(frozen=True, slots=True)
class Nack:
    ref_seq: int
    reason: NackReason

    def __post_init__(self) -> None:
        _check("ref_seq", self.ref_seq, 0, _U16)
        _check_enum("reason", self.reason, NackReason)


#: Board → gateway, held by the board until a REPORT_ACK covers them (when it retransmits).
Report = Hello | Seat | People | Door | Heartbeat | Fault | SeatPresence
#: Everything a gateway sends: commands, answered ACK or NACK (PING, SET_REPORT_INTERVAL,
#: IDENTIFY, REBOOT), and requests that are never answered (REPORT_ACK, RESEND).
GatewayMessage = Ping | SetReportInterval | Identify | Reboot | ReportAck | Resend
#: Everything a board sends: reports, the replies to commands (ACK, NACK), and WINDOW,
#: numbered like a reply and never held: what the board still holds.
BoardMessage = Report | Ack | Nack | Window
Message = BoardMessage | GatewayMessage


@dataclass(frozen=True, slots=True)
class Frame:
    """One message as it travels: the sender's 16-bit sequence number and the protocol version."""

    seq: int
    message: Message
    version: int = field(default=PROTOCOL_VERSION)

    def __post_init__(self) -> None:
        _check("seq", self.seq, 0, _U16)
        _check("version", self.version, 0, _U8)
