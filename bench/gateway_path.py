"""Gateway throughput: the live path to PUBACK, and the drain of a 100,000-reading backlog.

    .venv/bin/python -m bench.gateway_path --runs 3 --json out.json --keep DIR [--profile DIR]

One private Mosquitto (free port, its own folder) with the queue limits of the real
deploy config (``deploy/mosquitto/qihe.conf``: queues bounded by bytes, not by a message
count, 100 messages in flight per client); persistence as the devstack sets it
(``autosave_interval 1``; ``--autosave-on-changes`` adds the deploy's save on every change,
which halves the broker's own rate and so hides the gateway's costs behind it).

**Live path.** A gateway (:class:`edge.gateway.Gateway`, the config built as the tests
build one, the outbox as deployed: WAL, ``synchronous=FULL``, commit every second or 500
readings) runs in a worker process. Its boards are scripted emulators
(:class:`~firmware_bridge.emulator.BookHouseEmulator`, ``simulate=False``) on ptys in this
process, so their CPU is not the gateway's. Each window toggles seats on every board as
fast as the ptys take them (a board's line queues what its pty does not take, and we top
it up while that queue is short, so nothing overflows). The boards outrun the gateway's
publishing: a window's intake ends long before its last PUBACK (both are printed per
run), so the emulator is never the bottleneck. The boards do not hold reports for
REPORT_ACK (``retransmit_after`` off, the emulator's default): a real board with
acknowledged reports does not wait for acks either (its window drops the oldest when
full), so holding would only add emulator work. The worker times every confirmation
(the outbox's ``confirm``, called after the reading's PUBACK; CLOCK_MONOTONIC) and the
figure is readings per second from the first confirmation to the last.

Beside it, alternating run by run, the limit: a bare paho-mqtt client publishing the same
payload bytes (built with the same models) to the same retained topics at QoS 1 with the
same in-flight window (``broker.max_inflight``), from its first publish to its last PUBACK.

**Backlog drain.** An outbox is filled with 100,000 readings (seat changes across 120
seats on three boards and their heartbeats, over hours) while no broker is reachable;
each run copies it into a fresh gateway whose broker is down, starts the broker, and times
from the publisher's connection until the last PUBACK (``len(outbox) == 0``) and until the
commit that deletes the last reading (deletes ride on the outbox's next group commit, at
most ``commit_interval`` later). The limit beside it: a bare paho client publishing the
same packed batches (``encode_batch``) at QoS 1.

``--profile DIR``: one more live window with the gateway's event-loop thread under
pyinstrument (text, HTML and a saved session in DIR; the top self-time functions are
printed), and, if py-spy is installed, one more sampled by py-spy from outside, every
thread (the outbox's SQLite thread too) with a per-thread summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import shutil
import signal
import sqlite3
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.harness import (
    INTERRUPTED,
    Child,
    Row,
    Target,
    machine,
    median,
    proc_figures,
    run_in_folder,
    write_rows,
)
from devstack import MosquittoProcess
from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort
from qihe.contract import (
    HeartbeatReading,
    Reading,
    SeatReading,
    TopicTree,
    encode_batch,
    encode_payload,
)

__all__ = ["main"]

PREFIX = "bench"
SITE = "qibin-taoyuan"
GATEWAY = "gw1"
#: The deploy config's queue limits (deploy/mosquitto/qihe.conf), set here on purpose.
DEPLOY_LIMITS = "\n".join(
    ["max_queued_messages 0", "max_queued_bytes 2000000000", "max_inflight_messages 100"]
)
START_TIMEOUT = 60.0
#: Top up a board's line when fewer frames than this wait for the pty; this many at once.
LINE_LOW, LINE_BURST = 32, 64


def _devices(boards: int) -> list[str]:
    return [f"bench-{chr(ord('a') + b)}" for b in range(boards)]


# The gateway's config ----------------------------------------------------------------


def write_gateway_config(
    folder: Path,
    broker: MosquittoProcess,
    links: Sequence[tuple[Path, str]],
    *,
    max_inflight: int,
    reconnect: float | None = None,
) -> Path:
    """A config as the tests build one; the outbox left at its durable defaults."""
    state = folder / "state"
    state.mkdir(parents=True, exist_ok=True)
    broker_config: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "topic_prefix": PREFIX,
        "max_inflight": max_inflight,
    }
    if reconnect is not None:  # the drain: reconnect soon after the broker is back
        broker_config |= {"reconnect_min": reconnect, "reconnect_max": reconnect * 4}
    config = folder / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": SITE,
                "gateway": GATEWAY,
                "state_dir": str(state),
                "broker": broker_config,
                "serial": [{"path": str(link), "device": device} for link, device in links],
            }
        )
    )
    return config


# The worker: one gateway in its own process, timed from inside ----------------------


class _Meter:
    """Times the outbox's intake and its confirmations (each follows its reading's PUBACK).

    Bench only: wrappers shadow the outbox's ``put`` and ``confirm`` for this one outbox,
    and cost one clock read and a few list operations per reading.
    """

    def __init__(self, outbox: Any) -> None:
        self.outbox = outbox
        self.events: list[tuple[float, int]] = []
        self.commits: list[float] = []
        self.accepted = 0
        self.first_accepted: float | None = None
        self.last_accepted: float | None = None
        self.cpu_at_arm = 0.0
        self.expected = 0
        #: Set when ``expected`` readings came in since arming and every one is confirmed.
        self.done = asyncio.Event()
        #: Set after a commit that left the store empty.
        self.empty = asyncio.Event()
        put, confirm = outbox.put, outbox.confirm

        def timed_put(reading: Any, **kwargs: Any) -> None:
            now = time.monotonic()
            if self.first_accepted is None:
                self.first_accepted = now
            self.last_accepted = now
            self.accepted += 1
            put(reading, **kwargs)

        def timed_confirm(ids: Iterable[int]) -> None:
            ids = list(ids)
            self.events.append((time.monotonic(), len(ids)))
            confirm(ids)
            if self.accepted >= self.expected and len(outbox) == 0:
                self.done.set()

        def committed(_sequences: object) -> None:
            self.commits.append(time.monotonic())
            if outbox.stored == 0:
                self.empty.set()

        outbox.put = timed_put
        outbox.confirm = timed_confirm
        outbox.on_commit(committed)

    def arm(self) -> None:
        self.events.clear()
        self.accepted = 0
        self.first_accepted = self.last_accepted = None
        self.expected = 0
        self.done.clear()
        self.empty.clear()
        self.cpu_at_arm = proc_figures().cpu_s

    async def settled(self, readings: int) -> dict[str, Any]:
        """Once ``readings`` more were accepted and every one is confirmed: the window."""
        self.expected = readings
        if self.accepted >= readings and len(self.outbox) == 0:
            self.done.set()
        await self.done.wait()
        return self.window()

    def window(self) -> dict[str, Any]:
        events = self.events
        return {
            "first": events[0][0] if events else None,
            "first_count": events[0][1] if events else 0,
            "last": events[-1][0] if events else None,
            "confirmed": sum(n for _, n in events),
            "confirms": len(events),
            "cpu_s": proc_figures().cpu_s - self.cpu_at_arm,
            "first_accepted": self.first_accepted,
            "last_accepted": self.last_accepted,
        }


async def _worker(config_path: str, mode: str) -> int:
    """Run one gateway; answer the bench's commands on stdin, one line each."""
    from edge.config import load_gateway_config
    from edge.gateway import Gateway

    gateway = Gateway(load_gateway_config(config_path))
    meter = _Meter(gateway.outbox)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def say(line: str) -> None:
        print(line, flush=True)

    async def serve() -> None:
        await asyncio.gather(*(s.connected.wait() for s in gateway.serial_sources))
        if mode == "live":
            await gateway.publisher.connected.wait()
        if mode == "drain":
            meter.arm()
        say("ready")
        if mode == "drain":
            await gateway.publisher.connected.wait()
            connected = time.monotonic()
            await meter.done.wait()
            await meter.empty.wait()
            say(
                json.dumps(
                    {
                        **meter.window(),
                        "connected": connected,
                        "stored_zero": meter.commits[-1],
                        "batches": gateway.publisher.stats().backlog_batches,
                    }
                )
            )
        profiler: Any = None
        while line := (await stdin.readline()).decode().strip():
            command, *rest = line.split()
            if command == "arm":
                meter.arm()
                if rest:
                    from pyinstrument import Profiler

                    # The whole thread's stack, every task: not just the task that started it.
                    profiler = Profiler(interval=0.0005, async_mode="disabled")
                    profiler.start()
                say("armed")
            elif command == "wait":
                figures = await meter.settled(int(rest[0]))
                if profiler is not None:
                    profiler.stop()
                    figures["profile"] = _write_profile(profiler, Path(rest[1]))
                    profiler = None
                say(json.dumps(figures))
        stop.set()  # stdin closed: our parent is gone

    run = asyncio.create_task(gateway.run(), name="gateway")
    server = asyncio.create_task(serve(), name="commands")
    stopping = asyncio.create_task(stop.wait(), name="stop")
    await asyncio.wait([run, server, stopping], return_when=asyncio.FIRST_COMPLETED)
    for task in (run, server, stopping):
        task.cancel()
    for task, result in zip(
        (run, server),
        await asyncio.gather(run, server, return_exceptions=True),
        strict=True,
    ):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            print(f"{task.get_name()} failed: {result!r}", file=sys.stderr)
            return 1
    return 0


def _write_profile(profiler: Any, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gateway-live.txt").write_text(profiler.output_text(unicode=True, show_all=False))
    (folder / "gateway-live.html").write_text(profiler.output_html())
    # Render again as you like: pyinstrument --load gateway-live.pyisession -r text --show-all
    profiler.last_session.save(str(folder / "gateway-live.pyisession"))
    (folder / "gateway-live-top.txt").write_text(top_costs(profiler.last_session.root_frame()))
    return str(folder)


def top_costs(root: Any, top: int = 30) -> str:
    """Functions by self time (and their inclusive time), as shares of the profiled time.

    Every frame is shown (library code too): on this path the costs are in asyncio,
    aiomqtt and paho as much as in our code.
    """
    own: dict[tuple[str, str, int], float] = {}
    total: dict[tuple[str, str, int], float] = {}

    def walk(frame: Any, above: frozenset[tuple[str, str, int]]) -> None:
        key = (frame.function, frame.file_path_short or "", frame.line_no or 0)
        if key not in above:  # recursion: count a function's time once
            total[key] = total.get(key, 0.0) + frame.time
        children = frame.children
        if not children:
            own[key] = own.get(key, 0.0) + frame.time
        for child in children:
            if child.is_synthetic:  # pyinstrument's "[self]": time in this very function
                own[key] = own.get(key, 0.0) + child.time
            else:
                walk(child, above | {key})

    walk(root, frozenset())
    whole = root.time or 1.0
    lines = [f"{'self':>6} {'incl':>6}  function (of {whole:.2f} s on the event-loop thread)"]
    for key, seconds in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        function, path, line = key
        lines.append(f"{seconds / whole:6.1%} {total[key] / whole:6.1%}  {function}  {path}:{line}")
    return "\n".join(lines) + "\n"


def _worker_main(config: str, mode: str) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(_worker(config, mode))


async def _ask(child: Child, line: str) -> str:
    process = child.process
    assert process is not None and process.stdin is not None and process.stdout is not None
    process.stdin.write(f"{line}\n".encode())
    await process.stdin.drain()
    answer = await process.stdout.readline()
    if not answer:
        raise RuntimeError(f"{child.name} exited; see {child.log}:\n{child.tail()}")
    return answer.decode().strip()


# The boards ---------------------------------------------------------------------------


@dataclass(slots=True)
class Board:
    device: str
    seats: int
    emulator: BookHouseEmulator
    port: PtyPort
    occupied: list[bool] = field(default_factory=list)
    next_seat: int = 0

    def toggle(self, count: int) -> None:
        """Flip ``count`` seats in turn: each flip is one SEAT frame on the line."""
        for _ in range(count):
            seat = self.next_seat
            self.next_seat = (seat + 1) % self.seats
            self.occupied[seat] = not self.occupied[seat]
            self.emulator.set_seat(seat + 1, self.occupied[seat])


@dataclass(frozen=True, slots=True)
class PushFigures:
    frames: int  # frames the boards put on the wire (every one a reading)
    started: float
    seconds: float
    #: Of the top-up rounds, the share that found a board's line still queueing (its pty
    #: full: the gateway was not reading as fast as the boards wrote).
    backed_up_share: float
    max_round_gap_s: float  # the longest pause between top-ups (this process's loop)
    emulator_cpu_s: float


async def push(boards: list[Board], readings: int) -> PushFigures:
    """Put ``readings`` seat changes on the boards' lines as fast as their ptys take them."""
    quota = {b.device: readings // len(boards) for b in boards}
    quota[boards[0].device] += readings - sum(quota.values())
    sent0 = sum(b.emulator.line.counters.sent for b in boards)
    cpu0 = proc_figures().cpu_s
    started = last_round = time.monotonic()
    rounds = backed_up = 0
    max_gap = 0.0
    while any(quota.values()):
        now = time.monotonic()
        max_gap = max(max_gap, now - last_round)
        last_round = now
        rounds += 1
        backed_up += any(b.emulator.line.pending for b in boards if quota[b.device])
        for board in boards:
            left = quota[board.device]
            if left and board.emulator.line.pending < LINE_LOW:
                count = min(LINE_BURST, left)
                board.toggle(count)
                quota[board.device] = left - count
        await asyncio.sleep(0.002)
    # The lines offer no event for "drained"; poll them as the top-ups do.
    while any(b.emulator.line.pending for b in boards):  # noqa: ASYNC110
        await asyncio.sleep(0.002)
    overflow = sum(b.emulator.line.counters.dropped["overflow"] for b in boards)
    if overflow:
        raise RuntimeError(f"the boards' lines overflowed ({overflow} frames dropped)")
    return PushFigures(
        frames=sum(b.emulator.line.counters.sent for b in boards) - sent0,
        started=started,
        seconds=time.monotonic() - started,
        backed_up_share=backed_up / rounds if rounds else 0.0,
        max_round_gap_s=max_gap,
        emulator_cpu_s=proc_figures().cpu_s - cpu0,
    )


# The bare paho client ---------------------------------------------------------------

Message = tuple[str, bytes, bool]  # topic, payload, retain


def bare_publish(broker: MosquittoProcess, messages: Sequence[Message], inflight: int) -> float:
    """Publish at QoS 1 with ``inflight`` awaiting PUBACK; messages per second, first publish
    to last PUBACK. One thread, paho's own loop: the least a client can do per message."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    acked = 0
    last = 0.0
    connected = False

    def on_connect(*_: Any) -> None:
        nonlocal connected
        connected = True

    def on_publish(*_: Any) -> None:
        nonlocal acked, last
        acked += 1
        last = time.monotonic()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    deadline = time.monotonic() + 10
    while not connected:
        if time.monotonic() > deadline:
            raise RuntimeError("the bare client could not connect")
        client.loop(timeout=0.1)
    first = time.monotonic()
    for topic, payload, retain in messages:
        client.publish(topic, payload, qos=1, retain=retain)
    deadline = time.monotonic() + 120
    while acked < len(messages):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bare client got {acked} of {len(messages)} PUBACKs")
        client.loop(timeout=0.1)
    client.disconnect()
    return len(messages) / (last - first)


def seat_messages(devices: list[str], seats: int, count: int) -> list[Message]:
    """The payloads and topics the gateway publishes for ``count`` seat changes."""
    root = TopicTree(PREFIX).gateway_root(SITE, GATEWAY)
    now = datetime.now(UTC)
    out = []
    occupied = {(d, s): False for d in devices for s in range(1, seats + 1)}
    for n in range(count):
        device = devices[n % len(devices)]
        seat = (n // len(devices)) % seats + 1
        occupied[device, seat] = not occupied[device, seat]
        sensor = f"{device}.{seat}"
        reading = SeatReading(
            site=SITE,
            gateway=GATEWAY,
            device=device,
            sensor=sensor,
            ts=now + timedelta(microseconds=n),
            seq=(n // len(devices)) % 0x10000,
            occupied=occupied[device, seat],
        )
        out.append((f"{root}/seat/{sensor}", encode_payload(reading), True))
    return out


# Scenario 1: the live path ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveRun:
    gateway_rate: float  # readings/s, first to last PUBACK
    bare_rate: float
    readings: int
    end_to_end_rate: float  # readings/s, the first frame on a board's line to the last PUBACK
    gateway_cpu_per_reading_us: float
    emulator_cpu_share: float  # of one core, while the boards pushed
    backed_up_share: float  # see PushFigures
    push_s: float  # the boards' first frame → their last
    max_round_gap_s: float
    intake_s: float  # the first frame on a board's line → the last reading accepted
    window_s: float  # the first frame on a board's line → the last PUBACK

    @property
    def intake_bound(self) -> bool:
        """The last PUBACK came right after the last reading: the gateway kept up with the
        boards, which set the pace (an emulator short of CPU); the figure understates it."""
        return self.window_s - self.intake_s < 0.1 * self.window_s


async def _live_window(
    worker: Child, boards: list[Board], readings: int, profile: Path | None = None
) -> tuple[dict[str, Any], PushFigures]:
    await _ask(worker, "arm" if profile is None else f"arm {profile}")
    pushed = await push(boards, readings)
    command = f"wait {pushed.frames}" + ("" if profile is None else f" {profile}")
    async with asyncio.timeout(300):
        answer = json.loads(await _ask(worker, command))
    return answer, pushed


async def run_live(
    args: argparse.Namespace, folder: Path, broker: MosquittoProcess
) -> list[LiveRun]:
    devices = _devices(args.boards)
    runs: list[LiveRun] = []
    async with contextlib.AsyncExitStack() as exits:
        boards: list[Board] = []
        for device in devices:
            port = PtyPort(folder / "dev" / device)
            await port.open()
            exits.callback(port.close)
            emulator = BookHouseEmulator(
                EmulatorConfig(
                    device_id=device,
                    seats=args.seats,
                    simulate=False,
                    speed=1,
                    tick=timedelta(seconds=1),  # scripted: ticks only bring heartbeats
                    journal_limit=1000,
                )
            )
            boards.append(Board(device, args.seats, emulator, port, [False] * args.seats))
        config = write_gateway_config(
            folder / "gateway",
            broker,
            [(b.port.link, b.device) for b in boards if b.port.link is not None],
            max_inflight=args.max_inflight,
        )
        argv = [sys.executable, "-m", "bench.gateway_path", "--worker", str(config), "live"]
        worker = Child("gateway worker", argv, folder / "gateway.log")
        exits.push_async_callback(worker.stop)
        await worker.start(pipes=True)
        async with asyncio.timeout(START_TIMEOUT):
            await worker.wait_line("ready")
        # pyserial empties a port's input when it opens it: boards power up once read.
        for board in boards:
            await exits.enter_async_context(board.emulator.attach(board.port))
        bare_messages = await asyncio.to_thread(seat_messages, devices, args.seats, args.readings)
        await _live_window(worker, boards, args.warmup)
        await asyncio.to_thread(bare_publish, broker, bare_messages[: args.warmup], 100)
        for run in range(args.runs):
            answer, pushed = await _live_window(worker, boards, args.readings)
            bare = await asyncio.to_thread(bare_publish, broker, bare_messages, args.max_inflight)
            figures = _live_figures(answer, pushed, bare)
            runs.append(figures)
            print(
                f"  live run {run + 1}: gateway {figures.gateway_rate:,.0f} readings/s, "
                f"bare client {bare:,.0f}/s (ratio {figures.gateway_rate / bare:.2f}); "
                f"board → PUBACK {figures.end_to_end_rate:,.0f}/s; gateway CPU "
                f"{figures.gateway_cpu_per_reading_us:,.0f} µs/reading; boards pushed for "
                f"{figures.push_s:.2f} s ({figures.emulator_cpu_share:.0%} of a core, backed up "
                f"{figures.backed_up_share:.0%} of top-ups, longest pause "
                f"{figures.max_round_gap_s * 1000:.0f} ms), the gateway took them in "
                f"{figures.intake_s:.2f} s, the last PUBACK at {figures.window_s:.2f} s"
                + (" — INTAKE-BOUND: the boards set the pace" if figures.intake_bound else ""),
                file=sys.stderr,
                flush=True,
            )
        if args.profile is not None:
            answer, pushed = await _live_window(worker, boards, args.readings, args.profile)
            figures = _live_figures(answer, pushed, float("nan"))
            print(
                f"  profiled live run: gateway {figures.gateway_rate:,.0f} readings/s "
                f"(under pyinstrument); profile in {args.profile}",
                file=sys.stderr,
                flush=True,
            )
            await _pyspy_window(worker, boards, args.readings, args.profile)
    return runs


async def _pyspy_window(worker: Child, boards: list[Board], readings: int, folder: Path) -> None:
    """One more window sampled by py-spy from outside: every thread, the outbox's too."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not await asyncio.to_thread(Path(spy).exists):
        print("  py-spy is not installed; no all-threads profile", file=sys.stderr)
        return
    raw = folder / "gateway-live-pyspy.txt"
    argv = ["record", "--pid", str(worker.pid), "--threads", "--nonblocking", "--rate", "250"]
    process = await asyncio.create_subprocess_exec(
        spy,
        *argv,
        "--format",
        "raw",
        "--output",
        str(raw),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(1.0)  # attached and sampling
    await _live_window(worker, boards, readings)
    process.send_signal(signal.SIGINT)
    await process.wait()
    if raw.exists():
        summary = _pyspy_summary(raw.read_text())
        (folder / "gateway-live-pyspy-summary.txt").write_text(summary)
        print(f"  py-spy profile (every thread) in {raw}", file=sys.stderr, flush=True)


def _pyspy_summary(raw: str, top: int = 15) -> str:
    """Samples per thread, and each thread's top functions by self samples."""
    threads: dict[str, int] = {}
    leaves: dict[str, dict[str, int]] = {}
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0]
        threads[thread] = threads.get(thread, 0) + int(count)
        leaf = leaves.setdefault(thread, {})
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + int(count)
    total = sum(threads.values()) or 1
    out = [f"{total} samples while busy (idle threads not sampled)"]
    for thread, samples in sorted(threads.items(), key=lambda kv: -kv[1]):
        out.append(f"\n{samples / total:6.1%}  {thread}")
        for frame, n in sorted(leaves[thread].items(), key=lambda kv: -kv[1])[:top]:
            out.append(f"    {n / total:6.1%}  {frame}")
    return "\n".join(out) + "\n"


def _live_figures(answer: dict[str, Any], pushed: PushFigures, bare: float) -> LiveRun:
    if answer["confirmed"] < pushed.frames:
        raise RuntimeError(f"{pushed.frames} frames sent, {answer['confirmed']} confirmed")
    span = answer["last"] - answer["first"]
    return LiveRun(
        gateway_rate=(answer["confirmed"] - answer["first_count"]) / span,
        bare_rate=bare,
        readings=answer["confirmed"],
        end_to_end_rate=answer["confirmed"] / (answer["last"] - pushed.started),
        gateway_cpu_per_reading_us=answer["cpu_s"] / answer["confirmed"] * 1e6,
        emulator_cpu_share=pushed.emulator_cpu_s / pushed.seconds,
        backed_up_share=pushed.backed_up_share,
        push_s=pushed.seconds,
        max_round_gap_s=pushed.max_round_gap_s,
        intake_s=answer["last_accepted"] - pushed.started,
        window_s=answer["last"] - pushed.started,
    )


# Scenario 2: the backlog drain ------------------------------------------------------------


def backlog_readings(devices: list[str], seats: int, count: int) -> Iterable[Reading]:
    """What a site's boards send over hours: seat changes every half second, and each
    board's heartbeat every minute."""
    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(seconds=count / 2)
    occupied = {(d, s): False for d in devices for s in range(1, seats + 1)}
    seq = dict.fromkeys(devices, 0)
    next_heartbeat = {d: 60.0 + i * 20 for i, d in enumerate(devices)}
    t = 0.0
    made = 0
    while made < count:
        t += 0.5
        device = min(next_heartbeat, key=next_heartbeat.__getitem__)
        if next_heartbeat[device] <= t:
            next_heartbeat[device] += 60.0
            reading: Reading = HeartbeatReading(
                site=SITE,
                gateway=GATEWAY,
                device=device,
                sensor=device,
                ts=start + timedelta(seconds=t),
                seq=seq[device],
                uptime_s=int(t) + 3600,
                supply_mv=3700 + rng.randrange(-20, 20),
            )
        else:
            device = rng.choice(devices)
            seat = rng.randrange(1, seats + 1)
            occupied[device, seat] = not occupied[device, seat]
            reading = SeatReading(
                site=SITE,
                gateway=GATEWAY,
                device=device,
                sensor=f"{device}.{seat}",
                ts=start + timedelta(seconds=t),
                seq=seq[device],
                occupied=occupied[device, seat],
            )
        seq[device] = (seq[device] + 1) % 0x10000
        made += 1
        yield reading


async def fill_backlog(path: Path, devices: list[str], seats: int, count: int) -> None:
    """Store ``count`` readings in a durable outbox, as a gateway with no broker would."""
    from edge.outbox import Outbox

    outbox = Outbox(path, max_readings=500_000, commit_max=count + 1)
    await outbox.open()
    for reading in backlog_readings(devices, seats, count):
        outbox.put(reading)
    await outbox.close()  # one commit: the fill is not what we measure


def batch_messages(path: Path, batch: int) -> list[Message]:
    """The backlog's packed batches, from the stored payloads, oldest first."""
    topic = TopicTree(PREFIX).backlog(SITE, GATEWAY)
    with contextlib.closing(sqlite3.connect(path)) as con:
        payloads = [row[0] for row in con.execute("SELECT payload FROM outbox ORDER BY id")]
    return [
        (topic, encode_batch(SITE, GATEWAY, payloads[i : i + batch]), False)
        for i in range(0, len(payloads), batch)
    ]


@dataclass(frozen=True, slots=True)
class DrainRun:
    seconds: float  # connected → the commit that deleted the last reading
    acked_seconds: float  # connected → the last PUBACK
    rate: float  # readings/s, connected → the last commit
    bare_rate: float
    batches: int
    gateway_cpu_s: float


async def run_backlog(
    args: argparse.Namespace, folder: Path, broker: MosquittoProcess
) -> list[DrainRun]:
    devices = _devices(args.boards)
    filled = folder / "filled.sqlite3"
    started = time.monotonic()
    await fill_backlog(filled, devices, args.seats, args.backlog)
    print(
        f"  filled an outbox with {args.backlog:,} readings in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    batches = await asyncio.to_thread(batch_messages, filled, args.backlog_batch)
    runs: list[DrainRun] = []
    for run in range(args.runs):
        run_folder = folder / f"drain-{run + 1}"
        async with contextlib.AsyncExitStack() as exits:
            port = PtyPort(run_folder / "dev" / "bench-a")  # a board that stays quiet
            await port.open()
            exits.callback(port.close)
            assert port.link is not None
            config = write_gateway_config(
                run_folder,
                broker,
                [(port.link, devices[0])],
                max_inflight=args.max_inflight,
                reconnect=0.05,
            )
            shutil.copyfile(filled, run_folder / "state" / "outbox.sqlite3")
            await asyncio.to_thread(broker.stop)
            exits.callback(broker.start)  # back for the next run whatever happens
            argv = [sys.executable, "-m", "bench.gateway_path", "--worker", str(config), "drain"]
            worker = Child("drain worker", argv, run_folder / "gateway.log")
            exits.push_async_callback(worker.stop)
            await worker.start(pipes=True)
            async with asyncio.timeout(START_TIMEOUT):
                await worker.wait_line("ready")  # the outbox open; the broker unreachable
            await asyncio.to_thread(broker.start)
            assert worker.process is not None and worker.process.stdout is not None
            async with asyncio.timeout(300):
                line = await worker.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the drain worker exited; see {worker.log}:\n{worker.tail()}")
            answer = json.loads(line)
        bare = await asyncio.to_thread(bare_publish, broker, batches, args.max_inflight)
        seconds = answer["stored_zero"] - answer["connected"]
        figures = DrainRun(
            seconds=seconds,
            acked_seconds=answer["last"] - answer["connected"],
            rate=args.backlog / seconds,
            bare_rate=bare * args.backlog / len(batches),
            batches=answer["batches"],
            gateway_cpu_s=answer["cpu_s"],
        )
        runs.append(figures)
        print(
            f"  drain run {run + 1}: {figures.seconds:.2f} s to an empty store "
            f"({figures.acked_seconds:.2f} s to the last PUBACK), {figures.rate:,.0f} "
            f"readings/s; bare client, same batches: {figures.bare_rate:,.0f} readings/s; "
            f"gateway CPU {figures.gateway_cpu_s:.2f} s",
            file=sys.stderr,
            flush=True,
        )
    return runs


# Results --------------------------------------------------------------------------------


def rows(args: argparse.Namespace, live: list[LiveRun], drain: list[DrainRun]) -> list[Row]:
    out: list[Row] = []
    if live:
        setup = (
            f"{args.readings:,} seat readings from {args.boards} emulated boards on ptys; "
            f"outbox WAL, synchronous=FULL, commit 1 s / 500; max_inflight {args.max_inflight}"
        )
        bound = sum(r.intake_bound for r in live)
        if bound:
            setup += f"; {bound} of {len(live)} runs intake-bound (the boards set the pace)"
        out.append(
            Row(
                scenario="gateway live path",
                metric="readings/s to PUBACK",
                value=median([r.gateway_rate for r in live]),
                unit="readings/s",
                limit=median([r.bare_rate for r in live]),
                limit_label="bare paho-mqtt QoS 1 client",
                target=Target("ratio", ">=", 0.8),
                runs=[r.gateway_rate for r in live],
                note=setup,
            )
        )
        out.append(
            Row(
                scenario="gateway live path",
                metric="gateway CPU per reading",
                value=median([r.gateway_cpu_per_reading_us for r in live]),
                unit="µs",
                runs=[r.gateway_cpu_per_reading_us for r in live],
                note="user + system CPU of the gateway process over the window",
            )
        )
    if drain:
        label = f"{args.backlog:,} readings"
        out.append(
            Row(
                scenario="backlog drain",
                metric=label,
                value=median([r.seconds for r in drain]),
                unit="s",
                target=Target("value", "<=", 5),
                runs=[r.seconds for r in drain],
                note="publisher connected → the commit that deleted the last reading",
            )
        )
        out.append(
            Row(
                scenario="backlog drain",
                metric=f"{label} to the last PUBACK",
                value=median([r.acked_seconds for r in drain]),
                unit="s",
                runs=[r.acked_seconds for r in drain],
                note="publisher connected → len(outbox) == 0",
            )
        )
        out.append(
            Row(
                scenario="backlog drain",
                metric="readings/s",
                value=median([r.rate for r in drain]),
                unit="readings/s",
                limit=median([r.bare_rate for r in drain]),
                limit_label="bare paho-mqtt QoS 1 client, the same batches",
                runs=[r.rate for r in drain],
                note=f"batches of {args.backlog_batch}",
            )
        )
    return out


def table(rows_: list[Row]) -> str:
    def num(value: float | None) -> str:
        return "–" if value is None else f"{value:,.2f}" if value < 100 else f"{value:,.0f}"

    lines = [
        f"{'scenario':<20} {'metric':<26} {'value':>12} {'unit':<11} {'limit':>10} "
        f"{'ratio':>6} {'target':<14} met",
    ]
    for r in rows_:
        ratio = "–" if r.ratio is None else f"{r.ratio:.2f}"
        met = {True: "yes", False: "NO", None: "–"}[r.met]
        lines.append(
            f"{r.scenario:<20} {r.metric:<26} {num(r.value):>12} {r.unit:<11} "
            f"{num(r.limit):>10} {ratio:>6} {r.target or '–'!s:<14} {met}"
        )
    return "\n".join(lines)


async def run_all(args: argparse.Namespace, keep: Path) -> tuple[list[LiveRun], list[DrainRun]]:
    broker = MosquittoProcess(
        keep / "mosquitto",
        extra_config=DEPLOY_LIMITS
        + ("\nautosave_on_changes true" if args.autosave_on_changes else ""),
    )
    await asyncio.to_thread(broker.start)
    try:
        live = await run_live(args, keep / "live", broker) if "live" in args.scenarios else []
        drain = (
            await run_backlog(args, keep / "backlog", broker) if "backlog" in args.scenarios else []
        )
    finally:
        await asyncio.to_thread(broker.stop)
    return live, drain


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gateway_path", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--readings", type=int, default=20_000, help="per live window")
    parser.add_argument("--warmup", type=int, default=2_000, help="readings before the runs")
    parser.add_argument("--boards", type=int, default=3)
    parser.add_argument("--seats", type=int, default=40, help="per board")
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--backlog-batch", type=int, default=500, help="outbox.backlog_batch")
    parser.add_argument("--max-inflight", type=int, default=100, help="broker.max_inflight")
    parser.add_argument(
        "--scenarios", type=lambda s: s.split(","), default=["live", "backlog"], metavar="LIST"
    )
    parser.add_argument("--autosave-on-changes", action="store_true")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep logs and state under DIR")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="profile one more live run")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "MODE"), help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.worker:
        return _worker_main(*args.worker)
    if not 1_000 <= args.readings <= 60_000:
        # The bare client queues a whole window in paho, whose message ids are 16-bit.
        parser.error("--readings must be within 1,000..60,000")
    if args.profile is not None:
        args.profile = args.profile.resolve()
    command = " ".join(["python -m bench.gateway_path", *(argv or sys.argv[1:])])
    started = time.monotonic()
    try:
        live, drain = run_in_folder(
            lambda folder: run_all(args, folder), args.keep, prefix="qihe-gw-"
        )
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    result = rows(args, live, drain)
    info = machine()
    print(
        f"\nRun {info['date']}: {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
        f"Mosquitto {info['mosquitto']}; {time.monotonic() - started:.0f} s\n"
    )
    print(table(result))
    if args.profile is not None:
        for name, title in (
            ("gateway-live-top.txt", "Top costs on the gateway's event-loop thread (pyinstrument)"),
            ("gateway-live-pyspy-summary.txt", "Every thread of the gateway (py-spy)"),
        ):
            path = args.profile / name
            if path.exists():
                print(f"\n{title}, {path}:")
                print("\n".join(path.read_text().splitlines()[:26]))
    if args.json is not None:
        write_rows(
            args.json,
            result,
            command=command,
            live_runs=[asdict(r) for r in live],
            drain_runs=[asdict(r) for r in drain],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
