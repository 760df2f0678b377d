"""The gateway's own host: disk, memory and CPU, read for the periodic ``system`` reading.

A Raspberry Pi in a book house fails in a few dull ways: the SD card fills up, memory
runs out, the CPU overheats in a closed cabinet. :class:`HostProbe` reads what an alert
needs to see those coming, from the kernel's own files:

- disk: ``os.statvfs`` of the gateway's ``state_dir`` (the SD card, where the outbox lives);
- memory: ``MemAvailable`` and ``MemTotal`` of ``/proc/meminfo``;
- CPU temperature: ``/sys/class/thermal/thermal_zone0/temp`` (millidegrees Celsius);
- load: the 1-minute average of ``/proc/loadavg``.

Reading blocks (a dying SD card can stall ``statvfs``): callers run :meth:`SystemProbe.read`
off the event loop.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edge.errors import EdgeError

__all__ = ["HostProbe", "SystemProbe", "SystemProbeError", "SystemSnapshot"]


class SystemProbeError(EdgeError, OSError):
    """The host's disk, memory or load could not be read (a file missing or not as expected)."""


@dataclass(frozen=True, slots=True)
class SystemSnapshot:
    """One look at the host; ``cpu_temp_c`` is None where there is no readable thermal zone."""

    disk_free_bytes: int
    disk_total_bytes: int
    mem_available_bytes: int
    mem_total_bytes: int
    cpu_temp_c: float | None
    load_1m: float


class SystemProbe(Protocol):
    def read(self) -> SystemSnapshot:
        """Look at the host now; raise :class:`SystemProbeError` if it cannot be read."""
        ...


class HostProbe:
    """Reads this Linux machine. ``proc`` and ``sys`` point elsewhere in tests."""

    def __init__(
        self, state_dir: Path, *, proc: Path = Path("/proc"), sys: Path = Path("/sys")
    ) -> None:
        self._state_dir = state_dir
        self._meminfo = proc / "meminfo"
        self._loadavg = proc / "loadavg"
        self._thermal = sys / "class" / "thermal" / "thermal_zone0" / "temp"

    def read(self) -> SystemSnapshot:
        disk_free, disk_total = self._disk()
        mem_available, mem_total = self._memory()
        return SystemSnapshot(
            disk_free_bytes=disk_free,
            disk_total_bytes=disk_total,
            mem_available_bytes=mem_available,
            mem_total_bytes=mem_total,
            cpu_temp_c=self._cpu_temp(),
            load_1m=self._load(),
        )

    def _disk(self) -> tuple[int, int]:
        try:
            st = os.statvfs(self._state_dir)
        except OSError as exc:
            where = self._state_dir
            raise SystemProbeError(f"cannot stat the filesystem of {where}: {exc}") from exc
        # f_bavail, not f_bfree: the blocks reserved for root are no use to the gateway.
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize

    def _memory(self) -> tuple[int, int]:
        values: dict[str, int] = {}
        for line in _read_text(self._meminfo).splitlines():
            name, _, rest = line.partition(":")
            if name in ("MemAvailable", "MemTotal"):
                number, _, unit = rest.strip().partition(" ")
                if not number.isdigit() or unit != "kB":
                    raise SystemProbeError(f"{self._meminfo}: cannot read {line.strip()!r}")
                values[name] = int(number) * 1024  # the kernel's "kB" are KiB
        missing = {"MemAvailable", "MemTotal"} - values.keys()
        if missing:
            raise SystemProbeError(f"{self._meminfo}: no {' or '.join(sorted(missing))} line")
        return values["MemAvailable"], values["MemTotal"]

    def _load(self) -> float:
        text = _read_text(self._loadavg)
        try:
            load = float(text.split()[0])
        except (IndexError, ValueError):
            load = math.nan
        if not (math.isfinite(load) and load >= 0):
            raise SystemProbeError(f"{self._loadavg}: cannot read {text.strip()[:40]!r}")
        return load

    def _cpu_temp(self) -> float | None:
        # Optional by nature: most machines other than a Pi have no thermal_zone0, and some
        # drivers fail a read now and then (EAGAIN, ENODATA). Disk and memory still count.
        try:
            millidegrees = int(self._thermal.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None
        # Below 0 °C is not a CPU in a heated building, it is a driver's error value.
        return millidegrees / 1000 if millidegrees >= 0 else None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemProbeError(f"cannot read {path}: {exc}") from exc
