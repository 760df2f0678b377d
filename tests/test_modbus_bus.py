"""The Modbus source against pymodbus's own RTU server, over a cable made of two pty pairs.

The gateway's end and the devices' end are each a pty; between their masters a relay
plays the RS485 cable: it passes requests and answers whole (real RTU framing both ways),
and a test can unplug a device (its requests go nowhere), garble an answer, put noise on
the line, or pull the gateway's adapter out and plug a new one in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tty
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.sources.modbus import ModbusSource
from edge.sources.modbus_config import ModbusConfig
from edge.sources.modbus_totals import STATE_FILE
from qihe.contract import (
    AirReading,
    FaultReading,
    PeopleReading,
    Reading,
    SeatReading,
)
from tests.mqtt_helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
Tamper = Callable[[bytes], bytes]


def _pty() -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave


class Line:
    """The cable: the gateway opens ``gateway_path``, the server ``device_path``."""

    def __init__(self, tmp: Path) -> None:
        self._dev_master, self._dev_slave = _pty()
        self.device_path = os.ttyname(self._dev_slave)
        self.gateway_path = str(tmp / "rs485")
        self._gw_master, self._gw_slave = -1, -1
        self._request = b""
        self._answer = b""
        self._asked: tuple[int, int, int] | None = None  # unit, function, count
        self.muted: set[int] = set()
        self.requests: Counter[int] = Counter()
        self.tampers: list[Tamper] = []
        self._plug()

    def _plug(self) -> None:
        self._gw_master, self._gw_slave = _pty()
        link = Path(self.gateway_path)
        link.unlink(missing_ok=True)
        link.symlink_to(os.ttyname(self._gw_slave))

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self._gw_master, self._from_gateway)
        loop.add_reader(self._dev_master, self._from_devices)

    def replug(self) -> None:
        """The USB adapter pulled out, and a new one (another tty) plugged in."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._gw_master)
        os.close(self._gw_master)
        os.close(self._gw_slave)
        self._plug()
        loop.add_reader(self._gw_master, self._from_gateway)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in (self._gw_master, self._dev_master):
            loop.remove_reader(fd)
        for fd in (self._gw_master, self._gw_slave, self._dev_master, self._dev_slave):
            os.close(fd)

    def _from_gateway(self) -> None:
        try:
            self._request += os.read(self._gw_master, 1024)
        except OSError:
            return
        while len(self._request) >= 8:  # a read request is 8 bytes
            request, self._request = self._request[:8], self._request[8:]
            unit = request[0]
            self.requests[unit] += 1
            if unit in self.muted:
                continue  # an unplugged device: nothing answers
            self._asked = (unit, request[1], int.from_bytes(request[4:6], "big"))
            self._answer = b""
            os.write(self._dev_master, request)

    def _from_devices(self) -> None:
        self._answer += os.read(self._dev_master, 1024)
        if self._asked is None or len(self._answer) < 5:
            return
        _unit, _function, count = self._asked
        size = 5 if self._answer[1] & 0x80 else 5 + 2 * count
        if len(self._answer) < size:
            return
        answer, self._answer, self._asked = self._answer[:size], b"", None
        if self.tampers:
            answer = self.tampers.pop(0)(answer)
        os.write(self._gw_master, answer)


def _sim_device(unit: int) -> SimDevice:
    def bits() -> list[SimData]:
        return [SimData(0, count=1, values=False, datatype=DataType.BITS)]

    def registers() -> list[SimData]:
        return [SimData(0, count=16, values=0, datatype=DataType.REGISTERS)]

    return SimDevice(id=unit, simdata=(bits(), bits(), registers(), registers()))


class Bench:
    """A bus: the line, pymodbus's server playing the devices, and the source under test."""

    def __init__(self, line: Line, server: ModbusSerialServer, tmp: Path) -> None:
        self.line = line
        self.server = server
        self.tmp = tmp
        self.readings: list[Reading] = []
        self.source: ModbusSource | None = None
        self._task: asyncio.Task[None] | None = None

    async def set(self, unit: int, table: str, address: int, values: list[int]) -> None:
        function = 3 if table == "holding" else 4
        await self.server.async_setValues(unit, function, address, values)

    def config(self, devices: list[dict[str, Any]], **port: Any) -> ModbusConfig:
        return ModbusConfig.model_validate(
            {
                "profile_dir": str(self.tmp / "profiles"),
                "ports": [
                    {
                        "name": "rs485-1",
                        "path": self.line.gateway_path,
                        "baudrate": 9600,
                        "timeout": 0.1,
                        "backoff_max": 0.4,
                        "reconnect_min": 0.05,
                        "reconnect_max": 0.2,
                        **port,
                        "devices": devices,
                    }
                ],
            }
        )

    async def start(self, config: ModbusConfig) -> ModbusSource:
        self.source = ModbusSource(
            config.ports[0],
            config,
            site="qibin-dongfang",
            gateway="gw1",
            emit=self.readings.append,
            state_dir=self.tmp,
        )
        self._task = asyncio.create_task(self.source.run(), name="modbus-under-test")
        return self.source

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def of(self, kind: type[Any], sensor: str | None = None) -> list[Any]:
        return [
            r
            for r in self.readings
            if isinstance(r, kind) and (sensor is None or r.sensor == sensor)
        ]


def write_profile(tmp: Path, name: str, text: str) -> None:
    folder = tmp / "profiles"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    for profile in (ROOT / "config" / "modbus").glob("*.yaml"):
        write_profile(tmp_path, profile.stem, profile.read_text(encoding="utf-8"))
    line = Line(tmp_path)
    server = ModbusSerialServer(
        [_sim_device(unit) for unit in (1, 2, 3)],
        framer=FramerType.RTU,
        port=line.device_path,
        baudrate=9600,
    )
    await server.serve_forever(background=True)
    line.start()
    result = Bench(line, server, tmp_path)
    try:
        yield result
    finally:
        await result.stop()
        await server.shutdown()  # type: ignore[no-untyped-call]
        line.close()


THREE_DEVICES = [
    {"unit": 1, "profile": "people_counter", "sensor": "entrance", "interval": 0.05},
    {"unit": 2, "profile": "air_sensor", "sensor": "study-room", "interval": 0.05},
    {
        "unit": 3,
        "profile": "presence_sensor",
        "sensor": "desk-7",
        "interval": 0.05,
        "presence_as": "seat",
    },
]


async def test_three_units_on_one_bus_each_give_their_readings(bench: Bench) -> None:
    await bench.set(1, "holding", 0, [0x0001, 0x0002, 0, 300])  # in 65538, out 300 (32-bit)
    await bench.set(2, "input", 0, [456, 0x10000 - 35, 812])  # 45.6 %RH, -3.5 °C, 812 ppm
    await bench.set(3, "holding", 0, [1])
    source = await bench.start(bench.config(THREE_DEVICES))
    await wait_until(
        lambda: bool(bench.of(PeopleReading) and bench.of(AirReading) and bench.of(SeatReading))
    )
    people = bench.of(PeopleReading)[0]
    assert (people.in_total, people.out_total) == (65538, 300)
    assert (people.device, people.sensor) == ("rs485-1", "entrance")
    air = bench.of(AirReading)[0]
    assert air.humidity_pct == pytest.approx(45.6)
    assert air.temperature_c == pytest.approx(-3.5)
    assert air.co2_ppm == 812
    assert bench.of(SeatReading)[0].occupied is True
    link = source.link_reading()
    assert link.frames >= 3
    assert (link.crc_errors, link.malformed, link.lost, link.reconnects) == (0, 0, 0, 0)
    assert (link.device, link.sensor) == ("rs485-1", "rs485-1")


async def test_unchanged_state_is_not_republished_at_every_poll(bench: Bench) -> None:
    await bench.set(3, "holding", 0, [0])
    source = await bench.start(bench.config([THREE_DEVICES[2]]))
    await wait_until(lambda: source.counters.frames >= 10)
    assert len(bench.of(SeatReading)) == 1
    await bench.set(3, "holding", 0, [7])
    await wait_until(lambda: len(bench.of(SeatReading)) == 2)
    assert [r.occupied for r in bench.of(SeatReading)] == [False, True]


async def test_a_silent_device_is_backed_off_reported_absent_and_picked_up_again(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    await bench.set(2, "input", 0, [500, 200, 600])
    source = await bench.start(bench.config(THREE_DEVICES[:2]))
    await wait_until(lambda: bool(bench.of(AirReading)))
    bench.line.muted.add(2)
    await wait_until(lambda: bool(bench.of(FaultReading)))
    fault = bench.of(FaultReading)[0]
    assert (fault.code, fault.active, fault.sensor) == (
        "no_response",
        True,
        "study-room.no_response",
    )
    assert source.absent == 1
    assert "absent" in caplog.text

    # While it is silent the counter is still read at its own pace, the silent one rarely.
    asked = bench.line.requests.copy()
    await wait_until(lambda: bench.line.requests[1] - asked[1] >= 30)
    assert bench.line.requests[2] - asked[2] < 10
    assert source.counters.lost >= 3

    air_before = len(bench.of(AirReading))
    bench.line.muted.clear()
    await wait_until(lambda: len(bench.of(FaultReading)) == 2)
    assert bench.of(FaultReading)[1].active is False
    await wait_until(lambda: len(bench.of(AirReading)) > air_before)
    assert source.absent == 0


async def test_garbled_answers_are_counted_and_the_bus_goes_on(bench: Bench) -> None:
    await bench.set(2, "input", 0, [500, 200, 600])

    def flip(answer: bytes) -> bytes:
        return answer[:3] + bytes([answer[3] ^ 0x40]) + answer[4:]

    def garbage(answer: bytes) -> bytes:
        return bytes([0xF3, 0x00, 0xFF]) * (len(answer) // 3)

    def noise_first(answer: bytes) -> bytes:
        return b"\x00\xff\x17" + answer

    bench.line.tampers += [flip, garbage, noise_first]
    source = await bench.start(bench.config([THREE_DEVICES[1]]))
    await wait_until(lambda: not bench.line.tampers and len(bench.of(AirReading)) >= 3)
    link = source.link_reading()
    assert link.crc_errors == 1
    assert link.malformed == 2  # the garbage, and the noise before a good answer
    assert link.lost == 0
    assert all(r.co2_ppm == 600 for r in bench.of(AirReading))
    assert not bench.of(FaultReading)  # the device answered: garbled is not absent


async def test_an_exception_answer_is_counted_as_malformed_and_named_in_the_log(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    write_profile(
        bench.tmp,
        "far_register",
        "description: a register the device does not have\n"
        "registers:\n  - {meaning: co2_ppm, table: input, address: 100}\n",
    )
    device = {"unit": 2, "profile": "far_register", "sensor": "study-room", "interval": 0.05}
    source = await bench.start(bench.config([device]))
    await wait_until(lambda: source.counters.malformed >= 2)
    assert source.counters.frames == 0
    assert source.counters.lost == 0
    assert not bench.of(AirReading)
    assert not bench.of(FaultReading)
    lines = [r.getMessage() for r in caplog.records if "exception 2" in r.getMessage()]
    assert len(lines) == 1  # said once, not at every poll
    assert "illegal data address" in lines[0]
    assert "far_register" in lines[0]


async def test_counter_reset_and_wrap_keep_the_totals_rising_across_a_restart(
    bench: Bench,
) -> None:
    write_profile(
        bench.tmp,
        "counter16",
        "description: a 16-bit counter\nregisters:\n"
        "  - {meaning: people_in, address: 0}\n  - {meaning: people_out, address: 1}\n",
    )
    device = {"unit": 1, "profile": "counter16", "sensor": "entrance", "interval": 0.05}
    config = bench.config([device])

    async def totals_become(in_total: int, out_total: int) -> None:
        await wait_until(
            lambda: any(
                (r.in_total, r.out_total) == (in_total, out_total) for r in bench.of(PeopleReading)
            )
        )

    await bench.set(1, "holding", 0, [100, 90])
    await bench.start(config)
    await totals_become(100, 90)
    await bench.set(1, "holding", 0, [5, 2])  # the counter was reset, then counted on
    await totals_become(105, 92)
    await bench.set(1, "holding", 0, [65530, 65000])
    await totals_become(65630, 65090)
    await bench.set(1, "holding", 0, [3, 65001])  # in wraps past 65,535
    await totals_become(65639, 65091)

    await bench.stop()  # a gateway restart: the bases are in the state folder
    assert (bench.tmp / STATE_FILE).exists()
    await bench.set(1, "holding", 0, [4, 65001])
    await bench.start(config)
    await totals_become(65640, 65091)
    totals = [(r.in_total, r.out_total) for r in bench.of(PeopleReading)]
    assert totals == sorted(totals)  # never a fall


async def test_32_bit_values_in_either_word_order(bench: Bench) -> None:
    write_profile(
        bench.tmp,
        "swapped",
        "description: a meter that puts the low word first\nregisters:\n"
        "  - {meaning: people_in, address: 0, type: uint32, word_order: little}\n"
        "  - {meaning: people_out, address: 2, type: uint32, word_order: big}\n"
        "  - {meaning: temperature_c, address: 4, type: int32, word_order: little, "
        "scale: 0.001}\n",
    )
    device = {"unit": 1, "profile": "swapped", "sensor": "entrance", "interval": 0.05}
    minus = (1 << 32) - 21_500  # -21.5 °C as int32
    await bench.set(1, "holding", 0, [0x5678, 0x1234, 0x1234, 0x5678, minus & 0xFFFF, minus >> 16])
    await bench.start(bench.config([device]))
    await wait_until(lambda: bool(bench.of(PeopleReading) and bench.of(AirReading)))
    people = bench.of(PeopleReading)[0]
    assert (people.in_total, people.out_total) == (0x12345678, 0x12345678)
    assert bench.of(AirReading)[0].temperature_c == pytest.approx(-21.5)


async def test_a_port_that_disappears_is_reopened(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await bench.set(2, "input", 0, [500, 200, 600])
    source = await bench.start(bench.config([THREE_DEVICES[1]]))
    await wait_until(lambda: source.connected.is_set() and bool(bench.of(AirReading)))
    bench.line.replug()
    await wait_until(lambda: source.counters.reconnects == 1)
    count = len(bench.of(AirReading))
    await wait_until(lambda: len(bench.of(AirReading)) > count)
    assert "went away" in caplog.text or "failed" in caplog.text or "cannot" in caplog.text
