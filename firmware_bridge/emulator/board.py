"""The sensor board's protocol behaviour: sequence numbers, HELLO, commands, held reports.

Sans-IO like the codec: :meth:`Board.receive` takes the bytes the gateway sent
and returns the frames to send back; :meth:`Board.emit` numbers the model's
reports and hands them to the board's :class:`ReportWindow`, which keeps them
until a REPORT_ACK covers them; :meth:`Board.resend_due` returns what to send
again, after a WINDOW that tells the gateway which reports the board still holds
and how many it gave up. A RESEND from the gateway makes that burst due at once.
The runner moves the bytes and asks for resends as time passes and after every
receive.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from firmware_bridge import cobs
from firmware_bridge.codec import FrameDecoder
from firmware_bridge.emulator.model import BookHouseModel
from firmware_bridge.emulator.window import ReportWindow
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
    ReportAck,
    Resend,
    SetReportInterval,
    Window,
)

__all__ = [
    "MAX_REPORT_INTERVAL_S",
    "Board",
]

_FIRMWARE = (1, 0, 0)
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
# Types this board implements: a malformed one of these is dropped without a reply.
_IMPLEMENTED = _COMMAND_TYPES | {MessageType.REPORT_ACK, MessageType.RESEND}


@dataclass(slots=True)
class BoardCounters:
    """What the board received and did since it was built (survives reboots)."""

    commands: int = 0
    malformed: int = 0  # frames that failed to decode and were ignored
    nacked: int = 0
    reboots: int = 0
    identifies: int = 0
    report_acks: int = 0  # REPORT_ACK frames received (never answered, not commands)
    stale_acks: int = 0  # REPORT_ACKs for a seq not used since the last reset: ignored
    resend_requests: int = 0  # RESEND frames received (never answered, not commands)
    acked_reports: int = 0  # held reports forgotten because a REPORT_ACK covered them
    resent: int = 0  # frames put on the line again in resend bursts (timer or RESEND)
    windows: int = 0  # WINDOW frames sent (first in a resend burst, or after a REPORT_ACK)
    window_dropped: int = 0  # held reports given up unacknowledged: window full or too old
    lost_at_reset: int = 0  # held reports lost because the board reset or lost power


class Board:
    """One sensor board in front of a :class:`BookHouseModel`."""

    def __init__(
        self,
        model: BookHouseModel,
        device_id: str,
        *,
        firmware: tuple[int, int, int] = _FIRMWARE,
        first_seq: int = 0,
        window: ReportWindow | None = None,
    ) -> None:
        self.model = model
        self.device_id = device_id
        self.firmware = firmware
        self.counters = BoardCounters()
        #: Reports held for REPORT_ACK, and the ledger of every report (holding off by default).
        self.window = window if window is not None else ReportWindow()
        self._seq = first_seq % _SEQ_MOD
        self._boot = 1
        # A real board takes its boot number from a hardware RNG or uninitialised RAM;
        # seeded by the device id here so runs are reproducible.
        self._boot_numbers = random.Random(device_id)
        self._boot_number = self._boot_numbers.getrandbits(32)
        self._boot_first_seq = self._seq
        self._numbered = 0  # frames numbered since the last reset
        self._decoder = FrameDecoder()

    @property
    def next_seq(self) -> int:
        """The sequence number the next frame will carry."""
        return self._seq

    @property
    def boot(self) -> int:
        """1 at the first power-up, one more after every reset."""
        return self._boot

    @property
    def unacknowledged(self) -> int:
        """Reports held until a REPORT_ACK covers them."""
        return len(self.window)

    def _frame(self, message: Message) -> Frame:
        frame = Frame(seq=self._seq, message=message)
        self._seq = (self._seq + 1) % _SEQ_MOD
        self._numbered += 1
        self.counters.window_dropped += self.window.numbered(frame.seq)
        return frame

    def _report(self, report: Report) -> Frame:
        frame = self._frame(report)
        self.counters.window_dropped += self.window.produce(
            frame, boot=self._boot, sim_time=self.model.now
        )
        return frame

    def emit(self, reports: Sequence[Report]) -> list[Frame]:
        """Number the model's reports for the wire (and hold them, when retransmitting)."""
        return [self._report(report) for report in reports]

    def resend_due(self) -> list[Frame]:
        """A resend burst when the timer expired: a WINDOW, then the held reports oldest first.

        The resent frames are the very frames of their first sending (same seq, same
        bytes); the WINDOW takes a new number. Most calls return nothing.
        """
        if not self.window.due():
            return []
        window = self._window_frame()  # numbering it may let a too-old report fall out
        frames = self.window.resend()
        self.counters.resent += len(frames)
        return [window, *frames]

    def _window_frame(self) -> Frame:
        seq = self._seq
        self.counters.window_dropped += self.window.numbered(seq)
        message = Window.of(
            seq, self._boot_number, self.window.dropped, (f.seq for f in self.window.held())
        )
        self._seq = (seq + 1) % _SEQ_MOD
        self._numbered += 1
        self.window.window_sent(seq)
        self.counters.windows += 1
        return Frame(seq=seq, message=message)

    def hello(self) -> Hello:
        return Hello(
            device_id=self.device_id,
            firmware=self.firmware,
            report_interval_s=self.model.report_interval_s,
            sensors=self.model.sensors,
            boot=self._boot_number,
        )

    def power_up(self) -> list[Frame]:
        """Frames sent at power-up: HELLO, then the state of every sensor."""
        return [self._report(self.hello()), *self.emit(self.model.snapshot())]

    def power_off(self) -> None:
        """Power is gone: the held reports with it (they are RAM)."""
        self.counters.lost_at_reset += self.window.reset()

    def reboot(self) -> list[Frame]:
        """Restart: sequence numbers from 0, uptime and counter totals reset, HELLO again.

        Reports held for REPORT_ACK are lost: the window starts empty.
        """
        self.counters.reboots += 1
        self.power_off()
        self._boot += 1
        self._boot_number = self._boot_numbers.getrandbits(32)
        self._seq = self._boot_first_seq = 0
        self._numbered = 0
        self._decoder = FrameDecoder()
        self.model.reboot()
        return self.power_up()

    def receive(self, data: bytes) -> list[Frame]:
        """Bytes from the gateway in, frames to send back out.

        A RESEND is not answered here: it makes the resend burst due, so the next
        :meth:`resend_due` returns it (at once, or when the guard time is over).
        """
        out: list[Frame] = []
        for item in self._decoder.feed(data):
            if isinstance(item, Frame) and isinstance(item.message, ReportAck):
                out.extend(self._report_ack(item.message.seq))  # never answered
            elif isinstance(item, Frame) and isinstance(item.message, Resend):
                self.counters.resend_requests += 1  # never answered either
                self.window.request()
            elif isinstance(item, Frame):
                out.extend(self._command(item))
            else:
                out.extend(self._malformed(item))
        return out

    def _report_ack(self, seq: int) -> list[Frame]:
        """Forget what the ack covers; a WINDOW follows while the gateway has not heard of drops."""
        self.counters.report_acks += 1
        # An ack for a number not used since the reset was meant for an earlier boot
        # (the gateway has not seen this boot's HELLO yet); it must not cover new reports.
        used = self._numbered >= _SEQ_MOD or (seq - self._boot_first_seq) % _SEQ_MOD < (
            self._numbered
        )
        if not used:
            self.counters.stale_acks += 1
            return []
        self.counters.acked_reports += self.window.ack(seq)
        # Acks that keep coming restart the resend timer, so a burst may never come: tell
        # the gateway of reports given up here, until an ack shows it stored the count.
        return [self._window_frame()] if self.window.owes_window else []

    def _malformed(self, error: FrameError) -> list[Frame]:
        self.counters.malformed += 1
        # Spec section 7: a good CRC and version whose type is not a command this board
        # implements is answered NACK UNKNOWN_COMMAND; any other malformed frame is dropped.
        if isinstance(error, UnknownTypeError | PayloadError):
            header = _header_of(error.raw)
            if header is not None and header[0] not in _IMPLEMENTED:
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
