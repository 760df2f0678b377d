"""The gateway's own host: disk, memory and CPU, read for the periodic ``system`` reading.

A Raspberry Pi in a book house fails in a few dull ways: the SD card fills up, memory
runs out, the CPU overheats in a closed cabinet. :class:`HostProbe` reads what an alert
needs to see those coming, from the kernel's own files:

- disk: ``os.statvfs`` of the gateway's ``state_dir`` (the SD card, where the outbox lives);
- memory: ``MemAvailable`` and ``MemTotal`` of ``/proc/meminfo``;
- CPU temperature: ``/sys/class/thermal/thermal_zone0/temp`` (millidegrees Celsius);
- load: the 1-minute average of ``/proc/loadavg``;
- under-voltage and throttling: the Raspberry Pi firmware's bit mask in
  ``/sys/devices/platform/soc/soc:firmware/get_throttled`` (hex, as ``vcgencmd get_throttled``
  shows it; absent off a Pi);
- uptime: the host's from ``/proc/uptime``, the gateway's from when the probe was made.

Reading blocks (a dying SD card can stall ``statvfs``): callers run :meth:`SystemProbe.read`
off the event loop.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edge.errors import EdgeError

__all__ = ["HostProbe", "SystemProbe", "SystemProbeError", "SystemSnapshot", "parse_throttled"]

log = logging.getLogger(__name__)

#: Where the Pi's firmware driver (``raspberrypi-firmware``) shows its throttling mask.
THROTTLED_FILE = Path("devices/platform/soc/soc:firmware/get_throttled")
#: The firmware's mask is a 32-bit word (bits 0-3 "now", 16-19 "has occurred"): 8 hex digits.
_HEX = re.compile(r"(?:0[xX])?[0-9A-Fa-f]{1,8}")


class SystemProbeError(EdgeError, OSError):
    """The host's disk, memory or load could not be read (a file missing or not as expected)."""


@dataclass(frozen=True, slots=True)
class SystemSnapshot:
    """One look at the host; ``cpu_temp_c`` is None where there is no readable thermal zone,
    ``throttled`` off a Raspberry Pi (no firmware file), the uptimes where unreadable."""

    disk_free_bytes: int
    disk_total_bytes: int
    mem_available_bytes: int
    mem_total_bytes: int
    cpu_temp_c: float | None
    load_1m: float
    throttled: int | None = None
    host_uptime_s: int | None = None
    process_uptime_s: int | None = None


class SystemProbe(Protocol):
    def read(self) -> SystemSnapshot:
        """Look at the host now; raise :class:`SystemProbeError` if it cannot be read."""
        ...


class HostProbe:
    """Reads this Linux machine. ``proc`` and ``sys`` point elsewhere in tests, ``monotonic``
    too; the gateway's uptime counts from the probe's making (the gateway's start)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        proc: Path = Path("/proc"),
        sys: Path = Path("/sys"),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state_dir = state_dir
        self._meminfo = proc / "meminfo"
        self._loadavg = proc / "loadavg"
        self._uptime = proc / "uptime"
        self._thermal = sys / "class" / "thermal" / "thermal_zone0" / "temp"
        self._throttled_file = sys / THROTTLED_FILE
        self._monotonic = monotonic
        self._started = monotonic()
        self._throttled_garbled = False

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
            throttled=self._throttled(),
            host_uptime_s=self._host_uptime(),
            process_uptime_s=max(0, int(self._monotonic() - self._started)),
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

    def _throttled(self) -> int | None:
        # Optional like the temperature: no such file off a Pi (or with an old kernel).
        try:
            text = self._throttled_file.read_text(encoding="ascii")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self._garbled_throttled(f"cannot read {self._throttled_file}: {exc}")
            return None
        try:
            mask = parse_throttled(text)
        except ValueError as exc:
            self._garbled_throttled(f"{self._throttled_file}: {exc}")
            return None
        self._throttled_garbled = False
        return mask

    def _garbled_throttled(self, why: str) -> None:
        if not self._throttled_garbled:  # once per stretch, not every report
            log.warning("供电/降频状态无法读取 throttling state not reported: %s", why)
            self._throttled_garbled = True

    def _host_uptime(self) -> int | None:
        try:
            seconds = float(self._uptime.read_text(encoding="ascii").split()[0])
        except (OSError, UnicodeDecodeError, IndexError, ValueError):
            return None
        return int(seconds) if math.isfinite(seconds) and seconds >= 0 else None


def parse_throttled(text: str) -> int:
    """The firmware's throttling mask from its sysfs text (``"50005\\n"``; ``vcgencmd``'s
    ``0x50005`` also taken); raise :class:`ValueError` for anything else.

    Bits (Raspberry Pi documentation, ``vcgencmd get_throttled``): 0 under-voltage, 1 ARM
    frequency capped, 2 throttled, 3 soft temperature limit — now; 16-19 the same, has
    occurred since boot.
    """
    value = text.strip()
    if not _HEX.fullmatch(value):
        raise ValueError(f"not a hexadecimal throttling mask: {value[:40]!r}")
    return int(value, 16)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemProbeError(f"cannot read {path}: {exc}") from exc
