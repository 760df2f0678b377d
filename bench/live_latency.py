"""Seat change on a board → its event on a subscribed page: latency through the whole pipe.

    .venv/bin/python -m bench.live_latency          # 50 sites × 80 seats, about 5 minutes
    .venv/bin/python -m bench.live_latency --sites 50 --seats 80 --rate-per-seat-hour 2 \\
        --duration 30 --runs 3 --json /tmp/live_latency.json

Per commit interval, one stack: a private Mosquitto, the live service (``qihe live``) in
its own process, and one gateway per site (plain :class:`edge.gateway.Gateway` objects,
``--gateway-processes`` child processes sharing them) reading that site's emulated boards
on ptys. A board carries at most 64 seats (a HELLO lists every sensor in one frame), so an
80-seat site has two boards of 40 on its gateway. This process holds the boards (the pty
masters) and one stream client of ``/api/v1/events`` (every site, seat events included),
so a change's time on the board (t0) and its event's arrival (t1) are read from one clock.
A subscriber on the broker times each seat reading as it is published, which splits
t1 - t0 into board → broker and broker → page.

Changes are Poisson-timed (seeded RNG); each flips a random seat of a random site whose
previous change has already arrived, so every event is matched to its own change by
(site, seat, new state). A change whose event has not come within ``--lost-after`` is lost.
Each scenario's figures are the median over ``--runs`` measuring windows; windows of the
scenarios that share a commit interval alternate on the same stack.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import logging
import math
import random
import signal
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.harness import Child, kill_leftovers, machine, median, percentile, site_entry
from central.live.client import StreamEvent, read_events
from devstack import MosquittoProcess, free_port
from firmware_bridge.emulator import MAX_SEATS, BookHouseEmulator, EmulatorConfig, PtyPort

__all__ = ["main"]

PREFIX = "bench"
GATEWAY = "gw1"
#: Seat readings as published by the gateways (the broker-side timestamp of the split).
SEAT_FILTER = f"{PREFIX}/v1/+/{GATEWAY}/seat/+"
START_TIMEOUT = 90.0


# The layout: sites, boards, seats ---------------------------------------------------


@dataclass(slots=True)
class Seat:
    site: str
    board: BookHouseEmulator
    number: int  # 1-based on its board
    id: str  # the sensor id, "{device}.{number}"
    occupied: bool = False


@dataclass(slots=True)
class Site:
    id: str
    devices: list[tuple[str, int]]  # (device id, seats on it)
    boards: list[BookHouseEmulator] = field(default_factory=list)
    ports: list[PtyPort] = field(default_factory=list)
    seats: list[Seat] = field(default_factory=list)


def layout(sites: int, seats: int) -> list[Site]:
    boards = math.ceil(seats / MAX_SEATS)
    out = []
    for n in range(1, sites + 1):
        shares = [seats // boards + (1 if b < seats % boards else 0) for b in range(boards)]
        devices = [(f"s{n:02d}-{chr(ord('a') + b)}", share) for b, share in enumerate(shares)]
        out.append(Site(f"site-{n:02d}", devices))
    return out


def write_setup(
    folder: Path, sites: list[Site], broker: MosquittoProcess, http_port: int, commit: float
) -> tuple[Path, list[Path]]:
    """The live service's config and directory, and one gateway config per site."""
    directory = []
    gateway_configs = []
    for site in sites:
        directory.append(site_entry(site.id, GATEWAY, site.devices))
        state = folder / "gateways" / site.id
        state.mkdir(parents=True)
        config = state / "gateway.yaml"
        serial = [
            {"path": str(folder / "dev" / device), "device": device} for device, _ in site.devices
        ]
        config.write_text(
            yaml.safe_dump(
                {
                    "site": site.id,
                    "gateway": GATEWAY,
                    "state_dir": str(state),
                    "broker": {"host": broker.host, "port": broker.port, "topic_prefix": PREFIX},
                    "serial": serial,
                    "outbox": {"commit_interval": commit},
                }
            )
        )
        gateway_configs.append(config)
    (folder / "sites.yaml").write_text(yaml.safe_dump({"sites": directory}, allow_unicode=True))
    live = folder / "live.yaml"
    live.write_text(
        yaml.safe_dump(
            {
                "sites": "sites.yaml",
                "mqtt": {
                    "host": broker.host,
                    "port": broker.port,
                    "topic_prefix": PREFIX,
                    "client_id": "bench-live",
                },
                "http": {"host": "127.0.0.1", "port": http_port},
            }
        )
    )
    return live, gateway_configs


# The gateway worker (a child process running several gateways) ---------------------


async def _run_gateways(paths: Sequence[str]) -> int:
    """Run one gateway per config until SIGTERM or until stdin closes (our parent is gone)."""
    from edge.config import load_gateway_config
    from edge.gateway import Gateway

    gateways = [Gateway(load_gateway_config(path)) for path in paths]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def orphaned() -> None:
        await stdin.read()
        stop.set()

    async def ready() -> None:
        sources = [s for g in gateways for s in g.serial_sources]
        await asyncio.gather(*(s.connected.wait() for s in sources))
        await asyncio.gather(*(g.publisher.connected.wait() for g in gateways))
        print("ready", flush=True)

    tasks = [asyncio.create_task(g.run(), name=f"gateway-{g.config.site}") for g in gateways]
    helpers = [
        asyncio.create_task(orphaned(), name="stdin-watch"),
        asyncio.create_task(ready(), name="ready"),
    ]
    stopping = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
    crashed = [t for t in tasks if t in done]
    for task in [*tasks, *helpers, stopping]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            print(f"{task.get_name()} failed: {result!r}", file=sys.stderr)
    return 1 if crashed else 0


def _worker_main(paths: Sequence[str]) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(_run_gateways(paths))


# Measuring --------------------------------------------------------------------------


@dataclass(slots=True)
class Change:
    site: str
    seat: str
    state: str  # "occupied" or "free"
    t0: float
    t_page: float | None = None  # its seat event arrived
    t_site: float | None = None  # the site summary event after it arrived
    t_broker: float | None = None  # its reading was published to the broker


@dataclass(frozen=True, slots=True)
class Figures:
    """One window's (or the median of several windows') latencies in milliseconds."""

    samples: int
    lost: int
    resyncs: int  # times the stream told this client it fell behind
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    site_p50: float | None
    broker_p50: float | None  # board → broker
    page_p50: float | None  # broker → page


class Window:
    """One measuring window: the changes made, matched to their events as they arrive."""

    def __init__(self, lost_after: float) -> None:
        self.lost_after = lost_after
        self.changes: list[Change] = []
        self.pending: dict[tuple[str, str], Change] = {}
        self._awaiting_site: dict[str, list[Change]] = defaultdict(list)
        #: Set whenever no change is waiting for its event.
        self.settled = asyncio.Event()
        self.resyncs = 0

    def add(self, change: Change) -> None:
        self.changes.append(change)
        self.pending[(change.site, change.seat)] = change
        self.settled.clear()

    def on_event(self, event: StreamEvent, now: float) -> None:
        if event.kind == "seat":
            site, seat = event.data["site"], event.data["seat"]
            change = self.pending.get((site, seat["id"]))
            if change is not None and seat["state"] == change.state:
                change.t_page = now
                del self.pending[(site, seat["id"])]
                self._awaiting_site[site].append(change)
                if not self.pending:
                    self.settled.set()
        elif event.kind == "site":  # its "site" is the summary (the id is in it)
            for change in self._awaiting_site.pop(event.data["site"]["id"], []):
                change.t_site = now
        elif event.kind == "resync":
            self.resyncs += 1

    def figures(self, tap: dict[tuple[str, str, bool], list[float]]) -> Figures:
        """Latencies of the changes whose event came within ``lost_after``; the rest are lost."""
        page, site, broker, hop = [], [], [], []
        for c in self.changes:
            if c.t_page is None or c.t_page - c.t0 > self.lost_after:
                continue
            page.append((c.t_page - c.t0) * 1000)
            if c.t_site is not None:
                site.append((c.t_site - c.t0) * 1000)
            # The first publication of this seat's new state after the change: its reading.
            times = tap.get((c.site, c.seat, c.state == "occupied"), [])
            i = bisect.bisect_left(times, c.t0)
            if i < len(times) and times[i] <= c.t_page:
                broker.append((times[i] - c.t0) * 1000)
                hop.append((c.t_page - times[i]) * 1000)
        page.sort()
        return Figures(
            samples=len(page),
            lost=len(self.changes) - len(page),
            resyncs=self.resyncs,
            p50=percentile(page, 50),
            p90=percentile(page, 90),
            p99=percentile(page, 99),
            max=page[-1] if page else None,
            site_p50=percentile(site, 50),
            broker_p50=percentile(broker, 50),
            page_p50=percentile(hop, 50),
        )


class BrokerTap:
    """Times every seat reading the broker delivers (a paho thread; one monotonic clock)."""

    def __init__(self, broker: MosquittoProcess) -> None:
        self._broker = broker
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, bool], list[float]] = defaultdict(list)
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-tap")
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_connect = lambda client, *_: client.subscribe(SEAT_FILTER, qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        if msg.retain:  # replayed at subscribe, not published now
            return
        data = json.loads(msg.payload)
        with self._lock:
            self._seen[(data["site"], data["sensor"], bool(data["occupied"]))].append(now)

    def start(self) -> None:
        self._client.connect(self._broker.host, self._broker.port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError(f"could not subscribe to {SEAT_FILTER}")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def snapshot(self) -> dict[tuple[str, str, bool], list[float]]:
        with self._lock:
            return {key: list(times) for key, times in self._seen.items()}


class Stack:
    """Broker, live service, gateways and boards for one commit interval; measures windows."""

    def __init__(self, sites: list[Site], tap: BrokerTap, rng: random.Random) -> None:
        self.sites = sites
        self.tap = tap
        self.rng = rng
        self.window: Window | None = None
        self.children: list[Child] = []
        self.listener: asyncio.Task[None] | None = None

    def on_event(self, event: StreamEvent) -> None:
        now = time.monotonic()
        if self.window is not None:
            self.window.on_event(event, now)

    def check_alive(self) -> None:
        """Fail the run if a child process or the event stream ended under it."""
        if self.listener is not None and self.listener.done():
            self.listener.result()  # raises what ended it
            raise RuntimeError("the event stream ended")
        for child in self.children:
            if not child.running:
                raise RuntimeError(f"{child.name} exited; see {child.log}:\n{child.tail()}")

    def _pick(self, window: Window) -> Seat | None:
        for _ in range(100):
            site = self.rng.choice(self.sites)
            seat = self.rng.choice(site.seats)
            if (site.id, seat.id) not in window.pending:
                return seat
        return None

    async def measure(self, rate: float, duration: float, lost_after: float) -> Window:
        """Flip seats at ``rate`` per second (Poisson) for ``duration``; wait for the events."""
        window = self.window = Window(lost_after)
        loop = asyncio.get_running_loop()
        start = due = loop.time()
        while True:
            due += self.rng.expovariate(rate)
            if due - start >= duration:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            seat = self._pick(window)
            if seat is None:
                continue
            seat.occupied = not seat.occupied
            state = "occupied" if seat.occupied else "free"
            change = Change(seat.site, seat.id, state, time.monotonic())
            window.add(change)
            seat.board.set_seat(seat.number, seat.occupied)
        if window.pending:
            left = window.changes[-1].t0 + lost_after - time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, left)):
                    await window.settled.wait()
        self.window = None
        self.check_alive()
        return window


async def _wait_seats_known(http: httpx.AsyncClient, sites: list[Site]) -> None:
    """Every site online and every seat free (the boards' power-up state) in the live service."""
    expected = {site.id: len(site.seats) for site in sites}
    async with asyncio.timeout(START_TIMEOUT):
        while True:
            listing = (await http.get("/api/v1/sites")).json()["sites"]
            ready = {
                s["id"]
                for s in listing
                if s["online"] and s["seats"]["free"] == expected.get(s["id"])
            }
            if ready >= set(expected):
                return
            await asyncio.sleep(0.5)


async def _wait_healthy(http: httpx.AsyncClient, live: Child) -> None:
    async with asyncio.timeout(START_TIMEOUT):
        while True:
            if not live.running:
                raise RuntimeError(f"the live service exited; see {live.log}:\n{live.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/healthz")).json().get("broker_connected"):
                    return
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running_stack(
    folder: Path, sites: list[Site], commit: float, processes: int, seed: int
) -> AsyncIterator[Stack]:
    """Everything for one commit interval, up and warmed (every seat known); torn down after."""
    async with contextlib.AsyncExitStack() as exits:
        broker = MosquittoProcess(folder / "mosquitto")
        await asyncio.to_thread(broker.start)
        exits.callback(broker.stop)
        tap = BrokerTap(broker)
        stack = Stack(sites, tap, random.Random(seed))
        http_port = free_port()
        live_config, gateway_configs = write_setup(folder, sites, broker, http_port, commit)

        argv = [sys.executable, "-m", "qihe_cli.main", "live", "--config", str(live_config)]
        live = Child("live service", argv, folder / "live.log")
        stack.children.append(live)
        exits.push_async_callback(live.stop)
        await live.start()
        http = await exits.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=10)
        )
        await _wait_healthy(http, live)

        tap.start()
        exits.callback(tap.stop)

        for site in sites:
            for device, count in site.devices:
                port = PtyPort(folder / "dev" / device)
                await port.open()
                exits.callback(port.close)
                board = BookHouseEmulator(
                    EmulatorConfig(
                        device_id=device,
                        seats=count,
                        simulate=False,
                        speed=1,
                        tick=timedelta(seconds=1),  # scripted: ticks only bring heartbeats
                        journal_limit=1000,
                    )
                )
                site.ports.append(port)
                site.boards.append(board)
                site.seats += [
                    Seat(site.id, board, n, f"{device}.{n}") for n in range(1, count + 1)
                ]

        per = math.ceil(len(gateway_configs) / processes)
        workers = []
        for w, first in enumerate(range(0, len(gateway_configs), per)):
            paths = [str(p) for p in gateway_configs[first : first + per]]
            argv = [sys.executable, "-m", "bench.live_latency", "--gateways-worker", *paths]
            worker = Child(f"gateway worker {w}", argv, folder / f"gateways-{w}.log")
            stack.children.append(worker)
            exits.push_async_callback(worker.stop)
            await worker.start(pipes=True)
            workers.append(worker)
        # pyserial empties a port's input when it opens it: boards power up once read.
        async with asyncio.timeout(START_TIMEOUT):
            await asyncio.gather(*(w.wait_line("ready") for w in workers))
        for site in sites:
            for board, port in zip(site.boards, site.ports, strict=True):
                await exits.enter_async_context(board.attach(port))
        await _wait_seats_known(http, sites)

        stream_ready = asyncio.Event()

        async def listen() -> None:
            async for event in read_events(http, "/api/v1/events"):
                if event.kind == "ready":
                    stream_ready.set()
                stack.on_event(event)

        listener = stack.listener = asyncio.create_task(listen(), name="event-stream")

        async def stop_listening() -> None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await listener

        exits.push_async_callback(stop_listening)
        async with asyncio.timeout(10):
            await stream_ready.wait()
        yield stack


# Running the scenarios --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    rate: float  # changes per second, all sites together
    commit: float  # the gateways' outbox.commit_interval, seconds


def summarise(runs: list[Figures]) -> Figures:
    return Figures(
        samples=sum(r.samples for r in runs),
        lost=sum(r.lost for r in runs),
        resyncs=sum(r.resyncs for r in runs),
        p50=median([r.p50 for r in runs]),
        p90=median([r.p90 for r in runs]),
        p99=median([r.p99 for r in runs]),
        max=median([r.max for r in runs]),
        site_p50=median([r.site_p50 for r in runs]),
        broker_p50=median([r.broker_p50 for r in runs]),
        page_p50=median([r.page_p50 for r in runs]),
    )


async def run_all(
    args: argparse.Namespace, scenarios: list[Scenario], keep: Path
) -> dict[Scenario, list[Figures]]:
    results: dict[Scenario, list[Figures]] = {s: [] for s in scenarios}
    commits = sorted({s.commit for s in scenarios}, reverse=True)
    for c, commit in enumerate(commits):
        group = [s for s in scenarios if s.commit == commit]
        folder = keep / f"commit-{commit:g}s"
        folder.mkdir(parents=True)
        print(f"starting {args.sites} sites, outbox commit every {commit:g} s …", file=sys.stderr)
        sites = layout(args.sites, args.seats)
        async with running_stack(
            folder, sites, commit, args.gateway_processes, args.seed + c
        ) as stack:
            for run in range(args.runs):
                for scenario in group:
                    window = await stack.measure(scenario.rate, args.duration, args.lost_after)
                    figures = window.figures(stack.tap.snapshot())
                    results[scenario].append(figures)
                    print(
                        f"  run {run + 1} {scenario.name} ({scenario.rate:.1f}/s): "
                        f"{figures.samples} samples, {figures.lost} lost, "
                        f"p50 {_ms(figures.p50)}, p99 {_ms(figures.p99)}, "
                        f"resyncs {figures.resyncs}",
                        file=sys.stderr,
                        flush=True,
                    )
    return results


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def markdown_table(results: dict[Scenario, list[Figures]], runs: int) -> str:
    lines = [
        f"| scenario | changes/s | outbox commit | samples ({runs} runs) | lost | p50 | p90 "
        "| p99 | max | site event p50 | board → broker p50 | broker → page p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario, figures in results.items():
        f = summarise(figures)
        lines.append(
            f"| {scenario.name} | {scenario.rate:.1f} | {scenario.commit:g} s | {f.samples:,} "
            f"| {f.lost} | {_ms(f.p50)} | {_ms(f.p90)} | {_ms(f.p99)} | {_ms(f.max)} "
            f"| {_ms(f.site_p50)} | {_ms(f.broker_p50)} | {_ms(f.page_p50)} |"
        )
    return "\n".join(lines)


def commit_share(results: dict[Scenario, list[Figures]]) -> str:
    """How much of the p50 is the wait for the gateway's next outbox commit."""
    lines = []
    for scenario, figures in results.items():
        p50 = summarise(figures).p50
        if p50:
            wait = scenario.commit / 2 * 1000  # a reading arrives uniformly within an interval
            lines.append(
                f"{scenario.name} at commit_interval {scenario.commit:g} s: the mean wait for "
                f"the next commit ({wait:,.0f} ms) is {wait / p50:.0%} of the p50"
            )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.live_latency", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--seats", type=int, default=80, help="seats per site")
    parser.add_argument(
        "--rate-per-seat-hour",
        type=float,
        default=2.0,
        help="changes per seat per hour at a busy time (someone sits, someone leaves)",
    )
    parser.add_argument("--rush", type=float, default=10.0, help="the rush rate, × the normal")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per window")
    parser.add_argument("--runs", type=int, default=3, help="windows per scenario")
    parser.add_argument(
        "--commit-interval", type=float, default=1.0, help="gateway outbox.commit_interval, s"
    )
    parser.add_argument(
        "--fast-commit",
        type=float,
        default=0.1,
        help="also run the rush rate with this commit interval (0: do not)",
    )
    parser.add_argument("--gateway-processes", type=int, default=5)
    parser.add_argument("--lost-after", type=float, default=10.0, help="seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep logs and state under DIR")
    parser.add_argument("--gateways-worker", nargs="+", metavar="CONFIG", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.gateways_worker:
        return _worker_main(args.gateways_worker)
    normal = args.sites * args.seats * args.rate_per_seat_hour / 3600
    scenarios = [
        Scenario("normal", normal, args.commit_interval),
        Scenario("rush", normal * args.rush, args.commit_interval),
    ]
    if args.fast_commit > 0:
        scenarios.append(Scenario("rush", normal * args.rush, args.fast_commit))
    info = machine()
    # A plain kill ends a run as Ctrl-C does: every child stopped, the folder removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    command = " ".join(["python -m bench.live_latency", *(argv or sys.argv[1:])])
    try:
        with contextlib.ExitStack() as cleanup:
            if args.keep is not None:
                keep = args.keep
                keep.mkdir(parents=True, exist_ok=True)
            else:
                keep = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="qihe-live-")))
            results = asyncio.run(run_all(args, scenarios, keep))
    except KeyboardInterrupt:
        print("interrupted; every child process was stopped", file=sys.stderr)
        return 130
    finally:
        kill_leftovers()
    print(
        f"Run {info['date']}: {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
        f"Mosquitto {info['mosquitto']}; {args.sites} sites × {args.seats} seats\n"
    )
    print(markdown_table(results, args.runs))
    print(commit_share(results))
    if args.json is not None:
        document = {
            "machine": info,
            "command": command,
            "scenarios": [
                {
                    **asdict(scenario),
                    "median": asdict(summarise(figures)),
                    "runs": [asdict(f) for f in figures],
                }
                for scenario, figures in results.items()
            ],
        }
        args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
