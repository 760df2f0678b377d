"""The C firmware's host build (``firmware/build/host/qihe-board``) as a child process.

Shared by ``tests/test_firmware_board.py`` (the board alone on its pty) and
``tests/test_firmware_pipe.py`` (the board against the real gateway → Mosquitto → consumer →
InfluxDB). The board runs with ``--trace``: it logs every frame it writes and every chunk it
reads, so :class:`HostBoard` knows exactly what it produced and what it was told.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from firmware_bridge.codec import FrameDecoder
from firmware_bridge.messages import (
    Door,
    Fault,
    Frame,
    Heartbeat,
    Hello,
    Message,
    People,
    ReportAck,
    Seat,
)
from tests.firmware_build import firmware_build

__all__ = ["DEVICE", "REPORTS", "HostBoard", "Sent", "wait_for"]

DEVICE = "taoyuan-c"
#: Report types: held, resent, and turned into readings.
REPORTS = (Hello, Seat, People, Door, Heartbeat, Fault)
_TRACE = re.compile(r"^qihe-board \[[0-9.]+\]: (tx|rx)((?: [0-9A-F]{2})+)$")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


# -- the board process --------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One frame the board wrote: which boot (0 = the first), the frame, its exact bytes."""

    boot: int
    frame: Frame
    wire: bytes


class HostBoard:
    """``qihe-board`` as a child process: event lines on its stdin, its log in a file."""

    def __init__(
        self,
        folder: Path,
        *,
        seats: int = 4,
        interval: int = 60,
        retransmit: int = 500,
        boot: int = 1000,
        extra: Sequence[str] = (),
    ) -> None:
        self.binary = firmware_build("host")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "serial").mkdir(exist_ok=True)
        self.link = folder / "serial" / "usb-qihe_board-c-if00"
        self.log_path = folder / "board.log"
        self.args = [
            str(self.binary),
            *("--link", str(self.link), "--device", DEVICE, "--seats", str(seats)),
            *("--interval", str(interval), "--retransmit", str(retransmit)),
            *("--boot", str(boot), "--trace", *extra),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> HostBoard:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(lambda: "board started" in self.log(), 10, "the board to start")
        assert self.link.is_symlink()
        return self

    def drive(self, *lines: str) -> None:
        """Event lines to the board's stdin (they take effect in order, waits included)."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write("".join(f"{line}\n" for line in lines).encode())
        self.process.stdin.flush()

    def close_stdin(self) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int:
        """SIGTERM (the clean stop) and the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=10)
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        return code

    def log(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return self.log_path.read_text(errors="replace")
        return ""

    # -- what the trace says ---------------------------------------------------------------

    def _trace(self) -> tuple[list[bytes], bytes]:
        tx: list[bytes] = []
        rx = bytearray()
        for line in self.log().splitlines():
            match = _TRACE.match(line)
            if match is None:
                continue
            data = bytes.fromhex(match[2].replace(" ", ""))
            if match[1] == "tx":
                tx.append(data)  # the core writes one whole frame per call
            else:
                rx += data
        return tx, bytes(rx)

    def sent(self) -> list[Sent]:
        """Every frame the board wrote, resends included, in order."""
        out: list[Sent] = []
        boot, boot_number = -1, None
        for wire in self._trace()[0]:
            (frame,) = FrameDecoder().feed(wire)
            assert isinstance(frame, Frame), frame
            message = frame.message
            if isinstance(message, Hello) and message.boot != boot_number:
                boot, boot_number = boot + 1, message.boot
            out.append(Sent(boot, frame, wire))
        return out

    def produced(self, boot: int | None = None) -> list[Frame]:
        """Each report once, at its first sending, in order (of one boot: the last one)."""
        sent = self.sent()
        if boot is None:
            boot = sent[-1].boot if sent else 0
        seen: set[int] = set()
        out: list[Frame] = []
        for item in sent:
            fresh = item.frame.seq not in seen
            if item.boot == boot and isinstance(item.frame.message, REPORTS) and fresh:
                seen.add(item.frame.seq)
                out.append(item.frame)
        return out

    def resent(self) -> int:
        sent = [s for s in self.sent() if isinstance(s.frame.message, REPORTS)]
        return len(sent) - len({(s.boot, s.frame.seq) for s in sent})

    def received(self) -> list[Message]:
        """Every good frame the board read (the gateway's REPORT_ACKs, RESENDs, PINGs)."""
        return [f.message for f in FrameDecoder().feed(self._trace()[1]) if isinstance(f, Frame)]

    def last_ack(self) -> int | None:
        acks = [m.seq for m in self.received() if isinstance(m, ReportAck)]
        return acks[-1] if acks else None

    def statuses(self) -> list[dict[str, str]]:
        """The ``status`` lines the board logged, as field dicts."""
        out = []
        for line in self.log().splitlines():
            if "status: " in line:
                fields = line.split("status: ", 1)[1].split(", ")
                out.append(dict(field.rsplit(" ", 1) for field in fields if " " in field))
        return out
