"""The ARM build of the firmware in QEMU, against the Python codec and the real pipe.

``make -C firmware arm`` builds two images of the same sources: ``qihe-board.elf`` for the
Black Pill (sensors on GPIO and the ADC) and ``qihe-board-qemu.elf`` for QEMU's
``netduinoplus2`` (STM32F405), whose inputs are the event lines of ``firmware/port/sim`` on
the second USART, since QEMU cannot press a seat sensor. QEMU puts both USARTs on ptys::

    QEMU: USART1 ──pty (linked at link)──▶ gateway ──▶ Mosquitto ──▶ consumer ──▶ InfluxDB
          USART2 ◀──pty── this test: `seat 2 1`, `beam in`, `door open`, `wait 80`, `mark X`

``mark X`` is the QEMU build's own event: it answers ``mark X`` on USART2 once every line
before it has been played, so the test knows when a script is done without timing it. The
truth is the script: each seat and the door alternate from their state at boot, each
crossing moves the counter's totals by one, so a lost, doubled or swapped reading shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import select
import shutil
import subprocess
import time
import tty
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
import yaml

from central.consumer.service import Consumer
from devstack import InfluxdProcess, MosquittoProcess
from edge.config import SerialPortConfig
from edge.doctor import check_serial
from firmware_bridge.codec import FrameDecoder, encode
from firmware_bridge.errors import FrameError
from firmware_bridge.messages import (
    Ack,
    Door,
    Frame,
    Hello,
    Identify,
    Message,
    Nack,
    NackReason,
    Ping,
    Reboot,
    Seat,
    SetReportInterval,
)
from tests.fault_harness import Landed, ServiceProcess, points_of
from tests.firmware_build import firmware_build

#: The QEMU image's configuration (firmware/port/arm/main_arm.c defaults).
DEVICE = "qihe-board"
SEATS = 8
QEMU = "qemu-system-arm"
SIZE = "arm-none-eabi-size"
#: The project's budget for the ARM image (issue 15, docs/firmware.md).
FLASH_BUDGET = 64 * 1024
RAM_BUDGET = 16 * 1024


@pytest.fixture(scope="session")
def arm_images() -> tuple[Path, Path]:
    """The board's image and QEMU's, built once per session."""
    board = firmware_build("arm")
    return board, board.with_name("qihe-board-qemu.elf")


# -- QEMU ------------------------------------------------------------------------------------


class QemuBoard:
    """``qemu-system-arm -M netduinoplus2`` running the QEMU image; USART1 on a pty whose
    slave is symlinked at ``link`` (as udev links /dev/serial/by-id), USART2 on a second pty
    this object writes event lines to and reads the answers (``mark``, ``error``) from."""

    def __init__(self, image: Path, link: Path, log: Path) -> None:
        self.image = image
        self.link = link
        self.log_path = log
        self.answers: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._events = -1
        self._partial = b""

    def __enter__(self) -> Self:
        if shutil.which(QEMU) is None:
            pytest.fail(f"{QEMU} 未安装 / not installed: run ./dev.sh test")
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    *(QEMU, "-M", "netduinoplus2", "-display", "none", "-monitor", "none"),
                    *("-kernel", str(self.image), "-serial", "pty", "-serial", "pty"),
                ],
                stdout=subprocess.PIPE,
                stderr=log,
            )
        try:
            ptys = self._read_pty_names(timeout=10)
            self.link.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            self.link.symlink_to(ptys["serial0"])
            self._events = os.open(ptys["serial1"], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(self._events)
        except BaseException:
            self.__exit__(None, None, None)  # no QEMU left behind
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            assert self._proc.stdout is not None
            self._proc.stdout.close()
        if self._events >= 0:
            os.close(self._events)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    def _read_pty_names(self, timeout: float) -> dict[str, str]:
        """QEMU prints ``char device redirected to /dev/pts/N (label serialK)`` per pty."""
        assert self._proc is not None and self._proc.stdout is not None
        out = self._proc.stdout.fileno()
        text = b""
        deadline = time.monotonic() + timeout
        while True:
            ptys = dict(
                (label, path)
                for path, label in re.findall(r"redirected to (\S+) \(label (\w+)\)", text.decode())
            )
            if {"serial0", "serial1"} <= ptys.keys():
                return ptys
            if self._proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"QEMU did not open its ptys: {text!r}, see {self.log_path}")
            ready, _, _ = select.select([out], [], [], 0.1)
            if ready:
                text += os.read(out, 4096)

    def events(self, *lines: str) -> None:
        """Write event lines to USART2 (QEMU holds what the board has not taken yet)."""
        data = "".join(f"{line}\n" for line in lines).encode()
        while data:
            select.select([], [self._events], [], 1.0)
            with contextlib.suppress(BlockingIOError):
                data = data[os.write(self._events, data) :]

    def wait_answer(self, line: str, timeout: float = 30.0) -> None:
        """Wait until USART2 answered ``line`` (a ``mark``'s echo, an ``error: ...``)."""
        deadline = time.monotonic() + timeout
        while line not in self.answers:
            if time.monotonic() > deadline:
                pytest.fail(f"no {line!r} from the board; it answered {self.answers}")
            ready, _, _ = select.select([self._events], [], [], 0.1)
            if ready:
                with contextlib.suppress(BlockingIOError):
                    self._partial += os.read(self._events, 4096)
                *done, self._partial = self._partial.split(b"\n")
                self.answers += [raw.decode(errors="replace").strip() for raw in done]


class RawLink:
    """The link pty opened directly, speaking the protocol with the Python codec."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.decoder = FrameDecoder()
        self.frames: list[Frame] = []
        self.errors: list[FrameError] = []
        self._seq = 0

    def close(self) -> None:
        os.close(self.fd)

    @property
    def last_seq(self) -> int:
        return self._seq

    def send(self, message: Message) -> int:
        self._seq += 1
        self.write(encode(Frame(self._seq, message)))
        return self._seq

    def write(self, data: bytes) -> None:
        while data:
            select.select([], [self.fd], [], 1.0)
            with contextlib.suppress(BlockingIOError):
                data = data[os.write(self.fd, data) :]

    def wait_for(self, want: type[Message], timeout: float = 10.0, **fields: object) -> Frame:
        """The first frame received so far or within ``timeout`` whose message is a ``want``
        with ``fields`` (a callable field value is a predicate on that field)."""

        def matches(frame: Frame) -> bool:
            if not isinstance(frame.message, want):
                return False
            for name, value in fields.items():
                got = getattr(frame.message, name)
                if not (value(got) if callable(value) else got == value):
                    return False
            return True

        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for frame in self.frames[seen:]:
                if matches(frame):
                    return frame
            seen = len(self.frames)
            if time.monotonic() > deadline:
                pytest.fail(f"no {want.__name__} {fields} within {timeout}s: {self.frames[-10:]}")
            self.poll(0.1)

    def poll(self, timeout: float = 0.0) -> None:
        """Decode what the board sent, waiting at most ``timeout`` for something."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        while ready:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                return
            for event in self.decoder.feed(data):
                if isinstance(event, Frame):
                    self.frames.append(event)
                else:
                    self.errors.append(event)
            ready, _, _ = select.select([self.fd], [], [], 0)


# -- the image and its budget -----------------------------------------------------------------


def size_of(image: Path) -> tuple[int, int, int]:
    """text, data and bss of ``arm-none-eabi-size`` (Berkeley format)."""
    if shutil.which(SIZE) is None:
        pytest.fail(f"{SIZE} 未安装 / not installed: run ./dev.sh test")
    out = subprocess.run([SIZE, str(image)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(field) for field in out.splitlines()[1].split()[:3])
    return text, data, bss


def section_sizes(image: Path) -> dict[str, int]:
    out = subprocess.run([SIZE, "-A", str(image)], capture_output=True, text=True, check=True)
    sizes: dict[str, int] = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


@pytest.mark.parametrize("which", ["board", "qemu"])
def test_the_arm_image_fits_64_kb_of_flash_and_16_kb_of_ram_stack_included(
    arm_images: tuple[Path, Path], which: str
) -> None:
    image = arm_images[0] if which == "board" else arm_images[1]
    text, data, bss = size_of(image)
    # Flash holds the code, the constants and the initial values of .data.
    assert text + data <= FLASH_BUDGET
    # RAM: .data, .bss and, counted in bss by size, the stack reserve and .noinit.
    sections = section_sizes(image)
    assert sections[".stack"] >= 2048
    assert bss == sections[".bss"] + sections[".stack"] + sections[".noinit"]
    assert data + bss <= RAM_BUDGET


def test_docs_firmware_gives_the_flash_and_ram_figures_of_the_images_as_built(
    arm_images: tuple[Path, Path],
) -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "firmware.md").read_text("utf-8")
    section = doc.split("\n## Flash and RAM\n")[1].split("\n## ")[0]
    documented = {
        name: (int(flash), int(ram))
        for name, flash, ram in re.findall(
            r"build/arm/(\S+): flash (\d+) of 65536 bytes, RAM (\d+) of 16384 bytes", section
        )
    }
    assert documented.keys() == {image.name for image in arm_images}
    for image in arm_images:
        text, data, bss = size_of(image)
        flash, ram = documented[image.name]
        # Another compiler version moves the figures a little; a changed firmware, more.
        assert abs(flash - (text + data)) <= max(512, (text + data) // 20), image.name
        assert abs(ram - (data + bss)) <= max(512, (data + bss) // 20), image.name


def test_the_board_image_reads_gpio_and_the_qemu_image_reads_event_lines(
    arm_images: tuple[Path, Path],
) -> None:
    board, qemu = (
        subprocess.run(["arm-none-eabi-nm", str(image)], capture_output=True, text=True).stdout
        for image in arm_images
    )
    assert "sim_feed" not in board and "inputs_entropy" in board
    assert "sim_feed" in qemu and "USART2_IRQHandler" in qemu


# -- the board in QEMU, spoken to directly ------------------------------------------------------


@pytest.fixture
def qemu_board(arm_images: tuple[Path, Path], tmp_path: Path) -> Iterator[QemuBoard]:
    with QemuBoard(
        arm_images[1], tmp_path / "serial" / "usb-qihe_board-if00", tmp_path / "qemu.log"
    ) as board:
        yield board


def test_the_board_in_qemu_says_hello_then_acknowledges_every_command(
    qemu_board: QemuBoard,
) -> None:
    link = RawLink(qemu_board.link)
    try:
        hello = link.wait_for(Hello)
        assert hello.seq == 0  # the first frame of a boot
        assert isinstance(hello.message, Hello)
        assert hello.message.device_id == DEVICE
        assert hello.message.report_interval_s == 60
        boot = hello.message.boot

        ping = link.send(Ping())
        link.wait_for(Ack, ref_seq=ping)
        too_rare = link.send(SetReportInterval(3601))
        link.wait_for(Nack, ref_seq=too_rare, reason=NackReason.BAD_ARGUMENT)
        interval = link.send(SetReportInterval(7))
        link.wait_for(Ack, ref_seq=interval)
        identify = link.send(Identify(1))
        link.wait_for(Ack, ref_seq=identify)

        # Noise on the line costs nothing but itself: the next PING is answered.
        link.write(b"\x13\x37" * 300 + b"\x00\x03\x01\x02\x02\x01\x05\x0c\x01\xe1\x16\x00")
        ping = link.send(Ping())
        link.wait_for(Ack, ref_seq=ping)

        # The inputs come over USART2.
        qemu_board.events("seat 2 1", "mark seat")
        qemu_board.wait_answer("mark seat")
        link.wait_for(Seat, seat=2, occupied=True)
        qemu_board.events("seat 99 1", "tap dance")
        qemu_board.wait_answer("error: unknown event: tap dance")
        assert any(a.startswith("error: expected: seat INDEX") for a in qemu_board.answers)

        # REBOOT: ACK, a real reset (SYSRESETREQ), a HELLO of a new boot with the interval
        # the gateway set (kept across the warm reset).
        reboot = link.send(Reboot())
        link.wait_for(Ack, ref_seq=reboot)
        again = link.wait_for(Hello, boot=lambda number: number != boot)
        assert again.seq == 0
        assert isinstance(again.message, Hello)
        assert again.message.report_interval_s == 7
    finally:
        link.close()


def test_random_bytes_on_the_link_neither_crash_nor_stall_the_board_in_qemu(
    qemu_board: QemuBoard,
) -> None:
    link = RawLink(qemu_board.link)
    try:
        hello = link.wait_for(Hello)
        assert isinstance(hello.message, Hello)
        noise = random.Random(15)
        for _ in range(100):
            link.write(noise.randbytes(1024))
            link.poll()
        # Bytes the receive ring had no room for are dropped, so a PING may be cut: ask again
        # until one is answered.
        deadline = time.monotonic() + 20
        while not any(
            isinstance(f.message, Ack) and f.message.ref_seq == link.last_seq for f in link.frames
        ):
            assert time.monotonic() < deadline, link.frames[-10:]
            link.send(Ping())
            link.poll(0.5)
        # Still the same boot: no fault reset the board on the way.
        assert {f.message.boot for f in link.frames if isinstance(f.message, Hello)} == {
            hello.message.boot
        }
        qemu_board.events("mark alive")
        qemu_board.wait_answer("mark alive")
    finally:
        link.close()


def test_the_black_pill_image_boots_in_qemu_too_and_reads_its_contacts_as_wired(
    arm_images: tuple[Path, Path], tmp_path: Path
) -> None:
    """The board's own image in QEMU: its crystal never starts (no RCC in QEMU), so it falls
    back to the internal oscillator, and its clock runs fast against QEMU's 168 MHz, which
    the answers here do not depend on; QEMU has no GPIO, and its pins all read low: every
    contact closed, so every seat occupied and the door shut."""
    link_path = tmp_path / "serial" / "usb-black_pill-if00"
    with QemuBoard(arm_images[0], link_path, tmp_path / "qemu.log"):
        link = RawLink(link_path)
        try:
            hello = link.wait_for(Hello)
            assert isinstance(hello.message, Hello)
            assert [s.index for s in hello.message.sensors if s.kind.name == "SEAT"] == list(
                range(1, SEATS + 1)
            )
            for index in range(1, SEATS + 1):
                link.wait_for(Seat, seat=index, occupied=True)
            link.wait_for(Door, door=1, open=False)
            ping = link.send(Ping())
            link.wait_for(Ack, ref_seq=ping)
        finally:
            link.close()


def test_the_gateway_doctor_finds_the_board_in_qemu(qemu_board: QemuBoard) -> None:
    result = check_serial(SerialPortConfig(path=str(qemu_board.link), device=DEVICE), timeout=5)
    assert result.outcome == "pass", result.line()


# -- the board in QEMU → the real gateway → Mosquitto → consumer → InfluxDB --------------------


@dataclass
class Script:
    """Event lines for the board and what they must become in InfluxDB, per sensor."""

    lines: list[str]
    expected: dict[str, list[tuple[object, ...]]]
    seats: dict[int, bool]
    door: bool = False
    inside: tuple[int, int] = (0, 0)

    @classmethod
    def at_boot(cls, seats: int) -> Script:
        # After HELLO the board reports every sensor's state: free, closed, no one counted.
        expected: dict[str, list[tuple[object, ...]]] = {
            f"seat {DEVICE}.{index}": [(0,)] for index in range(1, seats + 1)
        }
        expected[f"door {DEVICE}.1"] = [(0,)]
        expected[f"people {DEVICE}.1"] = [(0, 0)]
        return cls([], expected, dict.fromkeys(range(1, seats + 1), False))

    def rounds(self, count: int, seats: range) -> None:
        """Each round: the seats toggle, someone crosses the entrance, the door toggles."""
        for _ in range(count):
            for index in seats:
                self.seats[index] = not self.seats[index]
                self.lines += [f"seat {index} {int(self.seats[index])}", "wait 80"]
                self.expected[f"seat {DEVICE}.{index}"].append((int(self.seats[index]),))
            entering = self.inside[0] == self.inside[1]
            self.lines.append("beam in" if entering else "beam out")
            ins, outs = self.inside
            self.inside = (ins + 1, outs) if entering else (ins, outs + 1)
            self.expected[f"people {DEVICE}.1"].append(self.inside)
            self.door = not self.door
            self.lines += ["door open" if self.door else "door closed", "wait 80"]
            self.expected[f"door {DEVICE}.1"].append((int(self.door),))


def landed_by_sensor(influxd: InfluxdProcess, db: str) -> dict[str, list[Landed]]:
    """Every board reading in the database, per sensor, in the order InfluxDB stored them."""
    measurements = '"seat", "door", "people", "heartbeat", "device", "fault"'
    answer = influxd.query(f'SELECT * FROM {measurements} GROUP BY "sensor"', db)
    by_sensor: dict[str, list[Landed]] = defaultdict(list)
    for point in points_of(answer):
        by_sensor[point.sensor].append(point)
    for series in by_sensor.values():
        series.sort(key=lambda p: p.time_ns)
    return by_sensor


def values(series: list[Landed], collapse: bool) -> list[tuple[object, ...]]:
    """The values of a series; ``collapse`` merges repeats (PEOPLE is also sent with every
    heartbeat, carrying the same totals)."""
    out: list[tuple[object, ...]] = []
    for point in series:
        if not (collapse and out and out[-1] == point.value):
            out.append(point.value)
    return out


def has_landed(landed: dict[str, list[Landed]], expected: dict[str, list[Any]]) -> bool:
    return all(
        len(values(landed.get(sensor, []), sensor.startswith("people"))) >= len(want)
        for sensor, want in expected.items()
    )


async def wait_landed(
    influxd: InfluxdProcess, db: str, expected: dict[str, list[Any]], timeout: float = 60.0
) -> dict[str, list[Landed]]:
    deadline = time.monotonic() + timeout
    while True:
        landed = await asyncio.to_thread(landed_by_sensor, influxd, db)
        if has_landed(landed, expected) or time.monotonic() > deadline:
            return landed
        await asyncio.sleep(0.2)


def write_gateway_config(folder: Path, broker: MosquittoProcess, prefix: str, link: Path) -> Path:
    config = {
        "site": "qemu-site",
        "gateway": "gw1",
        "state_dir": str(folder / "gateway-state"),
        "broker": {
            "host": broker.host,
            "port": broker.port,
            "topic_prefix": prefix,
            "keepalive": 5,
            "reconnect_min": 0.2,
            "reconnect_max": 2,
        },
        "serial": [
            {"path": str(link), "device": DEVICE, "reconnect_min": 0.05, "reconnect_max": 0.5}
        ],
    }
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.integration
@pytest.mark.timeout(240)
async def test_every_reading_of_the_qemu_board_lands_once_in_order_across_a_gateway_kill(
    qemu_board: QemuBoard,
    consumer: Consumer,
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    config = write_gateway_config(tmp_path, mosquitto, topic_prefix, qemu_board.link)
    gateway = ServiceProcess(
        "gateway",
        ["gateway", "run", "--config", str(config)],
        tmp_path / "gateway.log",
        f"serial port {qemu_board.link} open",
    )
    script = Script.at_boot(SEATS)
    try:
        await gateway.start()
        # The gateway asked for the held reports (RESEND) when it opened the port, so the
        # HELLO and the states at boot land even though the board spoke first.
        script.rounds(4, range(1, 4))
        qemu_board.events(*script.lines, "mark before")
        await asyncio.to_thread(qemu_board.wait_answer, "mark before")
        landed = await wait_landed(influxd, influx_db, script.expected)
        assert has_landed(landed, script.expected), gateway.tail()

        # SIGKILL: the gateway loses what it had not stored; the board, holding every
        # report until a REPORT_ACK covers it, sends them again to the next gateway.
        await asyncio.to_thread(gateway.kill)
        played = len(script.lines)
        script.rounds(4, range(2, 6))
        qemu_board.events(*script.lines[played:], "mark during")
        await asyncio.to_thread(qemu_board.wait_answer, "mark during")
        await gateway.start()
        landed = await wait_landed(influxd, influx_db, script.expected)
    finally:
        await asyncio.to_thread(gateway.stop)

    for sensor, want in script.expected.items():
        series = landed.get(sensor, [])
        assert values(series, sensor.startswith("people")) == want, (sensor, series)
    for sensor, series in landed.items():
        numbers = [-1 if point.seq is None else point.seq for point in series]
        # Once (no number twice) and in order (stored in the board's numbering order).
        assert numbers == sorted(set(numbers)), (sensor, series)
    (hello,) = landed[f"device {DEVICE}"]
    assert hello.seq == 0
