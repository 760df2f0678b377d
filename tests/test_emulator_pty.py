"""The emulator on real pty pairs: what a gateway opening the slave side sees."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import tty
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest
import serial_asyncio_fast

from firmware_bridge.codec import FrameDecoder, encode
from firmware_bridge.emulator import (
    SHANGHAI,
    BookHouseEmulator,
    EmulatorConfig,
    PtyPort,
    SerialDevicePort,
)
from firmware_bridge.errors import FrameError
from firmware_bridge.messages import (
    Ack,
    Fault,
    FaultCode,
    Frame,
    Heartbeat,
    Hello,
    Message,
    People,
    Ping,
    Reboot,
    Seat,
    SensorKind,
    SensorRef,
)
from qihe_cli.main import main

SATURDAY_AFTERNOON = datetime(2024, 6, 8, 14, 0, tzinfo=SHANGHAI)


class Gateway:
    """The gateway's end for tests: opens the slave path like a serial device, decodes frames."""

    def __init__(self, path: str | Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.frames: list[Frame] = []
        self.errors: list[FrameError] = []
        self.hung_up = False
        self._decoder = FrameDecoder()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            assert exc.errno == errno.EIO
            data = b""
        if not data:  # the adapter was pulled out
            self.hung_up = True
            self._loop.remove_reader(self.fd)
            return
        for item in self._decoder.feed(data):
            if isinstance(item, Frame):
                self.frames.append(item)
            else:
                self.errors.append(item)

    @property
    def messages(self) -> list[Message]:
        return [frame.message for frame in self.frames]

    def send(self, frame: Frame) -> None:
        os.write(self.fd, encode(frame))

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 3.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.hung_up:
            self._loop.remove_reader(self.fd)
        os.close(self.fd)


def _scripted(**overrides: object) -> BookHouseEmulator:
    fields: dict[str, object] = {
        "seats": 4,
        "simulate": False,
        "report_interval_s": 3600,
        "start": SATURDAY_AFTERNOON,
        "supply_mv": 4000,
    }
    fields.update(overrides)
    return BookHouseEmulator(EmulatorConfig.model_validate(fields))


def _journal_frames(emu: BookHouseEmulator) -> list[Frame]:
    return [entry.frame for entry in emu.journal if not entry.corrupted]


async def test_ping_over_a_pty_is_acked_with_its_sequence_number() -> None:
    emu = _scripted()
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            async with emu.attach(port):
                await gw.wait_for(lambda: People(1, 0, 0) in gw.messages)
                gw.send(Frame(seq=900, message=Ping()))
                await gw.wait_for(lambda: Ack(900) in gw.messages)

    assert isinstance(gw.messages[0], Hello)
    assert gw.frames[-1] == Frame(seq=len(gw.frames) - 1, message=Ack(900))


async def test_reboot_over_a_pty_restarts_seq_and_counter_totals() -> None:
    emu = _scripted()
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            async with emu.attach(port):
                emu.count_people(entered=3, left=1)
                await gw.wait_for(lambda: People(1, 3, 1) in gw.messages)
                gw.send(Frame(seq=17, message=Reboot()))
                await gw.wait_for(lambda: gw.messages.count(People(1, 0, 0)) == 2)

    ack = gw.messages.index(Ack(17))
    hello = gw.frames[ack + 1]
    assert isinstance(hello.message, Hello)
    assert hello.seq == 0
    assert emu.state.house.in_total == emu.state.house.out_total == 0
    assert emu.state.house.inside == 2


async def test_a_manual_seat_change_is_on_the_wire_at_once() -> None:
    emu = _scripted()
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            async with emu.attach(port):
                await gw.wait_for(lambda: len(gw.frames) == 8)
                emu.set_seat(2, True)
                await gw.wait_for(lambda: len(gw.frames) == 9, timeout=0.5)

    assert gw.frames[-1] == Frame(seq=8, message=Seat(2, True))
    assert emu.state.house.seats == (False, True, False, False)


async def test_the_journal_is_exactly_what_the_gateway_decoded() -> None:
    emu = BookHouseEmulator(EmulatorConfig(seats=24, speed=3600, seed=11, start=SATURDAY_AFTERNOON))
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            async with emu.attach(port):
                await asyncio.sleep(1.0)  # an hour of a busy Saturday afternoon
            await gw.wait_for(lambda: len(gw.frames) == len(emu.journal))

    kinds = {type(message) for message in gw.messages}
    assert {Hello, Seat, People, Heartbeat} <= kinds
    assert gw.frames == _journal_frames(emu)
    assert gw.errors == []
    assert emu.dropped == []


async def test_noise_destroys_only_the_frames_the_journal_marks() -> None:
    emu = BookHouseEmulator(
        EmulatorConfig(seats=24, speed=3600, seed=12, start=SATURDAY_AFTERNOON, noise_rate=0.3)
    )
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            async with emu.attach(port):
                await asyncio.sleep(0.6)
            intact = _journal_frames(emu)
            await gw.wait_for(lambda: len(gw.frames) == len(intact))

    corrupted = [entry for entry in emu.journal if entry.corrupted]
    assert corrupted
    assert len(gw.errors) >= len(corrupted)
    assert gw.frames == intact


async def test_a_silent_board_sends_nothing_but_keeps_its_state() -> None:
    emu = _scripted()
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            async with emu.attach(port):
                await gw.wait_for(lambda: len(gw.frames) == 8)
                emu.set_silent(True)
                emu.set_seat(1, True)
                gw.send(Frame(seq=5, message=Ping()))
                await asyncio.sleep(0.2)
                heard_while_silent = len(gw.frames)
                emu.set_silent(False)
                emu.set_seat(3, True)
                await gw.wait_for(lambda: Seat(3, True) in gw.messages)

    assert heard_while_silent == 8
    assert [(d.frame.message, d.reason) for d in emu.dropped] == [
        (Seat(1, True), "silent"),
        (Ack(5), "silent"),
    ]
    assert emu.state.house.seats == (True, False, True, False)
    assert gw.frames == _journal_frames(emu)


async def test_unplug_hangs_up_the_gateway_and_replug_repoints_the_link(tmp_path: Path) -> None:
    link = tmp_path / "serial" / "by-id" / "usb-qihe-taoyuan-1"
    emu = _scripted()
    port = PtyPort(link=link)
    await port.open()
    first_path = port.path
    with Gateway(link) as gw:
        async with emu.attach(port):
            await gw.wait_for(lambda: len(gw.frames) == 8)
            unplugged = asyncio.create_task(emu.unplug(0.3))
            await gw.wait_for(lambda: gw.hung_up, timeout=1.0)
            link_during = link.is_symlink()
            emu.set_seat(1, True)
            await unplugged
            with Gateway(link) as gw2:
                emu.set_seat(2, True)
                await gw2.wait_for(lambda: Seat(2, True) in gw2.messages)
    port.close()

    assert not link_during
    assert port.path != first_path  # the old pair lives on while the gateway holds it
    assert [(d.frame.message, d.reason) for d in emu.dropped] == [(Seat(1, True), "unplugged")]
    assert gw.frames + gw2.frames == _journal_frames(emu)
    assert not link.exists()


async def test_replug_after_a_power_cycle_says_hello_again() -> None:
    emu = _scripted()
    async with PtyPort() as port, emu.attach(port):
        await emu.unplug(0.05, power_cycle=True)
        with Gateway(port.path) as gw:  # opened after the HELLO: the pty kept it
            await gw.wait_for(lambda: len(gw.frames) == 8)

    assert gw.frames[0].seq == 0
    assert isinstance(gw.messages[0], Hello)
    assert emu.board.counters.reboots == 1


async def test_nobody_reading_fills_the_pty_without_blocking_and_drops_are_counted() -> None:
    emu = _scripted(max_pending_frames=32)
    async with PtyPort() as port, emu.attach(port):
        for i in range(4000):  # ~44 KB of SEAT frames; the pty holds about 20 KB
            emu.set_seat(1, i % 2 == 0)
        dropped = emu.state.dropped
        with Gateway(port.path) as gw:
            await gw.wait_for(lambda: len(gw.frames) == len(emu.journal) and not emu.line.pending)
            emu.set_seat(4, True)
            await gw.wait_for(lambda: Seat(4, True) in gw.messages)

    assert dropped > 0
    assert {d.reason for d in emu.dropped} == {"overflow"}
    assert len(emu.journal) + dropped == 8 + 4000 + 1
    assert isinstance(gw.messages[0], Hello)
    assert gw.frames == _journal_frames(emu)


async def test_stuck_seat_and_low_supply_reach_the_gateway_as_faults() -> None:
    emu = _scripted(speed=600, report_interval_s=10, stuck_report_after=timedelta(seconds=60))
    stuck = Fault(SensorRef(SensorKind.SEAT, 2), FaultCode.STUCK, True)
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            async with emu.attach(port):
                emu.set_stuck(2)
                emu.set_supply(3250)
                await gw.wait_for(lambda: stuck in gw.messages)
                await gw.wait_for(
                    lambda: any(
                        isinstance(m, Heartbeat) and m.supply_mv == 3250 for m in gw.messages
                    )
                )

    assert Seat(2, True) in gw.messages
    assert Fault(SensorRef(SensorKind.PEOPLE, 1), FaultCode.SUPPLY_LOW, True) in gw.messages


async def test_a_gateway_using_pyserial_asyncio_hears_hello_and_gets_acks() -> None:
    emu = _scripted()
    async with PtyPort() as port:
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=port.path, baudrate=115200
        )
        decoder = FrameDecoder()
        frames: list[Frame] = []

        async def read_until(message: Message) -> None:
            while message not in [f.message for f in frames]:
                frames.extend(
                    f for f in decoder.feed(await reader.read(1024)) if isinstance(f, Frame)
                )

        try:
            async with emu.attach(port), asyncio.timeout(3):
                await read_until(People(1, 0, 0))
                writer.write(encode(Frame(seq=1, message=Ping())))
                await read_until(Ack(1))
        finally:
            writer.close()

    assert isinstance(frames[0].message, Hello)


async def test_run_until_cancelled_leaves_the_port_unplugged_from_the_board() -> None:
    emu = _scripted()
    async with PtyPort() as port:
        with Gateway(port.path) as gw:
            running = asyncio.create_task(emu.run(port), name="emulator")
            await gw.wait_for(lambda: len(gw.frames) == 8)
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            emu.set_seat(1, True)

    assert running.cancelled()
    assert not emu.state.plugged
    assert emu.dropped[-1].reason == "unplugged"


async def test_board_on_an_existing_serial_device_opened_with_pyserial() -> None:
    gateway_end, device_end = os.openpty()  # the gateway holds the master this time
    tty.setraw(device_end)
    emu = _scripted()
    decoder = FrameDecoder()
    frames: list[Frame] = []
    try:
        async with SerialDevicePort(os.ttyname(device_end)) as port, emu.attach(port):
            os.set_blocking(gateway_end, False)
            os.write(gateway_end, encode(Frame(seq=3, message=Ping())))
            async with asyncio.timeout(3):
                while Ack(3) not in [f.message for f in frames]:
                    await asyncio.sleep(0.01)
                    with contextlib.suppress(BlockingIOError):
                        chunk = os.read(gateway_end, 4096)
                        frames.extend(f for f in decoder.feed(chunk) if isinstance(f, Frame))
    finally:
        os.close(gateway_end)
        os.close(device_end)

    assert isinstance(frames[0].message, Hello)


def test_qihe_emulate_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["emulate", "--help"])

    assert exited.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--port",
        "--link",
        "--seats",
        "--no-counter",
        "--no-door",
        "--speed",
        "--noise",
        "--stuck",
        "--silent-after",
    ):
        assert option in out


def test_qihe_emulate_runs_on_a_linked_pty_and_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "ttyQIHE0"

    code = main(
        ["emulate", "--link", str(link), "--speed", "600", "--duration", "0.4",
         "--status-every", "0.1", "--seed", "3"]
    )  # fmt: skip

    out = capsys.readouterr().out
    assert code == 0
    assert f"emulator started: {link} → /dev/pts/" in out
    assert "发送 sent" in out
    assert "emulator stopped" in out
    assert not link.exists()


def test_qihe_emulate_can_play_a_board_with_seats_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "ttyQIHE1"

    code = main(
        ["emulate", "--link", str(link), "--seats", "30", "--no-counter", "--no-door",
         "--scripted", "--speed", "600", "--duration", "0.3", "--status-every", "0.1"]
    )  # fmt: skip

    out = capsys.readouterr().out
    assert code == 0
    assert "30 座位 seats, ×600" in out
    assert "座位 seats 0/30 |" in out
    assert "进 in" not in out
