"""The sensor board's protocol behaviour: sequence numbers, HELLO, and answering commands.

Sans-IO like the codec: :meth:`Board.receive` takes the bytes the gateway sent
and returns the frames to send back; :meth:`Board.emit` numbers the model's
reports. The runner moves the bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from firmware_bridge import cobs
from firmware_bridge.codec import FrameDecoder
from firmware_bridge.emulator.model import BookHouseModel
from firmware_bridge.errors import FrameError, PayloadError, UnknownTypeError
from firmware_bridge.messages import (
    Ack,
    Frame,
    Hello,
    Identify,
    Message,
    MessageType,
    Nack,
    NackReason,
    Ping,
    Reboot,
    Report,
    SetReportInterval,
)

__all__ = ["FIRMWARE", "MAX_REPORT_INTERVAL_S", "Board", "BoardCounters"]

FIRMWARE = (1, 0, 0)
#: The board accepts report intervals of 1 s up to one hour.
MAX_REPORT_INTERVAL_S = 3600
_SEQ_MOD = 0x1_0000
_COMMAND_TYPES = frozenset(
    {
        MessageType.PING,
        MessageType.SET_REPORT_INTERVAL,
        MessageType.IDENTIFY,
        MessageType.REBOOT,
    }
)


@dataclass(slots=True)
class BoardCounters:
    """What the board received from the gateway since it was built (survives reboots)."""

    commands: int = 0
    malformed: int = 0  # frames that failed to decode and were ignored
    nacked: int = 0
    reboots: int = 0
    identifies: int = 0


class Board:
    """One sensor board in front of a :class:`BookHouseModel`."""

    def __init__(
        self,
        model: BookHouseModel,
        device_id: str,
        *,
        firmware: tuple[int, int, int] = FIRMWARE,
        first_seq: int = 0,
    ) -> None:
        self.model = model
        self.device_id = device_id
        self.firmware = firmware
        self.counters = BoardCounters()
        self._seq = first_seq % _SEQ_MOD
        self._decoder = FrameDecoder()

    @property
    def next_seq(self) -> int:
        """The sequence number the next frame will carry."""
        return self._seq

    def _frame(self, message: Message) -> Frame:
        frame = Frame(seq=self._seq, message=message)
        self._seq = (self._seq + 1) % _SEQ_MOD
        return frame

    def emit(self, reports: Sequence[Report]) -> list[Frame]:
        """Number the model's reports for the wire."""
        return [self._frame(report) for report in reports]

    def hello(self) -> Hello:
        return Hello(
            device_id=self.device_id,
            firmware=self.firmware,
            report_interval_s=self.model.report_interval_s,
            sensors=self.model.sensors,
        )

    def power_up(self) -> list[Frame]:
        """Frames sent at power-up: HELLO, then the state of every sensor."""
        return [self._frame(self.hello()), *self.emit(self.model.snapshot())]

    def reboot(self) -> list[Frame]:
        """Restart: sequence numbers from 0, uptime and counter totals reset, HELLO again."""
        self.counters.reboots += 1
        self._seq = 0
        self._decoder = FrameDecoder()
        self.model.reboot()
        return self.power_up()

    def receive(self, data: bytes) -> list[Frame]:
        """Bytes from the gateway in, frames to send back out."""
        out: list[Frame] = []
        for item in self._decoder.feed(data):
            if isinstance(item, Frame):
                out.extend(self._command(item))
            else:
                out.extend(self._malformed(item))
        return out

    def _malformed(self, error: FrameError) -> list[Frame]:
        self.counters.malformed += 1
        # Spec section 7: a good CRC and version whose type is not a command this board
        # implements is answered NACK UNKNOWN_COMMAND; any other malformed frame is dropped.
        if isinstance(error, UnknownTypeError | PayloadError):
            header = _header_of(error.raw)
            if header is not None and header[0] not in _COMMAND_TYPES:
                return [self._nack(header[1], NackReason.UNKNOWN_COMMAND)]
        return []

    def _nack(self, ref_seq: int, reason: NackReason) -> Frame:
        self.counters.nacked += 1
        return self._frame(Nack(ref_seq, reason))

    def _command(self, frame: Frame) -> list[Frame]:
        self.counters.commands += 1
        ref = frame.seq
        match frame.message:
            case Ping():
                return [self._frame(Ack(ref))]
            case SetReportInterval(seconds):
                if not 1 <= seconds <= MAX_REPORT_INTERVAL_S:
                    return [self._nack(ref, NackReason.BAD_ARGUMENT)]
                self.model.set_report_interval(seconds)
                return [self._frame(Ack(ref))]
            case Identify():
                self.counters.identifies += 1
                return [self._frame(Ack(ref))]
            case Reboot():
                ack = self._frame(Ack(ref))
                return [ack, *self.reboot()]
            case _:
                return [self._nack(ref, NackReason.UNKNOWN_COMMAND)]


def _header_of(raw: bytes) -> tuple[int, int] | None:
    """Type byte and seq of a COBS-encoded frame whose CRC matched, if they can be read."""
    try:
        body = cobs.decode(raw)
    except FrameError:
        return None
    return (body[1], int.from_bytes(body[2:4], "big")) if len(body) >= 4 else None
