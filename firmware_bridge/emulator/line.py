"""The board's serial line: frames out to a non-blocking file descriptor, bytes in.

Never blocks the event loop. When the port does not take bytes (nobody reads
the other end of a pty and the kernel buffer is full), frames wait in a bounded
queue; when that is full, new frames are dropped and counted (``overflow``). A
frame enters the :attr:`Line.journal` only once its last byte was accepted by
the port — that is what "on the wire" means here. Frames that never got there
(silent board, unplugged port, overflow) go to :attr:`Line.dropped` instead.
Both mark a board's retransmission of a held report as ``resent``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from firmware_bridge.codec import encode
from firmware_bridge.emulator.noise import LineNoise
from firmware_bridge.messages import Frame

__all__ = [
    "DroppedFrame",
    "JournalEntry",
    "Line",
]

log = logging.getLogger(__name__)

DropReason = Literal["silent", "unplugged", "overflow"]
_READ_SIZE = 4096


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A frame that went onto the wire, in wire order."""

    frame: Frame
    #: Line noise destroyed this frame on purpose; a receiver cannot have decoded it.
    corrupted: bool
    #: Simulated time when the board sent it.
    sim_time: datetime
    #: Wall-clock time (UTC) when its last byte was accepted by the port.
    sent_at: datetime
    #: Sent again by the board's retransmit timer (the same frame, same seq, as before),
    #: whether or not an earlier attempt reached the wire.
    resent: bool = False


@dataclass(frozen=True, slots=True)
class DroppedFrame:
    """A frame the board produced that never reached the wire."""

    frame: Frame
    reason: DropReason
    sim_time: datetime
    #: The attempt was a retransmission (see :attr:`JournalEntry.resent`).
    resent: bool = False


@dataclass(slots=True)
class LineCounters:
    sent: int = 0
    corrupted: int = 0
    dropped: dict[str, int] = field(
        default_factory=lambda: {"silent": 0, "unplugged": 0, "overflow": 0}
    )
    bytes_out: int = 0
    bytes_in: int = 0
    failures: int = 0


@dataclass(slots=True)
class _Pending:
    frame: Frame
    data: bytes
    corrupted: bool
    sim_time: datetime
    resent: bool
    offset: int = 0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Line:
    """Moves frames onto one file descriptor at a time; :meth:`connect` / :meth:`disconnect`."""

    def __init__(
        self,
        noise: LineNoise,
        *,
        max_pending: int = 256,
        journal_limit: int | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.noise = noise
        self.silent = False
        self.counters = LineCounters()
        self.journal: list[JournalEntry] = []
        self.dropped: list[DroppedFrame] = []
        #: Called with every journal entry as it is recorded.
        self.on_record: Callable[[JournalEntry], None] | None = None
        self._max_pending = max_pending
        self._journal_limit = journal_limit
        self._clock = clock
        self._pending: deque[_Pending] = deque()
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer_armed = False
        self._on_data: Callable[[bytes], None] | None = None
        self._on_failure: Callable[[OSError], None] | None = None

    @property
    def connected(self) -> bool:
        return self._fd is not None

    @property
    def pending(self) -> int:
        """Frames accepted but not yet fully written."""
        return len(self._pending)

    def connect(
        self,
        fd: int,
        on_data: Callable[[bytes], None],
        on_failure: Callable[[OSError], None] | None = None,
    ) -> None:
        """Start moving bytes on ``fd`` (non-blocking); call ``on_data`` with what arrives."""
        if self._fd is not None:
            raise RuntimeError("line is already connected")
        os.set_blocking(fd, False)
        self._loop = asyncio.get_running_loop()
        self._fd = fd
        self._on_data = on_data
        self._on_failure = on_failure
        self._loop.add_reader(fd, self._on_readable)

    def disconnect(self) -> None:
        """Stop using the fd (the caller closes it). Frames not fully written are dropped."""
        if self._fd is None or self._loop is None:
            return
        self._loop.remove_reader(self._fd)
        self._disarm_writer()
        self._fd = None
        while self._pending:
            item = self._pending.popleft()
            self._drop(item.frame, "unplugged", item.sim_time, item.resent)

    def send(self, frame: Frame, sim_time: datetime, *, resent: bool = False) -> None:
        """Put ``frame`` on the line, or drop it with a reason; never blocks."""
        if self.silent:
            self._drop(frame, "silent", sim_time, resent)
        elif self._fd is None:
            self._drop(frame, "unplugged", sim_time, resent)
        elif len(self._pending) >= self._max_pending:
            self._drop(frame, "overflow", sim_time, resent)
        else:
            data, corrupted = self.noise.apply(encode(frame))
            self._pending.append(_Pending(frame, data, corrupted, sim_time, resent))
            if not self._writer_armed:
                self._flush()

    def _drop(self, frame: Frame, reason: DropReason, sim_time: datetime, resent: bool) -> None:
        self.counters.dropped[reason] += 1
        if reason == "overflow" and self.counters.dropped[reason] == 1:
            log.warning("serial line is not draining; dropping frames (counted as overflow)")
        self.dropped.append(DroppedFrame(frame, reason, sim_time, resent))
        self._trim(self.dropped)

    def _trim(self, entries: list[JournalEntry] | list[DroppedFrame]) -> None:
        limit = self._journal_limit
        if limit is not None and len(entries) > limit:
            del entries[: len(entries) - limit // 2]

    def _flush(self) -> None:
        fd = self._fd
        while self._pending and fd is not None:
            head = self._pending[0]
            try:
                written = os.write(fd, head.data[head.offset :])
            except BlockingIOError:
                written = 0
            except OSError as exc:
                self._fail(exc)
                return
            head.offset += written
            self.counters.bytes_out += written
            if head.offset < len(head.data):
                self._arm_writer()
                return
            self._pending.popleft()
            self._record(head)
        self._disarm_writer()

    def _record(self, done: _Pending) -> None:
        self.counters.sent += 1
        self.counters.corrupted += done.corrupted
        entry = JournalEntry(done.frame, done.corrupted, done.sim_time, self._clock(), done.resent)
        self.journal.append(entry)
        self._trim(self.journal)
        if self.on_record is not None:
            self.on_record(entry)

    def _arm_writer(self) -> None:
        if not self._writer_armed and self._loop is not None and self._fd is not None:
            self._loop.add_writer(self._fd, self._flush)
            self._writer_armed = True

    def _disarm_writer(self) -> None:
        if self._writer_armed and self._loop is not None and self._fd is not None:
            self._loop.remove_writer(self._fd)
        self._writer_armed = False

    def _on_readable(self) -> None:
        if self._fd is None or self._on_data is None:
            return
        try:
            data = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(exc)
            return
        if not data:  # a vanished device; a pty master never reads EOF while we hold the slave
            self._fail(OSError(errno.EIO, "end of file on the serial port"))
            return
        self.counters.bytes_in += len(data)
        self._on_data(data)

    def _fail(self, exc: OSError) -> None:
        self.counters.failures += 1
        name = errno.errorcode.get(exc.errno or 0, "?")
        log.warning("serial line failed (%s: %s); frames are dropped until reconnected", name, exc)
        on_failure = self._on_failure
        self.disconnect()
        if on_failure is not None:
            on_failure(exc)
