"""Where the emulated board is plugged in: a pty pair, or a real serial device.

:class:`PtyPort` plays a USB serial adapter. The emulator holds the master side;
the gateway opens :attr:`PtyPort.path` (the slave) like ``/dev/ttyUSB0``, or the
stable symlink :attr:`PtyPort.link` like ``/dev/serial/by-id/…``. The emulator
also keeps the slave open itself: otherwise the master reads EIO while no one
has the slave open and bytes written before the gateway opens it are lost.

Bytes written before the gateway opens the port wait in the kernel buffer
(about 20 KB); pyserial flushes that buffer when it opens a port, as with a
real adapter. :meth:`PtyPort.close` is "unplug": the gateway's reads then
return EOF or fail with EIO and the symlink disappears, as udev removes it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import tty
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from firmware_bridge.errors import SerialLinkError

__all__ = ["Port", "PtyPort", "SerialDevicePort"]


class Port(Protocol):
    """A byte pipe the emulator can plug into, unplug and plug in again."""

    @property
    def name(self) -> str:
        """What to tell a person: the path a gateway should open."""
        ...

    @property
    def is_open(self) -> bool: ...

    @property
    def fd(self) -> int:
        """The emulator's end; non-blocking reads and writes move the bytes."""
        ...

    async def open(self) -> None: ...

    def close(self) -> None: ...


class _PortContext:
    async def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PtyPort(_PortContext):
    """A pseudo-terminal pair; ``link`` (optional) is kept pointing at the current slave."""

    def __init__(self, link: str | Path | None = None) -> None:
        self.link = Path(link) if link is not None else None
        self._master: int | None = None
        self._slave: int | None = None
        self._path: str | None = None
        self.opened = 0  # how many times a pair was created ("plugged in")

    @property
    def is_open(self) -> bool:
        return self._master is not None

    @property
    def path(self) -> str:
        """The slave device of the current (or last) pair, e.g. ``/dev/pts/5``."""
        if self._path is None:
            raise SerialLinkError("pty port was never opened")
        return self._path

    @property
    def name(self) -> str:
        return str(self.link) if self.link is not None else self.path

    @property
    def fd(self) -> int:
        if self._master is None:
            raise SerialLinkError(f"pty port {self._path or '(new)'} is closed")
        return self._master

    async def open(self) -> None:
        self.open_now()

    def open_now(self) -> None:
        """Create a fresh pair (the syscalls do not block) and point the link at it."""
        if self._master is not None:
            return
        if self.link is not None and self.link.exists() and not self.link.is_symlink():
            raise SerialLinkError(f"{self.link} exists and is not a symlink; not replacing it")
        master, slave = os.openpty()
        try:
            tty.setraw(slave)
            path = os.ttyname(slave)
            os.set_blocking(master, False)
            if self.link is not None:
                _point(self.link, path)
        except OSError as exc:
            os.close(master)
            os.close(slave)
            raise SerialLinkError(f"cannot set up pty: {exc}") from exc
        self._master, self._slave, self._path = master, slave, path
        self.opened += 1

    def close(self) -> None:
        """Unplug: close both ends and remove the link."""
        if self._master is None:
            return
        if (
            self.link is not None
            and self.link.is_symlink()
            and os.readlink(self.link) == self._path
        ):
            self.link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None


def _point(link: Path, target: str) -> None:
    """Make ``link`` a symlink to ``target`` atomically (a reader never sees it missing)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


class SerialDevicePort(_PortContext):
    """A real serial device (e.g. a USB adapter wired to a gateway's UART), opened with pyserial."""

    def __init__(self, path: str, *, baudrate: int = 115200) -> None:
        self.path = path
        self.baudrate = baudrate
        self._serial: Any = None

    @property
    def name(self) -> str:
        return self.path

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    @property
    def fd(self) -> int:
        if self._serial is None:
            raise SerialLinkError(f"serial port {self.path} is closed")
        fd: int = self._serial.fileno()
        return fd

    async def open(self) -> None:
        if self._serial is not None:
            return
        import serial  # pyserial; imported here so pty-only use never needs it

        make = functools.partial(serial.Serial, self.path, self.baudrate, timeout=0)
        try:
            # Opening can block on some adapters; keep it off the event loop.
            self._serial = await asyncio.get_running_loop().run_in_executor(None, make)
        except (serial.SerialException, OSError) as exc:
            raise SerialLinkError(f"cannot open serial port {self.path}: {exc}") from exc

    def close(self) -> None:
        if self._serial is not None:
            self._serial.close()
            self._serial = None
