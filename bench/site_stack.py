"""The stack ``bench/site_load.py`` measures: central services, and the gateway on the boards.

:func:`central_stack` starts a private Mosquitto and InfluxDB (``devstack``),
``qihe consumer run`` and ``qihe live`` as children with the settings of
``config/consumer.yaml`` and ``config/live.yaml`` (pointed at the private servers), and a
:class:`Tap` on the broker. :func:`gateway_phase` runs the gateway in a process of its own
(``python -m bench.site_worker``) with ``config/gateway-taoyuan.yaml`` on the site's
ports, except ``clock.require_sync`` (this machine's kernel clock is not NTP-disciplined:
the gateway would hold every reading) and the clock scaling, and powers the boards up on
them. A :class:`~bench.harness.NotifySocket` stands in for systemd, so the watchdog pings
as under ``deploy/pi/qihe-gateway.service``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.harness import Child, NotifySocket
from bench.site_traffic import BACK_DOOR, BOARD_SEATS, BOARDS, ENTRANCE_BOARD, device
from devstack import InfluxdProcess, MosquittoProcess, free_port
from firmware_bridge.emulator import BookHouseEmulator, PtyPort

__all__ = [
    "DATABASE",
    "GATEWAY",
    "PREFIX",
    "SITE",
    "Central",
    "GatewayProcess",
    "Phase",
    "Tap",
    "central_stack",
    "gateway_config",
    "gateway_phase",
    "write_central_configs",
]

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "bench"
SITE = "bench-taoyuan"
GATEWAY = "gw1"
DATABASE = "qihe"  # config/consumer.yaml's
#: systemd's WatchdogSec in deploy/pi/qihe-gateway.service.
WATCHDOG_S = 30.0
START_TIMEOUT = 60.0


# Configs -------------------------------------------------------------------------------


def _sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "config" / name).read_text(encoding="utf-8"))
    return data


def _dump(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def gateway_config(
    folder: Path, broker: MosquittoProcess, ports: Sequence[Path], speed: float
) -> dict[str, Any]:
    """The sample gateway config for this site, its periods divided by ``speed``."""
    config = _sample("gateway-taoyuan.yaml")
    config.update(site=SITE, gateway=GATEWAY, state_dir=str(folder / "gateway"))
    config["broker"].update(
        host=broker.host,
        port=broker.port,
        topic_prefix=PREFIX,
        keepalive=config["broker"]["keepalive"] / speed,
    )
    config["serial"] = [
        {"path": str(port), "device": device(b), "baudrate": 115200} for b, port in enumerate(ports)
    ]
    assert [g["sensor"] for g in config["gpio"]] == [BACK_DOOR]
    config["outbox"]["commit_interval"] = config["outbox"]["commit_interval"] / speed
    config["link_report_interval"] = config["link_report_interval"] / speed
    # require_sync would hold every reading here (the kernel says the clock is unsynced).
    # On a Pi it matters only until NTP has synced: then the guard stops polling.
    config["clock"] = {"require_sync": False, "poll": 1.0 / speed}
    return config


def write_central_configs(
    folder: Path, broker: MosquittoProcess, influxd: InfluxdProcess, http_port: int
) -> tuple[Path, Path]:
    """The consumer's and the live service's configs (and the site directory)."""
    consumer = _sample("consumer.yaml")
    consumer["mqtt"].update(host=broker.host, port=broker.port, topic_prefix=PREFIX)
    consumer["influx"].update(url=influxd.url)
    grids = [
        {
            "gateway": GATEWAY,
            "device": device(b),
            "count": BOARD_SEATS,
            "cols": 6,
            "label_prefix": BOARDS[b].upper(),
            "first_row": 1 + b * math.ceil(BOARD_SEATS / 6),
        }
        for b in range(len(BOARDS))
    ]
    site = {
        "id": SITE,
        "name": "淇河书屋·桃园站（测试）",
        "name_en": "Qihe Book House, Taoyuan (bench)",
        # Open around the clock: the live service reads the real clock, not the emulated one.
        "opening_hours": {"daily": "00:00-24:00"},
        "seat_grids": grids,
        "doors": [
            {
                "gateway": GATEWAY,
                "sensor": f"{device(ENTRANCE_BOARD)}.1",
                "label": "正门 Main door",
            },
            {"gateway": GATEWAY, "sensor": BACK_DOOR, "label": "后门 Back door"},
        ],
    }
    _dump(folder / "sites.yaml", {"timezone": "Asia/Shanghai", "sites": [site]})
    live = _sample("live.yaml")
    live["sites"] = "sites.yaml"
    live["mqtt"].update(host=broker.host, port=broker.port, topic_prefix=PREFIX)
    live["http"].update(port=http_port)
    return _dump(folder / "consumer.yaml", consumer), _dump(folder / "live.yaml", live)


# What the gateway publishes, as the broker delivers it -----------------------------------


class Tap:
    """Counts the gateway's messages by kind and times its seat readings (a paho thread)."""

    def __init__(self, broker: MosquittoProcess) -> None:
        self._broker = broker
        self._lock = threading.Lock()
        self._kinds: Counter[str] = Counter()
        self._seats: dict[tuple[str, bool], list[float]] = defaultdict(list)
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-tap")
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        topic = f"{PREFIX}/v1/{SITE}/{GATEWAY}/#"
        self._client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        if msg.retain:  # replayed at subscribe, not published now
            return
        parts = msg.topic.split("/")
        kind = parts[4] if len(parts) > 4 else "?"
        with self._lock:
            self._kinds[kind] += 1
            if kind == "seat":
                data = json.loads(msg.payload)
                self._seats[(data["sensor"], bool(data["occupied"]))].append(now)

    def start(self) -> None:
        self._client.connect(self._broker.host, self._broker.port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the tap could not subscribe")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def kinds(self) -> Counter[str]:
        with self._lock:
            return Counter(self._kinds)

    def published(self, sensor: str, occupied: bool, after: float) -> float | None:
        """When the first reading of ``sensor`` in this state at or after ``after`` came."""
        with self._lock:
            times = self._seats.get((sensor, occupied), [])
            return next((t for t in times if t >= after), None)


# The central stack ------------------------------------------------------------------------


@dataclass(slots=True)
class Central:
    folder: Path
    broker: MosquittoProcess
    influxd: InfluxdProcess
    tap: Tap
    live_http: httpx.AsyncClient
    influx_http: httpx.AsyncClient
    children: list[Child]

    def check_alive(self) -> None:
        for child in self.children:
            if not child.running:
                raise RuntimeError(f"{child.name} exited; see {child.log}:\n{child.tail()}")

    async def influx_rows(self, q: str) -> list[list[Any]]:
        response = await self.influx_http.post(
            "/query", data={"q": q, "db": DATABASE, "epoch": "ns"}
        )
        response.raise_for_status()
        rows: list[list[Any]] = []
        for statement in response.json().get("results", []):
            if "error" in statement:
                raise RuntimeError(f"InfluxQL {q!r}: {statement['error']}")
            for series in statement.get("series", []):
                rows.extend(series["values"])
        return rows


async def _until(what: str, check: Callable[[], Awaitable[bool]], central: Central) -> None:
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not await check():
                central.check_alive()
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise RuntimeError(f"{what} not ready within {START_TIMEOUT:.0f} s") from None


@contextlib.asynccontextmanager
async def central_stack(folder: Path) -> AsyncIterator[Central]:
    """Broker, InfluxDB, consumer, live service and the tap; torn down after."""
    async with contextlib.AsyncExitStack() as exits:
        broker = MosquittoProcess(folder / "mosquitto")
        influxd = InfluxdProcess(folder / "influxd")
        exits.callback(broker.stop)
        exits.callback(influxd.stop)
        await asyncio.gather(asyncio.to_thread(broker.start), asyncio.to_thread(influxd.start))
        http_port = free_port()
        consumer_config, live_config = write_central_configs(folder, broker, influxd, http_port)
        qihe = [sys.executable, "-m", "qihe_cli.main"]
        consumer = Child(
            "consumer",
            [*qihe, "consumer", "run", "--config", str(consumer_config)],
            folder / "consumer.log",
        )
        live = Child(
            "live service", [*qihe, "live", "--config", str(live_config)], folder / "live.log"
        )
        for child in (consumer, live):
            exits.push_async_callback(child.stop)
            await child.start()
        live_http = await exits.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=10)
        )
        influx_http = await exits.enter_async_context(
            httpx.AsyncClient(base_url=influxd.url, timeout=10)
        )
        tap = Tap(broker)
        central = Central(folder, broker, influxd, tap, live_http, influx_http, [consumer, live])

        async def live_up() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return bool((await live_http.get("/healthz")).json().get("broker_connected"))
            return False

        async def consumer_up() -> bool:  # it creates the database at start
            response = await influx_http.post("/query", data={"q": "SHOW DATABASES"})
            return DATABASE in response.text

        await _until("live service", live_up, central)
        await _until("consumer", consumer_up, central)
        await asyncio.to_thread(tap.start)
        exits.callback(tap.stop)
        yield central


# One gateway run: the worker and the boards -----------------------------------------------


class GatewayProcess:
    """The bench's end of ``bench/site_worker.py``: its pid, the back door, its counters."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int:
        return self.child.pid

    async def _send(self, line: str) -> None:
        assert self.child.process is not None and self.child.process.stdin is not None
        self.child.process.stdin.write(f"{line}\n".encode())
        await self.child.process.stdin.drain()

    async def door(self, is_open: bool) -> None:
        async with self._lock:
            await self._send("open" if is_open else "close")

    async def stats(self) -> dict[str, int]:
        async with self._lock:
            await self._send("stats")
            assert self.child.process is not None and self.child.process.stdout is not None
            async with asyncio.timeout(10):
                line = await self.child.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the gateway exited; see {self.child.log}:\n{self.child.tail()}")
        data: dict[str, int] = json.loads(line)
        return data


@dataclass(slots=True)
class Phase:
    gateway: GatewayProcess
    boards: list[BookHouseEmulator]


@contextlib.asynccontextmanager
async def gateway_phase(
    central: Central, name: str, speed: float, boards: list[BookHouseEmulator]
) -> AsyncIterator[Phase]:
    """The worker on these boards, up and heard from; stopped (flushing) after."""
    folder = central.folder / name
    async with contextlib.AsyncExitStack() as exits:
        ports = []
        for b in range(len(boards)):
            port = PtyPort(folder / "dev" / device(b))
            await port.open()
            exits.callback(port.close)
            ports.append(port)
        config = _dump(
            folder / "gateway.yaml",
            gateway_config(
                central.folder, central.broker, [p.link for p in ports if p.link], speed
            ),
        )
        notify = NotifySocket(f"qihe-site-load-{os.getpid()}-{name}")
        notify.start()
        exits.callback(notify.close)
        env = {k: v for k, v in os.environ.items() if k != "WATCHDOG_PID"}
        env.update(NOTIFY_SOCKET=notify.address, WATCHDOG_USEC=str(int(WATCHDOG_S / speed * 1e6)))
        argv = [sys.executable, "-m", "bench.site_worker", str(config)]
        child = Child(f"gateway ({name})", argv, folder / "gateway.log")
        exits.push_async_callback(child.stop)
        await child.start(pipes=True, env=env)
        central.children.append(child)
        exits.callback(central.children.remove, child)
        async with asyncio.timeout(START_TIMEOUT):
            await child.wait_line("ready")  # serial ports open: boards may power up now
        devices_before = central.tap.kinds()["device"]
        for board, port in zip(boards, ports, strict=True):
            await exits.enter_async_context(board.attach(port))
        # Stop the gateway before the boards go: it sees no unplugged ports.
        exits.push_async_callback(child.stop)

        async def heard_all() -> bool:  # every board's HELLO published
            return central.tap.kinds()["device"] - devices_before >= len(boards)

        await _until("boards", heard_all, central)
        yield Phase(GatewayProcess(child), boards)
