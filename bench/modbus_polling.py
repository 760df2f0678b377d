"""Modbus polling of 8 devices at 1 s on one RS485 port: gateway CPU, and each reading's age.

    python -m bench.modbus_polling --runs 3 --seconds 20 --json out.json

The devices are pymodbus's own RTU server playing eight CO₂/temperature/humidity sensors
(``config/modbus/air_sensor.yaml``, units 1–8), on a pty cable to the gateway: two pty
pairs and a relay in this process, as in ``tests/test_modbus_bus.py``. The gateway is
``qihe gateway run`` in a process of its own with a real Mosquitto; this process
subscribes to the air topics. Per run, after a warm-up:

- gateway CPU: CPU seconds of the gateway process (``/proc``) over the window, as % of
  one core;
- age: when each air reading reached the subscriber, minus its ``ts`` (stamped when the
  device's answer arrived): the outbox's group commit, the publish and the broker;
- readings per second, against the 8/s that 8 devices at 1 s make (the limit).

The pty carries bytes at memory speed, not 9600 baud: on a real bus each poll also
spends ~25 ms on the wire (request and answer at 9600 8N1), 8 polls ~0.2 s of each second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import tty
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from bench.harness import (
    Child,
    Row,
    Target,
    median,
    percentile,
    proc_figures,
    run_in_folder,
    write_rows,
)
from devstack import MosquittoProcess

__all__ = ["main"]

DEVICES = 8
INTERVAL_S = 1.0
ROOT = Path(__file__).resolve().parent.parent


class _Cable:
    """Two pty pairs and a byte relay between their masters (the RS485 cable)."""

    def __init__(self) -> None:
        self.dev_master, self._dev_slave = os.openpty()
        self.gw_master, self._gw_slave = os.openpty()
        for fd in (self._dev_slave, self._gw_slave):
            tty.setraw(fd)
        self.device_path = os.ttyname(self._dev_slave)
        self.gateway_path = os.ttyname(self._gw_slave)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.gw_master, self._pass, self.gw_master, self.dev_master)
        loop.add_reader(self.dev_master, self._pass, self.dev_master, self.gw_master)

    @staticmethod
    def _pass(source: int, target: int) -> None:
        with contextlib.suppress(OSError):  # the gateway's end closed at the end of a run
            os.write(target, os.read(source, 4096))

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in (self.gw_master, self.dev_master):
            loop.remove_reader(fd)
        for fd in (self.gw_master, self._gw_slave, self.dev_master, self._dev_slave):
            os.close(fd)


def _sim_device(unit: int) -> SimDevice:
    def bits() -> list[SimData]:
        return [SimData(0, count=1, values=False, datatype=DataType.BITS)]

    def registers() -> list[SimData]:  # 45.x %RH, 21.5 °C, 60x ppm
        return [SimData(0, values=[450 + unit, 215, 600 + unit], datatype=DataType.REGISTERS)]

    return SimDevice(id=unit, simdata=(bits(), bits(), registers(), registers()))


def _config(folder: Path, cable: _Cable, broker: MosquittoProcess) -> Path:
    devices = [
        {"unit": u, "profile": "air_sensor", "sensor": f"room-{u}", "interval": INTERVAL_S}
        for u in range(1, DEVICES + 1)
    ]
    config = {
        "site": "bench-modbus",
        "gateway": "gw1",
        "state_dir": str(folder / "state"),
        "broker": {"host": broker.host, "port": broker.port, "topic_prefix": "bench"},
        "modbus": {
            "profile_dir": str(ROOT / "config" / "modbus"),
            "ports": [{"name": "rs485-1", "path": cable.gateway_path, "devices": devices}],
        },
    }
    (folder / "state").mkdir(exist_ok=True)
    path = folder / "gateway-modbus.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class _Ages:
    """Subscribes to the air topics; the age of each reading when it arrived."""

    def __init__(self, broker: MosquittoProcess) -> None:
        #: (ts, arrival) of each air reading, wall-clock seconds.
        self.seen: list[tuple[float, float]] = []
        self.counting = False
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-modbus-ages")
        client.on_message = self._on_message
        client.connect(broker.host, broker.port)
        client.subscribe("bench/v1/bench-modbus/gw1/air/+", qos=1)
        client.loop_start()
        self._client = client

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        if not self.counting:
            return
        ts = datetime.fromisoformat(json.loads(message.payload)["ts"]).timestamp()
        self.seen.append((ts, now))

    def window(self, start: float, end: float) -> list[float]:
        """The ages of the readings stamped from ``start`` to ``end``."""
        return [arrived - ts for ts, arrived in self.seen if start <= ts < end]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


async def one_run(folder: Path, seconds: float, warmup: float) -> dict[str, float]:
    os.makedirs(folder, exist_ok=True)
    broker = MosquittoProcess(folder / "mosquitto").start()
    cable = _Cable()
    server = ModbusSerialServer(
        [_sim_device(u) for u in range(1, DEVICES + 1)],
        framer=FramerType.RTU,
        port=cable.device_path,
        baudrate=9600,
    )
    await server.serve_forever(background=True)
    cable.start()
    ages = _Ages(broker)
    config = _config(folder, cable, broker)
    gateway = Child(
        "gateway",
        [sys.executable, "-m", "qihe_cli.main", "gateway", "run", "--config", str(config)],
        folder / "gateway.log",
    )
    try:
        await gateway.start()
        await asyncio.sleep(warmup)
        before = proc_figures(gateway.pid).cpu_s
        ages.counting = True
        started, wall_start = time.monotonic(), time.time()
        await asyncio.sleep(seconds)
        wall = time.monotonic() - started
        cpu = proc_figures(gateway.pid).cpu_s - before
        await asyncio.sleep(2.0)  # the window's last readings: past the next commit
        ages.counting = False
    finally:
        await gateway.stop()
        ages.close()
        await server.shutdown()  # type: ignore[no-untyped-call]
        cable.close()
        broker.stop()
    window = ages.window(wall_start, wall_start + seconds)
    if not window:
        raise RuntimeError(f"no readings arrived; see {folder / 'gateway.log'}")
    return {
        "cpu_pct": cpu / wall * 100,
        "age_p50_ms": statistics.median(window) * 1000,
        "age_p95_ms": (percentile(window, 95) or 0.0) * 1000,
        "age_max_ms": max(window) * 1000,
        "per_s": len(window) / seconds,
    }


def rows(results: Sequence[dict[str, float]]) -> list[Row]:
    def figure(key: str) -> list[float]:
        return [r[key] for r in results]

    name = "modbus_polling"
    return [
        Row(name, "网关 CPU gateway CPU, 8 devices at 1 s", median(figure("cpu_pct")), "% core",
            runs=figure("cpu_pct"), target=Target("value", "<=", 10)),
        Row(name, "读数时龄 age when published, median", median(figure("age_p50_ms")), "ms",
            runs=figure("age_p50_ms")),
        Row(name, "读数时龄 age when published, p95", median(figure("age_p95_ms")), "ms",
            runs=figure("age_p95_ms"), target=Target("value", "<=", 2000)),
        Row(name, "读数时龄 age when published, max", median(figure("age_max_ms")), "ms",
            runs=figure("age_max_ms")),
        Row(name, "读数 air readings per second", median(figure("per_s")), "/s",
            runs=figure("per_s"), limit=DEVICES / INTERVAL_S, limit_label="8 devices at 1 s",
            target=Target("ratio", ">=", 0.95)),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.modbus_polling", description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--profile", type=Path, help="(not used by this scenario)")
    args = parser.parse_args(argv)

    async def run(folder: Path) -> list[dict[str, Any]]:
        results = []
        for n in range(args.runs):
            result = await one_run(folder / f"run-{n}", args.seconds, args.warmup)
            print(json.dumps(result), flush=True)
            results.append(result)
        return results

    results = run_in_folder(run, args.keep, prefix="qihe-bench-modbus-")
    table = rows(results)
    for row in table:
        print(f"{row.metric}: {row.value:.2f} {row.unit} (runs {row.runs})")
    if args.json is not None:
        write_rows(args.json, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
