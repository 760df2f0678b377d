"""The serial transport: moves bytes between a port and the sans-IO codec, nothing else.

The port is opened off the event loop (pyserial-asyncio-fast runs pyserial's
open in an executor). Decoded frames and decode errors go to a callback in the
order they arrived; :meth:`SerialLink.wait_closed` returns when the port is
gone (an unplugged USB adapter, a closed pty) with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import serial
import serial_asyncio_fast

from firmware_bridge.codec import FrameDecoder, encode
from firmware_bridge.errors import FrameError, SerialLinkError
from firmware_bridge.messages import Frame

__all__ = ["SerialLink"]

log = logging.getLogger(__name__)

FrameHandler = Callable[[Frame | FrameError], None]


class _FrameProtocol(asyncio.Protocol):
    def __init__(self, handler: FrameHandler, closed: asyncio.Future[Exception | None]) -> None:
        self._decoder = FrameDecoder()
        self._handler = handler
        self._closed = closed
        self.bytes_received = 0

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        for event in self._decoder.feed(data):
            self._handler(event)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(exc)


class SerialLink:
    """One open serial port speaking the qihe protocol. Construct, then ``await open()``."""

    def __init__(self, path: str, handler: FrameHandler, *, baudrate: int = 115200) -> None:
        self.path = path
        self.baudrate = baudrate
        self._handler = handler
        self._transport: asyncio.BaseTransport | None = None
        self._protocol: _FrameProtocol | None = None
        self._closed: asyncio.Future[Exception | None] | None = None

    @property
    def bytes_received(self) -> int:
        return self._protocol.bytes_received if self._protocol else 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[Exception | None] = loop.create_future()
        try:
            transport, protocol = await serial_asyncio_fast.create_serial_connection(
                loop,
                lambda: _FrameProtocol(self._handler, closed),
                self.path,
                baudrate=self.baudrate,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise SerialLinkError(f"cannot open serial port {self.path}: {exc}") from exc
        assert isinstance(protocol, _FrameProtocol)
        self._transport, self._protocol, self._closed = transport, protocol, closed

    async def wait_closed(self) -> None:
        """Return when the port closed; raise :class:`SerialLinkError` if it failed."""
        if self._closed is None:
            raise SerialLinkError(f"serial port {self.path} is not open")
        exc = await asyncio.shield(self._closed)
        if exc is not None:
            raise SerialLinkError(f"serial port {self.path} failed: {exc}") from exc
        raise SerialLinkError(f"serial port {self.path} closed")

    def send(self, frame: Frame) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise SerialLinkError(f"serial port {self.path} is not open")
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(encode(frame))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
