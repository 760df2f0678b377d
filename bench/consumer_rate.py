"""Consumer throughput: points per second from MQTT into InfluxDB, acknowledged, beside
InfluxDB's own ``/write`` rate on this machine in the same run.

    .venv/bin/python -m bench.consumer_rate --runs 3 --json /tmp/consumer_rate.json \\
        [--keep DIR] [--profile DIR] [--packed 100000] [--single 30000] [--batch-size 5000] \\
        [--in-flight 2] [--gzip]

One private Mosquitto (queue limits as ``deploy/mosquitto/qihe.conf`` sets them: no
message-count limit, 2 GB of queued bytes per client, so the consumer's session loses
nothing; snapshot persistence off, see below) and one private InfluxDB 1.6.7 serve every
run. The readings are seat readings of 65 sites (one gateway each, two boards of 40
seats), each at its own timestamp, so every reading lands as its own point.

Per run, four measurements, their order reversed on every other run:

* **raw /write**: the readings as pre-built line protocol (the general encoder's lines, in
  the order the consumer gets them), POSTed in batches of 5,000 over one HTTP connection,
  one after another, into a fresh database. No parsing, no MQTT: what InfluxDB itself takes
  on this machine.
* **consumer, packed**: the readings as gateways send their backlog (``encode_batch``, up
  to ``MAX_BATCH`` readings per message on the backlog topic).
* **consumer, single**: one reading per message on its per-sensor topic (the live path).
* **paho alone**: the single shape drained by the consumer's own MQTT client
  (``central.consumer.mqtt``) acking each message on receipt, with nothing behind it: what the MQTT
  client costs per message, the single path's ceiling.

For each consumer shape the broker is pre-loaded first: the consumer's persistent session
is made (subscribed at QoS 1), then left, and every message is published to it while it is
away. So while measuring, the consumer is the only thing working (no publisher shares the
two cores); what it measures is the consumer draining its session, as after an outage.
The consumer (``central.consumer.Consumer`` with the real InfluxDB v1 writer, manual acks,
the sample config's batching) runs in a child process, so its CPU and GIL are its own; its
rate is points over the time from ``start()`` to the moment every message is acked (which
the consumer does only after InfluxDB stored its points). The count is then checked in
InfluxDB. Each run also reports InfluxDB's own time in write requests (its ``httpd``
statistics), so the consumer's time splits into InfluxDB's and its own. The figures are
medians over ``--runs``.

The broker's snapshot persistence is off here: Mosquitto 2.0 writes its whole database at
every autosave, which would charge the broker's disk writes to the consumer (that cost is
``bench/mosquitto_autosave``'s subject).

``--profile DIR`` profiles both shapes: the network thread's work per message
(``to_delivery``: parse, check, build the lines) under pyinstrument, HTML and text in DIR;
and, when py-spy is installed, one more consumer run of each shape with py-spy sampling
every thread of the consumer process while it holds the GIL (collapsed stacks and a
summary in DIR). It prints the top costs of both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import importlib.util
import json
import logging
import re
import shutil
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from bench.harness import (
    INTERRUPTED,
    Child,
    Row,
    Target,
    machine,
    median,
    run_in_folder,
    write_rows,
)
from central.consumer.points import reading_point
from central.influx import encode_line
from devstack import InfluxdProcess, MosquittoProcess
from qihe.contract import MAX_BATCH, SeatReading, TopicTree, encode_batch, encode_payload

__all__ = ["main"]

SCENARIO = "consumer"
#: Sites (one gateway each) and seats per site (two boards of 40).
SITES = 65
BOARDS = ("a", "b")
SEATS_PER_BOARD = 40
GATEWAY = "gw1"
#: Readings of one sensor are this far apart; all of them fall in one shard group.
SPACING = timedelta(milliseconds=50)
BASE = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
RAW_BATCH = 5000
#: The queue limits of deploy/mosquitto/qihe.conf (max_queued_messages 0 = no count limit).
BROKER_CONFIG = "max_queued_bytes 2000000000\npersistence false"
#: Publisher windows: the broker's max_inflight_messages is 100 per client.
PUBLISHERS = 4
CONSUMER_TIMEOUT_S = 120.0
log = logging.getLogger("bench.consumer_rate")


# The readings ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    kind: str  # "single" or "packed": the topic is built per run (own prefix)
    site: str
    sensor: str  # "" for a backlog batch
    payload: bytes
    points: int


@dataclass(frozen=True, slots=True)
class Workload:
    """The readings of one run, as line protocol (raw) and as messages of both shapes."""

    lines: list[str]  # the packed shape's readings, one line each, in its order
    packed: list[Message]
    single: list[Message]


def _sensors() -> list[tuple[str, str, str]]:
    """(site, device, sensor) of every seat."""
    out = []
    for n in range(1, SITES + 1):
        for board in BOARDS:
            device = f"s{n:02d}-{board}"
            out += [
                (f"site-{n:02d}", device, f"{device}.{i}") for i in range(1, SEATS_PER_BOARD + 1)
            ]
    return out


def _readings(count: int) -> list[SeatReading]:
    sensors = _sensors()
    readings = []
    for k in range(count):
        site, device, sensor = sensors[k % len(sensors)]
        rank = k // len(sensors)
        readings.append(
            SeatReading(
                site=site,
                gateway=GATEWAY,
                device=device,
                sensor=sensor,
                # Distinct per sensor; spread a little across sensors as real changes are.
                ts=BASE + rank * SPACING + timedelta(microseconds=k % len(sensors)),
                seq=k % 0x10000,
                occupied=bool((k * 7 + rank) % 3),
            )
        )
    return readings


def workload(packed: int, single: int) -> Workload:
    readings = _readings(max(packed, single))
    payloads = [encode_payload(r) for r in readings]
    # Backlog batches: each gateway's readings in time order, MAX_BATCH per message.
    by_site: dict[str, list[int]] = {}
    for k, reading in enumerate(readings[:packed]):
        by_site.setdefault(reading.site, []).append(k)
    batches = []
    order = []  # the readings in the order the consumer gets (and writes) them
    for site, ks in by_site.items():
        for first in range(0, len(ks), MAX_BATCH):
            chunk = ks[first : first + MAX_BATCH]
            body = encode_batch(site, GATEWAY, [payloads[k] for k in chunk])
            batches.append(Message("packed", site, "", body, len(chunk)))
            order += chunk
    # The general encoder (the consumer's fast path writes the same bytes, tests check it).
    lines = [encode_line(reading_point(readings[k])) for k in order]
    singles = [
        Message("single", r.site, r.sensor, p, 1)
        for r, p in zip(readings[:single], payloads, strict=False)
    ]
    return Workload(lines, batches, singles)


# Pre-loading the broker ----------------------------------------------------------------


def _client(client_id: str = "") -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)


def make_session(broker: MosquittoProcess, tree: TopicTree, client_id: str) -> None:
    """The consumer's persistent session, subscribed as the consumer subscribes, then left."""
    client = _client(client_id)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    client.connect(broker.host, broker.port, clean_start=False, properties=properties)
    client.loop_start()
    try:
        options = SubscribeOptions(qos=1, retainHandling=1)
        filters = [*tree.reading_filters(), tree.status_filter(), tree.backlog_filter()]
        client.subscribe([(f, options) for f in filters])
        if not subscribed.wait(10):
            raise RuntimeError("could not make the consumer's session")
    finally:
        client.disconnect()
        client.loop_stop()


def preload(broker: MosquittoProcess, tree: TopicTree, messages: Sequence[Message]) -> float:
    """Publish every message at QoS 1 (as gateways do) and wait for every PUBACK; seconds."""
    started = time.monotonic()
    shares = [messages[i::PUBLISHERS] for i in range(PUBLISHERS)]
    errors: list[BaseException] = []

    def publish(share: Sequence[Message]) -> None:
        client = _client()
        client.max_queued_messages_set(0)
        done = threading.Event()
        left = len(share)
        lock = threading.Lock()

        def on_publish(*_: Any) -> None:
            nonlocal left
            with lock:
                left -= 1
                if left == 0:
                    done.set()

        client.on_publish = on_publish
        client.connect(broker.host, broker.port)
        client.loop_start()
        try:
            for m in share:
                if m.kind == "packed":
                    topic = tree.backlog(m.site, GATEWAY)
                    client.publish(topic, m.payload, qos=1)
                else:
                    topic = tree.reading(m.site, GATEWAY, "seat", m.sensor)
                    # Seat readings are published retained, as gateways do.
                    client.publish(topic, m.payload, qos=1, retain=True)
            if share and not done.wait(120):
                raise RuntimeError(f"the broker acknowledged only {len(share) - left} messages")
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.disconnect()
            client.loop_stop()

    threads = [threading.Thread(target=publish, args=(s,)) for s in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.monotonic() - started


# The raw /write limit -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawRun:
    rate: float  # points per second
    influx_s: float  # InfluxDB's own time in the write requests


def raw_write(influxd: InfluxdProcess, database: str, lines: Sequence[str]) -> RawRun:
    """Pre-built line protocol POSTed in batches over one connection, one after another."""
    influxd.create_database(database)
    bodies = [
        ("\n".join(lines[i : i + RAW_BATCH]) + "\n").encode()
        for i in range(0, len(lines), RAW_BATCH)
    ]
    path = "/write?" + urlencode({"db": database, "precision": "ns"})
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    connection = http.client.HTTPConnection(influxd.host, influxd.port, timeout=30)
    busy = influx_write_seconds(influxd)
    try:
        started = time.perf_counter()
        for body in bodies:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 204:
                raise RuntimeError(f"InfluxDB answered {response.status}: {answer[:200]!r}")
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    busy = influx_write_seconds(influxd) - busy
    _check_count(influxd, database, len(lines))
    return RawRun(len(lines) / elapsed, busy)


def influx_write_seconds(influxd: InfluxdProcess) -> float:
    """InfluxDB's own time spent in write requests so far (its ``httpd`` statistics)."""
    with urllib.request.urlopen(f"{influxd.url}/debug/vars", timeout=10) as response:
        stats: dict[str, Any] = json.load(response)
    nanoseconds = sum(
        int(value["values"].get("writeReqDurationNs", 0))
        for key, value in stats.items()
        if key.startswith("httpd")
    )
    return nanoseconds / 1e9


def _check_count(influxd: InfluxdProcess, database: str, expected: int) -> None:
    rows = influxd.rows('SELECT COUNT("occupied") FROM "seat"', database)
    found = rows[0]["count"] if rows else 0
    if found != expected:
        raise RuntimeError(f"{database} holds {found} points, not {expected}")


# The consumer (a child process) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsumerRun:
    shape: str
    messages: int
    points: int
    elapsed_s: float  # start() → every message acked
    first_write_s: float | None  # start() → first write request sent
    write_s: float  # time inside write requests (InfluxDB and the HTTP client)
    writes: int
    cpu_s: float  # the consumer process, all threads
    thread_cpu_s: dict[str, float]
    preload_s: float
    influx_s: float = 0.0  # InfluxDB's own time in the consumer's write requests

    @property
    def rate(self) -> float:
        return self.points / self.elapsed_s


def consumer_config(
    broker: MosquittoProcess,
    influxd: InfluxdProcess,
    prefix: str,
    client_id: str,
    db: str,
    batch_size: int = 5000,
    *,
    in_flight: int = 2,
    gzip: bool = False,
) -> dict[str, Any]:
    """The sample config's batching (config/consumer.yaml), pointed at the private servers;
    ``in_flight`` and ``gzip`` as ``--in-flight`` and ``--gzip`` ask."""
    return {
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "client_id": client_id,
            "topic_prefix": prefix,
            "session_expiry": 3600,
        },
        "influx": {
            "api": "v1",
            "url": influxd.url,
            "database": db,
            "create_database": True,
            "gzip": gzip,
        },
        "batch_size": batch_size,
        "writes_in_flight": in_flight,
        "flush_interval": 1,
        "flush_idle": 0.05,
        "max_pending": 10000,
    }


async def run_consumer(
    folder: Path,
    config: dict[str, Any],
    *,
    shape: str,
    messages: int,
    points: int,
    preload_s: float,
    profile: Path | None = None,
) -> ConsumerRun:
    config_path = folder / f"{config['mqtt']['client_id']}.json"
    config_path.write_text(json.dumps(config))
    worker = "paho" if shape == "paho" else "consumer"
    argv = [sys.executable, "-m", "bench.consumer_rate", f"--{worker}-worker", str(config_path)]
    argv += ["--expect", str(messages)]
    child = Child(f"{worker} ({shape})", argv, folder / f"{config['mqtt']['client_id']}.log")
    spy: asyncio.subprocess.Process | None = None
    try:
        await child.start(pipes=True)
        await child.wait_line("ready")
        if profile is not None:
            spy = await _start_spy(child.pid, profile / f"{shape}.collapsed", folder)
        assert child.process is not None and child.process.stdin is not None
        child.process.stdin.write(b"go\n")
        await child.process.stdin.drain()
        assert child.process.stdout is not None
        async with asyncio.timeout(CONSUMER_TIMEOUT_S + 30):
            line = await child.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{child.name} ended early; see {child.log}:\n{child.tail()}")
        result = json.loads(line)
    finally:
        await child.stop()
        if spy is not None:
            async with asyncio.timeout(30):
                await spy.wait()
    if "error" in result:
        raise RuntimeError(f"{child.name}: {result['error']}; see {child.log}")
    return ConsumerRun(shape=shape, points=points, preload_s=preload_s, **result)


async def _start_spy(pid: int, out: Path, folder: Path) -> asyncio.subprocess.Process:
    binary = _py_spy() or "py-spy"
    with (folder / "py-spy.log").open("ab") as log_file:
        spy = await asyncio.create_subprocess_exec(
            binary, "record", "--pid", str(pid), "--rate", "250", "--threads", "--gil",
            "--format", "raw", "--output", str(out),
            stdout=log_file, stderr=log_file,
        )  # fmt: skip
    await asyncio.sleep(1.0)  # py-spy attaches before the consumer starts
    if spy.returncode is not None:
        raise RuntimeError(f"py-spy could not attach; see {folder / 'py-spy.log'}")
    return spy


class _TimedWriter:
    """The real writer, timing its requests (the worker's only addition to the consumer)."""

    def __init__(self, inner: Any, started: list[float]) -> None:
        self._inner = inner
        self._started = started
        self._lock = threading.Lock()  # several write slots at once
        self.first: float | None = None
        self.seconds = 0.0
        self.writes = 0

    @property
    def target(self) -> str:
        return str(self._inner.target)

    def prepare(self) -> None:
        self._inner.prepare()

    def write(self, lines: Sequence[str]) -> None:
        began = time.perf_counter()
        with self._lock:
            if self.first is None:
                self.first = began - self._started[0]
        try:
            self._inner.write(lines)
        finally:
            took = time.perf_counter() - began
            with self._lock:
                self.seconds += took  # overlapping writes add up: more than the wall time
                self.writes += 1

    def close(self) -> None:
        self._inner.close()


def _thread_cpu() -> dict[str, float]:
    from bench.harness import _CLOCK_TICKS

    out = {}
    for thread in threading.enumerate():
        if thread.native_id is None:
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
            after = stat[stat.rindex(")") + 2 :].split()
            out[thread.name] = (int(after[11]) + int(after[12])) / _CLOCK_TICKS
    return out


def _worker_main(config_path: str, expect: int) -> int:
    """Run a consumer until ``expect`` messages are acked; print its figures as one JSON line."""
    from bench.harness import proc_figures
    from central.consumer.config import ConsumerConfig
    from central.consumer.service import Consumer
    from central.influx import open_writer

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = ConsumerConfig.model_validate_json(Path(config_path).read_text())
    started = [0.0]
    writer = _TimedWriter(open_writer(config.influx), started)
    consumer = Consumer(config, writer=writer)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    cpu_before = proc_figures().cpu_s
    threads_before = _thread_cpu()  # the main thread's start-up (imports) is not the run's
    started[0] = time.perf_counter()
    consumer.start()
    deadline = started[0] + CONSUMER_TIMEOUT_S
    try:
        while (stats := consumer.stats()).acked < expect:
            if time.perf_counter() > deadline or stats.invalid or stats.rejected_points:
                print(json.dumps({"error": f"stuck or refusing: {stats}"}), flush=True)
                return 1
            time.sleep(0.002)
        elapsed = time.perf_counter() - started[0]
        cpu = proc_figures().cpu_s - cpu_before
        threads = {name: cpu - threads_before.get(name, 0.0) for name, cpu in _thread_cpu().items()}
    finally:
        consumer.stop()
    result = {
        "messages": expect,
        "elapsed_s": elapsed,
        "first_write_s": writer.first,
        "write_s": writer.seconds,
        "writes": writer.writes,
        "cpu_s": cpu,
        "thread_cpu_s": threads,
    }
    print(json.dumps(result), flush=True)
    return 0


def _paho_worker_main(config_path: str, expect: int) -> int:
    """The consumer's own MQTT client (``qihe.mqtt.paho_client``) alone, acking on receipt."""
    from bench.harness import proc_figures
    from central.consumer.config import ConsumerConfig
    from qihe.mqtt import paho_client, session_properties

    config = ConsumerConfig.model_validate_json(Path(config_path).read_text())
    client = paho_client(config.mqtt, client_id=config.mqtt.client_id, manual_ack=True)
    received = 0
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        nonlocal received
        client.ack(message.mid, message.qos)
        received += 1
        if received == expect:
            done.set()

    client.on_message = on_message
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    cpu_before = proc_figures().cpu_s
    started = time.perf_counter()
    client.connect(
        config.mqtt.host,
        config.mqtt.port,
        clean_start=False,
        properties=session_properties(
            session_expiry=config.mqtt.session_expiry, receive_maximum=config.max_pending
        ),
    )
    client.loop_start()
    try:
        if not done.wait(CONSUMER_TIMEOUT_S):
            print(json.dumps({"error": f"only {received} messages came"}), flush=True)
            return 1
        elapsed = time.perf_counter() - started
        cpu = proc_figures().cpu_s - cpu_before
    finally:
        client.disconnect()
        client.loop_stop()
    result: dict[str, Any] = {
        "messages": expect,
        "elapsed_s": elapsed,
        "first_write_s": None,
        "write_s": 0.0,
        "writes": 0,
        "cpu_s": cpu,
        "thread_cpu_s": {},
    }
    print(json.dumps(result), flush=True)
    return 0


# Profiles -------------------------------------------------------------------------------


async def profile_all(
    args: argparse.Namespace,
    work: Workload,
    keep: Path,
    broker: MosquittoProcess,
    influxd: InfluxdProcess,
) -> None:
    """Both shapes: the intake hot path under pyinstrument, and (with py-spy) the whole
    consumer process, every thread, while it holds the GIL."""
    out: Path = args.profile
    for shape in ("packed", "single"):
        messages = work.packed if shape == "packed" else work.single
        print(f"\n{profile_intake(shape, messages, out)}")
        if _py_spy() is None:
            print("(py-spy is not installed: no profile of the consumer's threads)")
            continue
        run = await one_shape(
            keep,
            broker,
            influxd,
            f"prof{shape}",
            shape,
            messages,
            batch_size=args.batch_size,
            in_flight=args.in_flight,
            gzip=args.gzip,
            profile=out,
        )
        summary = summarise_profile(out / f"{shape}.collapsed", out / f"{shape}.txt")
        print(
            f"\nprofile of the consumer process, {shape} ({_describe(run)}; sampling slows "
            f"it; py-spy, collapsed stacks in {out / f'{shape}.collapsed'}):\n{summary}"
        )


def profile_intake(shape: str, messages: Sequence[Message], out: Path, top: int = 20) -> str:
    """pyinstrument over what the network thread does per message (``to_delivery``: parse,
    check, build the lines), in this process; HTML and text to ``out``; the top own costs."""
    from pyinstrument import Profiler

    from central.consumer.intake import to_delivery

    out.mkdir(parents=True, exist_ok=True)
    tree = TopicTree("prof")
    topics = [
        tree.backlog(m.site, GATEWAY)
        if m.kind == "packed"
        else tree.reading(m.site, GATEWAY, "seat", m.sensor)
        for m in messages
    ]
    received_at = datetime.now(UTC)
    profiler = Profiler()
    profiler.start()
    for mid, (message, topic) in enumerate(zip(messages, topics, strict=True)):
        to_delivery(
            tree,
            mid=mid % 65535 + 1,
            qos=1,
            connection=1,
            topic=topic,
            payload=message.payload,
            received_at=received_at,
        )
    profiler.stop()
    (out / f"intake-{shape}.html").write_text(profiler.output_html())
    (out / f"intake-{shape}.txt").write_text(profiler.output_text(show_all=True))
    flat = profiler.output_text(flat=True, flat_time="self").splitlines()
    # After pyinstrument's banner: "Profile at ...", a blank line, then the functions.
    flat = flat[next(i for i, line in enumerate(flat) if line.startswith("Profile at")) + 2 :]
    points = sum(m.points for m in messages)
    seconds = profiler.last_session.duration if profiler.last_session else 0.0
    head = (
        f"intake hot path, {shape}: {points:,} points in {seconds:.2f} s under pyinstrument "
        f"({seconds / points * 1e6:.1f} µs a point; top own time, full tree in "
        f"{out / f'intake-{shape}.html'}):"
    )
    return "\n".join([head, *flat[:top]])


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


# The py-spy summary ---------------------------------------------------------------------


def summarise_profile(collapsed: Path, summary: Path, top: int = 15) -> str:
    """Top functions by own and by inclusive samples, per thread, from py-spy's raw output
    (written to ``summary`` too)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for raw in collapsed.read_text().splitlines():
        stack, _, count_text = raw.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = _thread_role(frames)
        threads[thread] += count
        total += count
        frames = frames[1:]  # the thread marker
        if frames:
            own[f"[{thread}] {_short(frames[-1])}"] += count
        for frame in {_short(f) for f in frames if _OUR_CODE.search(f)}:
            inclusive[frame] += count
    if not total:
        summary.write_text("no samples\n")
        return "no samples"
    lines = [f"{total} samples while holding the GIL (250 per second)"]
    lines += [f"  {name}: {n / total:.1%}" for name, n in threads.most_common()]
    lines.append("own time (the function itself):")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    lines.append("inclusive time of our code (the function and what it calls):")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top * 2)]
    text = "\n".join(lines)
    summary.write_text(text + "\n")
    return text


_OUR_CODE = re.compile(r"\((.*/)?(central|qihe)/[^ ]*\.py:")


def _thread_role(frames: list[str]) -> str:
    joined = ";".join(frames)
    if "_run_writer" in joined or "_supervise" in joined:
        return "writer thread"
    if "_write (" in joined and "consumer/service.py" in joined:
        return "write slots"
    if "loop_forever" in joined or "_thread_main" in joined:
        return "network thread"
    if "_worker_main" in joined:
        return "main thread"
    return "other"


def _short(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    return f"{name} ({'/'.join(parts[-2:])})" if path else name


# Running ----------------------------------------------------------------------------------


@dataclass(slots=True)
class RunFigures:
    raw: RawRun
    packed: ConsumerRun
    single: ConsumerRun
    paho: ConsumerRun  # the single shape, drained by the MQTT client alone


async def one_shape(
    folder: Path,
    broker: MosquittoProcess,
    influxd: InfluxdProcess,
    name: str,
    shape: str,
    messages: list[Message],
    *,
    batch_size: int,
    in_flight: int = 2,
    gzip: bool = False,
    profile: Path | None = None,
) -> ConsumerRun:
    tree = TopicTree(name)
    client_id = f"{name}-consumer"
    await asyncio.to_thread(make_session, broker, tree, client_id)
    preload_s = await asyncio.to_thread(preload, broker, tree, messages)
    db = f"{name}_db"
    await asyncio.to_thread(influxd.create_database, db)
    points = sum(m.points for m in messages)
    busy = await asyncio.to_thread(influx_write_seconds, influxd)
    result = await run_consumer(
        folder,
        consumer_config(
            broker, influxd, name, client_id, db, batch_size, in_flight=in_flight, gzip=gzip
        ),
        shape=shape,
        messages=len(messages),
        points=points,
        preload_s=preload_s,
        profile=profile,
    )
    busy = await asyncio.to_thread(influx_write_seconds, influxd) - busy
    if shape != "paho":  # the MQTT client alone writes nothing
        await asyncio.to_thread(_check_count, influxd, db, points)
    return replace(result, influx_s=busy)


async def run_all(args: argparse.Namespace, keep: Path) -> list[RunFigures]:
    print(f"building {args.packed:,} readings …", file=sys.stderr, flush=True)
    work = workload(args.packed, args.single)
    results = []
    broker = MosquittoProcess(keep / "mosquitto", max_queued_messages=0, extra_config=BROKER_CONFIG)
    influxd = InfluxdProcess(keep / "influxd")
    await asyncio.to_thread(broker.start)
    try:
        await asyncio.to_thread(influxd.start)
        try:
            for run in range(args.runs):
                order = ["raw", "packed", "single", "paho"]
                if run % 2:
                    order.reverse()
                figures: dict[str, Any] = {}
                for step in order:
                    name = f"r{run + 1}{step}"
                    if step == "raw":
                        figures[step] = await asyncio.to_thread(
                            raw_write, influxd, f"{name}_db", work.lines
                        )
                    else:
                        messages = work.packed if step == "packed" else work.single  # and paho
                        figures[step] = await one_shape(
                            keep,
                            broker,
                            influxd,
                            name,
                            step,
                            messages,
                            batch_size=args.batch_size,
                            in_flight=args.in_flight,
                            gzip=args.gzip,
                        )
                result = RunFigures(**figures)
                results.append(result)
                print(
                    f"  run {run + 1}: raw /write {result.raw.rate:,.0f} points/s "
                    f"(InfluxDB busy {result.raw.influx_s:.2f} s); "
                    f"consumer packed {_describe(result.packed)}; "
                    f"single {_describe(result.single)}; "
                    f"paho alone {result.paho.rate:,.0f} messages/s",
                    file=sys.stderr,
                    flush=True,
                )
            if args.profile is not None:
                await profile_all(args, work, keep, broker, influxd)
        finally:
            influxd.stop()
    finally:
        broker.stop()
    return results


def _describe(run: ConsumerRun) -> str:
    threads = ", ".join(
        f"{name.split('-')[0] if name.startswith('paho') else name} {cpu:.2f}"
        for name, cpu in sorted(run.thread_cpu_s.items())
    )
    return (
        f"{run.rate:,.0f} points/s ({run.points:,} in {run.elapsed_s:.2f} s, "
        f"{run.writes} writes taking {run.write_s:.2f} s of which InfluxDB {run.influx_s:.2f} s, "
        f"CPU {run.cpu_s:.2f} s: {threads})"
    )


def rows(results: list[RunFigures], args: argparse.Namespace) -> list[Row]:
    raw = [r.raw.rate for r in results]
    packed = [r.packed.rate for r in results]
    single = [r.single.rate for r in results]
    paho = [r.paho.rate for r in results]
    limit = median(raw)
    label = f"InfluxDB raw /write ({RAW_BATCH:,}-point batches), same run"
    return [
        Row(
            SCENARIO,
            f"consumer, backlog batches of {MAX_BATCH:,} readings ({args.packed:,} points)",
            median(packed),
            "points/s",
            limit=limit,
            limit_label=label,
            target=Target("ratio", ">=", 0.8),
            runs=packed,
        ),
        Row(
            SCENARIO,
            f"consumer, one reading per message ({args.single:,} points)",
            median(single),
            "points/s",
            limit=median(paho),
            limit_label="paho-mqtt client alone draining the same messages, same run",
            target=Target("ratio", ">=", 0.8),
            runs=single,
            note=(
                "one MQTT message and PUBACK per point (the live path, not the bulk one); "
                "its ceiling is the MQTT client's own cost per message, not InfluxDB"
            ),
        ),
        Row(
            SCENARIO,
            "paho-mqtt client alone, one reading per message, acked on receipt",
            median(paho),
            "messages/s",
            runs=paho,
            note="the consumer's MQTT client with nothing behind it: the single path's ceiling",
        ),
        Row(
            SCENARIO,
            f"InfluxDB raw /write, {RAW_BATCH:,}-point batches ({args.packed:,} points)",
            limit,
            "points/s",
            runs=raw,
        ),
    ]


def table(table_rows: Sequence[Row]) -> str:
    lines = ["| metric | per second | limit | ratio | target |", "|---|---:|---:|---:|---|"]
    for row in table_rows:
        value = "–" if row.value is None else f"{row.value:,.0f}"
        limit = "" if row.limit is None else f"{row.limit:,.0f}"
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        target = ""
        if row.target is not None:
            target = f"{row.target} {'met' if row.met else 'NOT met'}"
        lines.append(f"| {row.metric} | {value} | {limit} | {ratio} | {target} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.consumer_rate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--packed", type=int, default=100_000, help="points, backlog batches")
    parser.add_argument("--single", type=int, default=30_000, help="points, one per message")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=5000,
        help="the consumer's batch_size, points per request (default: the sample config's)",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=2,
        help="the consumer's writes_in_flight, batches written at once (default: the config's)",
    )
    parser.add_argument(
        "--gzip", action="store_true", help="the consumer compresses its write requests"
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep logs and data under DIR")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="an extra profiled run")
    parser.add_argument("--consumer-worker", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--paho-worker", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.consumer_worker:
        return _worker_main(args.consumer_worker, args.expect)
    if args.paho_worker:
        return _paho_worker_main(args.paho_worker, args.expect)
    if args.profile is not None and importlib.util.find_spec("pyinstrument") is None:
        print("--profile needs pyinstrument: .venv/bin/pip install -e '.[dev]'", file=sys.stderr)
        return 2
    info = machine()
    command = " ".join(["python -m bench.consumer_rate", *(argv or sys.argv[1:])])
    started = time.monotonic()
    try:
        results = run_in_folder(
            lambda folder: run_all(args, folder), args.keep, prefix="qihe-rate-"
        )
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    table_rows = rows(results, args)
    print(
        f"\nRun {info['date']}: {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
        f"Mosquitto {info['mosquitto']}, InfluxDB {info['influxdb']}; "
        f"{args.runs} runs in {time.monotonic() - started:.0f} s\n"
    )
    print(table(table_rows))
    if args.json is not None:
        write_rows(
            args.json,
            table_rows,
            command=command,
            runs=[
                {
                    "raw": asdict(r.raw),
                    "packed": asdict(r.packed),
                    "single": asdict(r.single),
                    "paho": asdict(r.paho),
                }
                for r in results
            ],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
