"""What the benchmarks share: child processes, figures from ``/proc``, medians, result rows.

Every scenario (``bench/<name>.py``, or a package) measures one thing and can run alone
(``python -m bench.<name> --runs 3 --json out.json``); the suite (``python -m bench``,
``qihe bench``) runs them one after another and prints one table. A scenario reports
:class:`Row` values: a figure (the median of its runs), and where the figure has a natural
limit on this machine, that limit measured in the same run and the ratio between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

__all__ = [
    "INTERRUPTED",
    "Child",
    "NotifySocket",
    "ProcFigures",
    "Row",
    "Target",
    "kill_leftovers",
    "machine",
    "median",
    "percentile",
    "proc_figures",
    "read_rows",
    "run_in_folder",
    "site_entry",
    "write_rows",
]

_T = TypeVar("_T")

#: Children started by :class:`Child`, killed by :func:`kill_leftovers` if a run dies.
_CHILDREN: set[int] = set()


# Figures --------------------------------------------------------------------------


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def percentile(values: Sequence[float], q: int) -> float | None:
    """The ``q``-th percentile (1–99), interpolated between the nearest samples."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass(frozen=True, slots=True)
class Target:
    """What the issue asks of a figure: ``ratio >= 0.8``, ``value <= 5`` …"""

    of: Literal["ratio", "value"]
    op: Literal[">=", "<="]
    threshold: float

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        subject = ratio if self.of == "ratio" else value
        if subject is None:
            return None
        return subject >= self.threshold if self.op == ">=" else subject <= self.threshold

    def __str__(self) -> str:
        return f"{self.of} {self.op} {self.threshold:g}"


@dataclass(slots=True)
class Row:
    """One line of the suite's table."""

    scenario: str
    metric: str
    value: float | None
    unit: str
    #: The figure's natural limit, measured in the same run (e.g. a bare paho client).
    limit: float | None = None
    limit_label: str = ""
    target: Target | None = None
    #: Every run's figure (value is their median).
    runs: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.limit:
            return None
        return self.value / self.limit

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.value, self.ratio)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = None if self.target is None else asdict(self.target)
        data["ratio"] = self.ratio
        data["met"] = self.met
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        target = data.get("target")
        return cls(
            scenario=data["scenario"],
            metric=data["metric"],
            value=data["value"],
            unit=data["unit"],
            limit=data.get("limit"),
            limit_label=data.get("limit_label", ""),
            target=None if target is None else Target(**target),
            runs=list(data.get("runs", [])),
            note=data.get("note", ""),
        )


def write_rows(path: Path, rows: Sequence[Row], **extra: Any) -> None:
    payload = {"machine": machine(), "rows": [r.to_json() for r in rows], **extra}
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def read_rows(path: Path) -> list[Row]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [Row.from_json(r) for r in data["rows"]]


# Site directories ------------------------------------------------------------------------


def site_entry(site: str, gateway: str, boards: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """A site of a generated directory (``config/sites.yaml``'s shape) for the live service:
    open day and night, each board's seats a grid of eight columns under the previous one's."""
    grids, row = [], 1
    for device, count in boards:
        grids.append(
            {"gateway": gateway, "device": device, "count": count, "cols": 8, "first_row": row}
        )
        row += -(-count // 8)
    return {
        "id": site,
        "name": f"淇河书屋·{site}",
        "opening_hours": {"daily": "00:00-24:00"},
        "seat_grids": grids,
    }


# /proc ------------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcFigures:
    """CPU seconds used (user + system), peak and current resident memory, bytes written."""

    cpu_s: float
    vm_hwm_bytes: int
    vm_rss_bytes: int
    write_bytes: int


def proc_figures(pid: int | str = "self") -> ProcFigures:
    """Read a process's figures from ``/proc`` (``pid`` or ``"self"``)."""
    base = Path("/proc") / str(pid)
    stat = (base / "stat").read_text()
    # Fields after the command name (which may hold spaces) start at ") ".
    after = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(after[11]) + int(after[12])) / _CLOCK_TICKS  # utime, stime
    hwm = rss = 0
    for line in (base / "status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    written = 0
    with contextlib.suppress(OSError):
        for line in (base / "io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                written = int(line.split()[1])
    return ProcFigures(cpu, hwm, rss, written)


# Child processes ----------------------------------------------------------------------


class Child:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, *, pipes: bool = False, env: dict[str, str] | None = None) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log,
                stderr=log,
                env=env,
                # Our own session: a Ctrl-C reaches only us, and we stop children in order.
                start_new_session=True,
            )
        _CHILDREN.add(self.process.pid)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def wait_line(self, expected: str) -> None:
        assert self.process is not None and self.process.stdout is not None
        line = await self.process.stdout.readline()
        if line.decode().strip() != expected:
            raise RuntimeError(f"{self.name} did not start; see {self.log}:\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        _CHILDREN.discard(process.pid)


#: What a scenario says when Ctrl-C or SIGTERM ended it (exit code 130).
INTERRUPTED = "interrupted; every child process was stopped"


def run_in_folder(
    run: Callable[[Path], Coroutine[Any, Any, _T]], keep: Path | None, *, prefix: str
) -> _T:
    """Run a scenario's coroutine with its servers' folders under ``keep`` (made if missing)
    or in a temporary folder removed after. SIGTERM stops it as Ctrl-C does (raising
    :class:`KeyboardInterrupt`), and every child process it started is killed whatever happens.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with contextlib.ExitStack() as cleanup:
            if keep is not None:
                folder = keep.resolve()
                folder.mkdir(parents=True, exist_ok=True)
            else:
                folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
            return asyncio.run(run(folder))
    finally:
        kill_leftovers()


def kill_leftovers() -> None:
    for pid in list(_CHILDREN):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _CHILDREN.discard(pid)


class NotifySocket:
    """systemd's end of sd_notify (an abstract socket): takes a service's pings and drops them.

    Give a child ``NOTIFY_SOCKET=<address>`` and ``WATCHDOG_USEC`` and it runs its watchdog
    as under a ``Type=notify`` unit. :meth:`start` reads on the running event loop.
    """

    def __init__(self, name: str) -> None:
        self.address = f"@{name}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        self._sock.bind(b"\0" + name.encode())

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._read)

    def _read(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._sock.recv(4096):
                pass

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, ValueError):
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()


# The machine -------------------------------------------------------------------------


def machine() -> dict[str, object]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mosquitto = "unknown"
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=5).stdout
        mosquitto = out.splitlines()[0].removeprefix("mosquitto version ").strip()
    influxd = "unknown"
    binary = shutil.which("influxd") or "/usr/bin/influxd"
    with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
        out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=5).stdout
        influxd = out.split()[1]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "mosquitto": mosquitto,
        "influxdb": influxd,
        "platform": platform.platform(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
