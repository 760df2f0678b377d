"""The RS485 transport of the Modbus source: sends a request, returns its answer.

It only moves bytes: the codec (``modbus_rtu``) says what they are. The port is opened
off the event loop (pyserial-asyncio-fast opens it in an executor). Between requests the
line is left silent for an RTU frame gap, and whatever came late for an earlier request
is thrown away, so an answer is only ever matched to the request just sent.
"""

from __future__ import annotations

import asyncio
import time

import serial
import serial_asyncio_fast

from edge.errors import EdgeError
from edge.sources.modbus_config import ModbusDeviceConfig, ModbusPortConfig
from edge.sources.modbus_profiles import ModbusProfile, plan_reads
from edge.sources.modbus_rtu import (
    ExceptionReply,
    ReadRequest,
    Registers,
    decode_reply,
    encode_request,
    silence_error,
)

__all__ = ["ModbusBus", "ModbusPortError", "ModbusTimeoutError", "probe_device"]


class ModbusPortError(EdgeError, OSError):
    """The bus's port cannot be opened, or went away."""


class ModbusTimeoutError(EdgeError, TimeoutError):
    """The device did not answer within the port's timeout."""


def _gap(baudrate: int) -> float:
    # The silence that ends an RTU frame: 3.5 characters of 11 bits, and 1.75 ms above
    # 19,200 baud (Modbus over serial line §2.5.1.1).
    return 1.75e-3 if baudrate > 19200 else 3.5 * 11 / baudrate


class _Receiver(asyncio.Protocol):
    def __init__(self, closed: asyncio.Future[Exception | None]) -> None:
        self.buffer = bytearray()
        self.arrived = asyncio.Event()
        self._closed = closed

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(exc)
        self.arrived.set()


class ModbusBus:
    """One open RS485 port: sends a request, returns its answer. Moves bytes only; the
    codec (``modbus_rtu``) says what they are. Construct, then ``await open()``."""

    def __init__(self, port: ModbusPortConfig) -> None:
        self.port = port
        self._receiver: _Receiver | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._closed: asyncio.Future[Exception | None] | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[Exception | None] = loop.create_future()
        port = self.port
        try:
            transport, receiver = await serial_asyncio_fast.create_serial_connection(
                loop,
                lambda: _Receiver(closed),
                port.path,
                baudrate=port.baudrate,
                parity=port.parity,
                stopbits=port.stopbits,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ModbusPortError(f"cannot open RS485 port {port.path}: {exc}") from exc
        assert isinstance(receiver, _Receiver)
        self._transport, self._receiver, self._closed = transport, receiver, closed

    def _check_open(self) -> _Receiver:
        closed, receiver, transport = self._closed, self._receiver, self._transport
        if closed is None or receiver is None or transport is None:
            raise ModbusPortError(f"RS485 port {self.port.path} is not open")
        if closed.done() or transport.is_closing():
            exc = closed.result() if closed.done() else None
            raise ModbusPortError(f"RS485 port {self.port.path} went away: {exc or 'closed'}")
        return receiver

    async def transact(self, request: ReadRequest) -> Registers | ExceptionReply:
        """Send ``request``; its answer, or :class:`ModbusFrameError`,
        :class:`ModbusTimeoutError`, :class:`ModbusPortError`."""
        receiver = self._check_open()
        await asyncio.sleep(_gap(self.port.baudrate))
        receiver.buffer.clear()  # a late answer to an earlier request is no answer to this one
        receiver.arrived.clear()
        assert isinstance(self._transport, asyncio.WriteTransport)
        self._transport.write(encode_request(request))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.port.timeout.total_seconds()
        while True:
            answer = decode_reply(request, bytes(receiver.buffer))
            if answer is not None:
                return answer
            self._check_open()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            receiver.arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await receiver.arrived.wait()
            except TimeoutError:
                break
        error = silence_error(request, bytes(receiver.buffer))
        if error is not None:
            raise error
        raise ModbusTimeoutError(f"unit {request.unit}: no answer on {self.port.path}")

    async def wait_closed(self) -> None:
        if self._closed is not None:
            await asyncio.shield(self._closed)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def probe_device(
    port: ModbusPortConfig, device: ModbusDeviceConfig, profile: ModbusProfile
) -> Registers | ExceptionReply:
    """Ask ``device`` for its first planned read, blocking (``qihe gateway doctor``).

    Raises :class:`ModbusPortError`, :class:`ModbusTimeoutError` or
    :class:`ModbusFrameError`.
    """
    request = plan_reads(profile.registers)[0].request(device.unit)
    timeout = port.timeout.total_seconds()
    try:
        with serial.Serial(
            port.path,
            baudrate=port.baudrate,
            parity=port.parity,
            stopbits=port.stopbits,
            timeout=0.02,
            exclusive=True,
        ) as line:
            line.reset_input_buffer()
            line.write(encode_request(request))
            received = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                received += line.read(256)
                answer = decode_reply(request, received)
                if answer is not None:
                    return answer
    except (serial.SerialException, OSError, ValueError) as exc:
        raise ModbusPortError(f"cannot use RS485 port {port.path}: {exc}") from exc
    error = silence_error(request, received)
    if error is not None:
        raise error
    raise ModbusTimeoutError(f"unit {device.unit}: no answer in {timeout:.1f}s")
