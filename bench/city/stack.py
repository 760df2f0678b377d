"""The city's processes: a private Mosquitto and InfluxDB, ``qihe live``, the consumer(s)
and the load generators, with the configs they are started on.

The live service and the consumer run on the sample configs of ``config/`` with this stack's
addresses; the generators and consumers are :class:`Worker` processes
(``python -m bench.city.generator``, ``python -m bench.city.consumer_worker``) that answer
each JSON line on their stdin with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.city.sites import GATEWAY, PREFIX, SiteLayout, layout
from bench.harness import Child, proc_figures, site_entry
from devstack import InfluxdProcess, MosquittoProcess, free_port

__all__ = [
    "SAVES",
    "START_TIMEOUT_S",
    "CityBroker",
    "CityStack",
    "Worker",
    "cancel",
    "drop_session",
    "raise_open_files",
    "write_consumer_config",
    "write_live_config",
]

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0


# Configs -----------------------------------------------------------------------------------


#: ``--persistence``: when the broker writes its snapshot (Mosquitto 2.0 persists by snapshots).
SAVES = {
    # Every second, as the devstack does (see the package's notes).
    "second": ["autosave_interval 1"],
    # After every change, as deploy/mosquitto/qihe.conf does.
    "deploy": ["autosave_on_changes true", "autosave_interval 1"],
    # Only when the broker stops: what the city costs without snapshots (with 32,000
    # retained seats each one stalls the broker for tens of ms; docs/benchmarks.md).
    "exit": ["autosave_interval 0"],
}


class CityBroker(MosquittoProcess):
    """Mosquitto with the limits of ``deploy/mosquitto/qihe.conf``, anonymous on loopback.

    ``persistence``: a key of :data:`SAVES`. ``nodelay``: ``set_tcp_nodelay true``.
    """

    def __init__(self, folder: Path, *, persistence: str, nodelay: bool) -> None:
        super().__init__(folder)
        self.save = SAVES[persistence]
        self.nodelay = nodelay

    def config_text(self) -> str:
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        return "\n".join(
            [
                *self.listener_config(),
                # A slow or absent consumer's QoS 1 queue is bounded by bytes, not by a
                # count (1000 by default, which silently drops QoS 1 beyond it).
                "max_queued_messages 0",
                "max_queued_bytes 2000000000",
                # Gateways keep at most 100 QoS 1 messages in flight; so does the broker.
                "max_inflight_messages 100",
                "persistence true",
                f"persistence_location {data}/",
                *self.save,
                "persistent_client_expiration 2d",
                # One connection per gateway: no cap but the open-file limit (raised at start).
                "max_connections -1",
                *(["set_tcp_nodelay true"] if self.nodelay else []),
                *(["user root"] if os.geteuid() == 0 else []),
                "connection_messages false",
                "log_dest stdout",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                "",
            ]
        )


def write_live_config(folder: Path, sites: list[SiteLayout], broker: CityBroker) -> Path:
    directory = []
    for site in sites:
        directory.append(site_entry(site.id, GATEWAY, site.devices))
    (folder / "sites.yaml").write_text(yaml.safe_dump({"sites": directory}, allow_unicode=True))
    config = yaml.safe_load((REPO / "config" / "live.yaml").read_text())
    config["sites"] = "sites.yaml"
    config["mqtt"].update(
        host=broker.host, port=broker.port, topic_prefix=PREFIX, client_id="bench-live"
    )
    config["http"].update(host="127.0.0.1", port=free_port())
    path = folder / "live.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_consumer_config(
    folder: Path, name: str, broker: CityBroker, influx: InfluxdProcess, database: str, group: str
) -> Path:
    config = yaml.safe_load((REPO / "config" / "consumer.yaml").read_text())
    config["mqtt"].update(
        host=broker.host, port=broker.port, topic_prefix=PREFIX, client_id=name, connect_timeout=30
    )
    if group:
        config["mqtt"]["shared_group"] = group
    config["influx"].update(url=influx.url, database=database)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def drop_session(broker: CityBroker, client_id: str) -> None:
    """End a consumer's persistent session: else the broker queues for it for two days."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 0
    client.connect(broker.host, broker.port, clean_start=True, properties=properties)
    client.loop_start()
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()


def raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        if want < needed:
            print(f"open-file limit {want} < {needed}: connections may fail", file=sys.stderr)


# Workers ----------------------------------------------------------------------------------


class Worker:
    """A child process answering each JSON line on its stdin with one JSON line."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.child = Child(name, argv, log)
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int:
        return self.child.pid

    async def start(self) -> dict[str, Any]:
        await self.child.start(pipes=True)
        async with asyncio.timeout(START_TIMEOUT_S):
            return await self._reply()

    async def _reply(self) -> dict[str, Any]:
        process = self.child.process
        assert process is not None and process.stdout is not None
        line = await process.stdout.readline()
        if not line:
            raise RuntimeError(
                f"{self.child.name} exited; see {self.child.log}:\n{self.child.tail()}"
            )
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def request(self, **command: Any) -> dict[str, Any]:
        process = self.child.process
        assert process is not None and process.stdin is not None
        async with self._lock:
            process.stdin.write((json.dumps(command) + "\n").encode())
            await process.stdin.drain()
            async with asyncio.timeout(30):
                return await self._reply()

    async def close(self) -> None:
        """Close its stdin (a clean stop), then SIGTERM if it lingers."""
        process = self.child.process
        if process is None or process.returncode is not None:
            return
        assert process.stdin is not None
        process.stdin.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await process.wait()
        await self.child.stop()


# Processes ---------------------------------------------------------------------------------


class CityStack:
    """The running processes: what they are, whether they still run, what they used."""

    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.sites = layout(args.gateways, args.seats)
        self.seats = args.gateways * args.seats
        self.broker = CityBroker(
            folder / "mosquitto",
            persistence=args.persistence,
            nodelay=args.nodelay,
        )
        self.influx = InfluxdProcess(folder / "influxd")
        self.live: Child | None = None
        self.http: httpx.AsyncClient | None = None  # the live service
        self.generators: list[Worker] = []
        #: Each generator's share of the seats (and so of the seat changes).
        self.seat_share: list[float] = []
        self.consumers: list[Worker] = []
        #: Background tasks that must not end while the stack runs.
        self.tasks: list[asyncio.Task[None]] = []

    def pids(self) -> dict[str, list[int]]:
        assert self.live is not None and self.broker._proc is not None
        assert self.influx._proc is not None
        return {
            "broker": [self.broker._proc.pid],
            "consumer": [w.pid for w in self.consumers],
            "live": [self.live.pid],
            "influxd": [self.influx._proc.pid],
            "generator": [w.pid for w in self.generators],
            "bench client": [os.getpid()],
        }

    def cpu_seconds(self) -> dict[str, float]:
        out = {}
        for name, pids in self.pids().items():
            total = 0.0
            for pid in pids:
                with contextlib.suppress(OSError):
                    total += proc_figures(pid).cpu_s
            out[name] = total
        return out

    def memory(self) -> dict[str, float]:
        assert self.live is not None and self.broker._proc is not None
        live = proc_figures(self.live.pid)
        broker = proc_figures(self.broker._proc.pid)
        return {
            "live_rss_mb": live.vm_rss_bytes / 1e6,
            "live_hwm_mb": live.vm_hwm_bytes / 1e6,
            "broker_rss_mb": broker.vm_rss_bytes / 1e6,
            "broker_hwm_mb": broker.vm_hwm_bytes / 1e6,
        }

    async def ask_generators(self, **command: Any) -> list[dict[str, Any]]:
        """Send every generator ``command``; their replies, in order."""
        return list(await asyncio.gather(*(g.request(**command) for g in self.generators)))

    async def ask_consumers(self, **command: Any) -> list[dict[str, Any]]:
        """Send every consumer ``command``; their replies, in order."""
        return list(await asyncio.gather(*(c.request(**command) for c in self.consumers)))

    def check_alive(self) -> None:
        for task in self.tasks:
            if task.done():
                task.result()
                raise RuntimeError(f"{task.get_name()} ended")
        children = [self.live, *(w.child for w in self.generators + self.consumers)]
        for child in children:
            if child is not None and not child.running:
                raise RuntimeError(f"{child.name} exited; see {child.log}:\n{child.tail()}")
        if not self.broker.running:
            raise RuntimeError(f"the broker exited; see {self.broker.log_path}")

    async def start_services(self, exits: contextlib.AsyncExitStack) -> None:
        """The broker and InfluxDB, then the live service, once it is connected."""
        folder = self.folder
        await asyncio.gather(
            asyncio.to_thread(self.broker.start), asyncio.to_thread(self.influx.start)
        )
        exits.callback(self.influx.stop)
        exits.callback(self.broker.stop)

        live_config = write_live_config(folder, self.sites, self.broker)
        port = yaml.safe_load(live_config.read_text())["http"]["port"]
        argv = [sys.executable, "-m", "qihe_cli.main", "live", "--config", str(live_config)]
        self.live = Child("live service", argv, folder / "live.log")
        exits.push_async_callback(self.live.stop)
        await self.live.start()
        self.http = await exits.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
        )
        await self._wait_live_healthy()

    async def _wait_live_healthy(self) -> None:
        assert self.http is not None and self.live is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                if not self.live.running:
                    raise RuntimeError(f"the live service exited:\n{self.live.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await self.http.get("/healthz")).json().get("broker_connected"):
                        return
                await asyncio.sleep(0.2)

    async def start_generators(self, exits: contextlib.AsyncExitStack) -> None:
        """``--generator-processes`` generators, the sites dealt out among them (not connected
        yet: they connect on ``start``)."""
        args, folder = self.args, self.folder
        count = max(1, min(args.generator_processes, len(self.sites)))
        for w in range(count):
            mine = self.sites[w::count]
            plan = {
                "host": self.broker.host,
                "port": self.broker.port,
                "prefix": PREFIX,
                "inflight": args.inflight,
                "nodelay": args.nodelay,
                "keepalive": 30,
                "report_interval": args.report_interval,
                "occupied_share": 0.3,
                "seed": args.seed + w,
                "sites": [{"id": s.id, "devices": s.devices} for s in mine],
            }
            path = folder / f"generator-{w}.json"
            path.write_text(json.dumps(plan))
            argv = [sys.executable, "-m", "bench.city.generator", str(path)]
            worker = Worker(f"generator {w}", argv, folder / f"generator-{w}.log")
            self.generators.append(worker)
            exits.push_async_callback(worker.close)
            await worker.start()
            self.seat_share.append(sum(n for s in mine for _, n in s.devices) / self.seats)

    async def start_consumers(
        self, exits: contextlib.AsyncExitStack, names: list[str], *, database: str, group: str
    ) -> list[Worker]:
        """Consumers named ``names`` (their client ids), writing to ``database``; sharing one
        subscription as ``group`` unless it is empty. They replace the current ones."""
        workers = []
        for name in names:
            path = write_consumer_config(
                self.folder, name, self.broker, self.influx, database, group
            )
            argv = [sys.executable, "-m", "bench.city.consumer_worker", str(path)]
            worker = Worker(name, argv, self.folder / f"{name}.log")
            exits.push_async_callback(worker.close)
            workers.append(worker)
        await asyncio.gather(*(w.start() for w in workers))
        self.consumers = workers
        return workers


async def cancel(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
        await task
