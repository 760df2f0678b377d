"""Turn decoded serial frames into wire readings, stamped in UTC at the gateway.

One :class:`FrameNormaliser` per serial link. It tracks the board's sequence
numbers (a gap is lost frames, the same number again is a duplicate that must
not become a second reading) and names each sensor ``{device}.{index}``.

A seat with a presence channel (SEAT_PRESENCE, ``docs/protocol.md``) is published with
both channels; its plain SEAT frames carry the presence last heard since the board's HELLO.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from edge.sequence import SequenceTracker, TrackerState
from edge.stamps import from_micros, micros
from firmware_bridge.errors import FrameError
from firmware_bridge.messages import (
    Door,
    Fault,
    Frame,
    Heartbeat,
    Hello,
    People,
    Seat,
    SeatPresence,
    SensorKind,
    Window,
)
from qihe.clock import Clock, utc_now
from qihe.contract import (
    DeviceReading,
    DoorReading,
    FaultReading,
    HeartbeatReading,
    LinkReading,
    PeopleReading,
    Reading,
    SeatReading,
)

__all__ = ["FrameNormaliser", "LinkCounters"]


_TARGET_KINDS: dict[SensorKind, Literal["seat", "people", "door"]] = {
    SensorKind.SEAT: "seat",
    SensorKind.PEOPLE: "people",
    SensorKind.DOOR: "door",
}


@dataclass(frozen=True, slots=True)
class LinkCounters:
    frames: int = 0
    crc_errors: int = 0
    malformed: int = 0
    #: Frames skipped over and not recovered by a resend (yet).
    lost: int = 0
    duplicates: int = 0
    reconnects: int = 0
    hello_mismatches: int = 0
    #: Reports the board's current boot gave up unacknowledged, as its last WINDOW said.
    board_dropped: int = 0


@dataclass(slots=True)
class _Tally:
    """The counters as they run (one addition per frame); :class:`LinkCounters` is the view."""

    frames: int = 0
    crc_errors: int = 0
    malformed: int = 0
    duplicates: int = 0
    reconnects: int = 0
    hello_mismatches: int = 0


class FrameNormaliser:
    def __init__(
        self,
        site: str,
        gateway: str,
        device: str,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.site = site
        self.gateway = gateway
        self.device = device
        self._clock = clock
        # The tracker stamps each new frame: unique, and in the board's order.
        self._sequence = SequenceTracker()
        self._tally = _Tally()
        #: Seat index -> presence last heard (SEAT_PRESENCE) since the board's HELLO.
        self._presence: dict[int, bool] = {}
        #: Told every new frame's (boot, seq, stamp) before its reading goes anywhere.
        self.on_stamp: Callable[[int | None, int, int], None] | None = None

    def restore(
        self, state: TrackerState | None, journal: Sequence[tuple[int | None, int, int]] = ()
    ) -> None:
        """Continue the board's numbering from what the outbox stored before a restart, and
        give resent frames the stamps in ``journal`` (``edge/stamp_journal.py``)."""
        self._sequence = SequenceTracker(state)
        if journal:
            self._sequence.plan(journal)

    @property
    def sequence_state(self) -> TrackerState:
        """The board's numbering as it stands, for the store to keep with the readings."""
        return self._sequence.state

    @property
    def board_dropped(self) -> int:
        """Reports the board's current boot gave up unacknowledged, as its last WINDOW said."""
        return self._sequence.board_dropped

    @property
    def counters(self) -> LinkCounters:
        return LinkCounters(
            **asdict(self._tally),
            lost=self._sequence.lost,
            board_dropped=self._sequence.board_dropped,
        )

    def on_error(self, error: FrameError) -> None:
        if error.kind == "crc":
            self._tally.crc_errors += 1
        else:
            self._tally.malformed += 1

    def on_reconnect(self) -> None:
        # Numbering goes on across a replugged cable: a board that rebooted says HELLO.
        self._tally.reconnects += 1

    def sensor_id(self, index: int) -> str:
        return f"{self.device}.{index}"

    def on_frame(self, frame: Frame) -> Reading | None:
        """The reading this frame carries, or None (duplicate, reply, or command echo)."""
        self._tally.frames += 1
        message = frame.message
        if isinstance(message, Hello):
            self._sequence.hello(message.boot, frame.seq)
            self._presence.clear()  # a new boot says each seat's presence again
        elif isinstance(message, Window):
            self._sequence.window_boot(message.boot)
        seq = frame.seq
        seen = self._sequence.observe(seq, micros(self._clock()))
        if seen.stamp_us is None:  # a repeat: stored already
            self._tally.duplicates += 1
            return None
        if self.on_stamp is not None:
            self.on_stamp(self._sequence.boot, seq, seen.stamp_us)
        now = from_micros(seen.stamp_us)
        if isinstance(message, Window):  # what the board still holds: no reading
            self._sequence.window(seq, message.held, message.dropped)
            return None
        base: dict[str, Any] = {  # typed per model by the calls below
            "site": self.site,
            "gateway": self.gateway,
            "device": self.device,
            "ts": now,
            "seq": frame.seq,
        }
        match message:
            case Seat(seat, occupied):
                return SeatReading(
                    sensor=self.sensor_id(seat),
                    occupied=occupied,
                    presence=self._presence.get(seat),
                    **base,
                )
            case SeatPresence(seat, occupied, present):
                self._presence[seat] = present
                return SeatReading(
                    sensor=self.sensor_id(seat), occupied=occupied, presence=present, **base
                )
            case People(counter, in_total, out_total):
                return PeopleReading(
                    sensor=self.sensor_id(counter), in_total=in_total, out_total=out_total, **base
                )
            case Door(door, is_open):
                return DoorReading(sensor=self.sensor_id(door), open=is_open, **base)
            case Heartbeat(uptime_s, supply_mv):
                return HeartbeatReading(
                    sensor=self.device, uptime_s=uptime_s, supply_mv=supply_mv, **base
                )
            case Fault(sensor, code, active):
                target_kind = _TARGET_KINDS[sensor.kind]
                return FaultReading(
                    sensor=f"{self.device}.{target_kind}.{sensor.index}",
                    code=code.name.lower(),
                    active=active,
                    target_kind=target_kind,
                    target=self.sensor_id(sensor.index),
                    **base,
                )
            case Hello(device_id, firmware, interval, sensors):
                if device_id != self.device:
                    self._tally.hello_mismatches += 1
                return DeviceReading(
                    sensor=self.device,
                    firmware=".".join(str(p) for p in firmware),
                    report_interval_s=interval,
                    sensors=tuple(f"{s.kind.name.lower()}.{s.index}" for s in sensors),
                    **base,
                )
        # Replies (ACK/NACK) and commands carry no reading.
        return None

    def link_reading(self, link: str) -> LinkReading:
        c = self.counters
        return LinkReading(
            site=self.site,
            gateway=self.gateway,
            device=self.device,
            sensor=link,
            ts=self._clock(),
            frames=c.frames,
            crc_errors=c.crc_errors,
            malformed=c.malformed,
            lost=c.lost,
            duplicates=c.duplicates,
            reconnects=c.reconnects,
            board_dropped=c.board_dropped,
        )
