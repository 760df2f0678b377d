"""City scale: 400 emulated gateways × 80 seats against one broker, one consumer (then two
sharing the load) and one live service, all on this machine.

    .venv/bin/python -m bench.city --runs 3 --json /tmp/city.json --keep /tmp/city
    .venv/bin/python -m bench.city --gateways 400 --seats 80 --changes-per-seat-hour 3 \\
        --window 10 --stress-rates 500,2000,4000,8000 --step 8  # the defaults, about 3 minutes

One stack for the whole run: a private Mosquitto (the queue and in-flight limits of
``deploy/mosquitto/qihe.conf``; snapshots every second, see ``--persistence``), a private
InfluxDB 1.6, ``qihe live`` and the consumer (``central.consumer.Consumer`` in a worker entry
point of this module that answers with its counters when asked) as child processes with
generated configs (the sample configs of ``config/`` with this stack's addresses), and a load
generator: one MQTT connection per gateway, each speaking the wire contract as
``edge/publisher.py`` does (client id ``qihe-gw-{site}-gw1``, a retained ``offline`` Last Will
and a retained ``online`` status for its session, its own status topic subscribed, readings at
QoS 1 on their per-sensor topics, retained as ``RETAINED_KINDS`` says, at most ``--inflight``
awaiting PUBACK; the rest wait in its outbox). The gateways are paho-mqtt clients driven by
one ``selectors`` loop per generator process (``--generator-processes``): no thread per
connection, no asyncio future per message. Seat payloads are formatted directly (checked byte
for byte against ``encode_payload`` at start); the others go through the contract's models.

1. **Initial state**: every gateway connects and publishes what a gateway sends after a
   reconnect: its status, a HELLO (``device``) and a first heartbeat per board, and every
   seat's state (32,000 retained seat topics), as fast as the in-flight windows allow. Timed
   until the consumer stored it all and the live service shows every seat.
2. **City rate** (``--runs`` windows of ``--window`` s, each once the live service caught
   up): seat changes, Poisson-timed, ``--changes-per-seat-hour`` per seat, plus each gateway's
   periodic reports (per board a heartbeat and a link report, per gateway an outbox and a
   system report, every ``--report-interval`` s): 67 messages/s at the defaults.
3. **Stress ladder** (``--stress-rates``, ``--step`` s each, all kinds counted): up until a
   rate does not hold; if the first did not, halved (twice at most); then once halfway
   between the best that held and the first that did not. After each step the gateways stop
   changing seats and the consumer drains.
4. **Two consumers** in one ``mqtt.shared_group`` (own client ids, a fresh database; the one
   consumer stopped and its session ended): the rate where one consumer stopped keeping up
   and the one below it, then the exactly-once check over every message published since they
   subscribed (N, each reading its own identity): the sum of their ``received`` is N, each got
   some, and InfluxDB holds N points stamped since then (counted per measurement).
   Mosquitto before 2.0.13 (Debian's 2.0.11 included) sends every retained message to each
   new member of a shared subscription: that replay is waited out and reported apart.

Definitions. *Published*: messages the broker PUBACKed to the gateways. *Consumer lag*:
published minus acked by the consumer(s) (which ack only once InfluxDB stored the points),
sampled every 0.25 s; in seconds, the age of the oldest message not yet acked. *Live lag*: the
same against the live service's ``/healthz`` ``messages_received``. A step *holds* when the
broker took ≥ 95 % of the offered rate, the consumer's backlog grew by at most 10 % of the rate
(least squares after its first flush), its lag stayed ≤ ``--max-lag`` s and it drained after.
*End to end*: t0 is the reading's own ``ts`` (the gateway stamps it as it makes the change and
queues it), t1 the arrival of its ``seat`` event at a client of ``/api/v1/events`` in this
process; the event carries the reading's ``ts`` as ``since``, so each event names its change.
A seat is not changed again within a few seconds, so no change is folded into the next. The
gateway's outbox commit (``outbox.commit_interval``; ``bench/live_latency``) is not in it.
CPU is read from ``/proc`` per process over each stretch, in % of one core; *machine busy* is
every process's (others' included) share of all cores, from ``/proc/stat``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import heapq
import json
import logging
import math
import os
import random
import resource
import selectors
import signal
import sys
import tempfile
import time
from array import array
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from bench.harness import (
    Child,
    Row,
    Target,
    kill_leftovers,
    machine,
    median,
    percentile,
    proc_figures,
    write_rows,
)
from qihe.contract import (
    RETAINED_KINDS,
    DeviceReading,
    GatewayStatus,
    HeartbeatReading,
    LinkReading,
    OutboxReading,
    SeatReading,
    SystemReading,
    TopicTree,
    encode_payload,
    parse_reading,
)
from qihe.devstack import InfluxdProcess, MosquittoProcess, free_port

__all__ = ["main"]

SCENARIO = "city"
PREFIX = "city"
GATEWAY = "gw1"
REPO = Path(__file__).resolve().parents[1]
#: A board's HELLO lists every sensor in one frame, which caps a board at 64 seats
#: (firmware_bridge.emulator.MAX_SEATS): 80 seats are two boards of 40.
BOARD_MAX_SEATS = 64
SESSION = 1
SHARED_GROUP = "city"
SAMPLE_S = 0.25
#: A seat is not changed again within this (shorter at high rates), so every change has its event.
COOLDOWN_S = 5.0
START_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 20.0
#: The consumer's first batch waits up to flush_interval (1 s): its backlog is judged after.
LAG_WARMUP_S = 1.5
#: A step holds while the consumer's backlog grows by at most this share of the rate. Its
#: batches (up to 1 s each) make the backlog a sawtooth: over one step, a smaller deficit
#: cannot be told from it.
MAX_GROWTH = 0.10
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: InfluxDB measurement and one field every point of it has, per kind the generator sends.
MEASURED_BY = {
    "status": ("gateway_status", "online"),
    "device": ("device", "firmware"),
    "seat": ("seat", "occupied"),
    "heartbeat": ("heartbeat", "uptime_s"),
    "link": ("link", "frames"),
    "outbox": ("outbox", "queued"),
    "system": ("system", "load_1m"),
}


# The city ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteLayout:
    id: str
    devices: tuple[tuple[str, int], ...]  # (board id, seats on it)


def layout(gateways: int, seats: int) -> list[SiteLayout]:
    boards = math.ceil(seats / BOARD_MAX_SEATS)
    width = len(str(gateways))
    sites = []
    for n in range(1, gateways + 1):
        shares = [seats // boards + (1 if b < seats % boards else 0) for b in range(boards)]
        devices = tuple((f"s{n:0{width}d}-{chr(ord('a') + b)}", s) for b, s in enumerate(shares))
        sites.append(SiteLayout(f"site-{n:0{width}d}", devices))
    return sites


def periodic_per_gateway(site: SiteLayout) -> int:
    """Messages per report interval: a heartbeat and a link report per board, outbox, system."""
    return 2 * len(site.devices) + 2


# Payloads ------------------------------------------------------------------------------


def ts_text(us: int) -> str:
    """A UTC time in microseconds as the contract writes it (pydantic's RFC 3339 form)."""
    seconds, micros = divmod(us, 1_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{base}.{micros:06d}Z" if micros else f"{base}Z"


def seat_payload(site: str, device: str, sensor: str, us: int, seq: int, occupied: bool) -> bytes:
    """``encode_payload(SeatReading(...))`` without building the model (a fifth of the cost)."""
    return (
        f'{{"schema":1,"site":"{site}","gateway":"{GATEWAY}","device":"{device}",'
        f'"sensor":"{sensor}","ts":"{ts_text(us)}","seq":{seq},"kind":"seat",'
        f'"occupied":{"true" if occupied else "false"}}}'
    ).encode()


def check_seat_payload() -> None:
    """The formatted seat payload is byte for byte the contract's; raise otherwise."""
    for us in (1_795_000_000_123_456, 1_795_000_000_000_000, 1_795_000_000_120_000):
        for occupied in (True, False):
            fast = seat_payload("site-001", "s001-a", "s001-a.7", us, 812, occupied)
            model = SeatReading(
                site="site-001",
                gateway=GATEWAY,
                device="s001-a",
                sensor="s001-a.7",
                ts=_EPOCH + timedelta(microseconds=us),
                seq=812,
                occupied=occupied,
            )
            if fast != encode_payload(model):
                raise RuntimeError(f"seat payload differs from the contract's:\n{fast!r}")


def _utc(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _now_us() -> int:
    return time.time_ns() // 1000


# The load generator (a worker process) ---------------------------------------------


@dataclass(slots=True)
class Totals:
    """One generator process's counters."""

    published: int = 0
    acked: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    connected: int = 0
    disconnects: int = 0


class EmulatedGateway:
    """One gateway's MQTT side, as ``edge.publisher.MqttPublisher`` speaks it.

    ``outbox`` stands for the gateway's durable outbox: readings wait there while
    ``window`` are in flight, and leave it when published (confirmed at PUBACK).
    """

    def __init__(self, site: SiteLayout, plan: dict[str, Any], totals: Totals) -> None:
        self.site = site
        self.totals = totals
        self.window: int = plan["inflight"]
        self.root = TopicTree(plan["prefix"]).gateway_root(site.id, GATEWAY)
        self.status_topic = f"{self.root}/status"
        self.outbox: deque[tuple[str, bytes, bool, str]] = deque()
        self.inflight = 0
        self.connected = False
        self.fresh = False  # connected, status not published yet
        self.fd = -1
        self.watching_write = False
        self.seq: dict[str, int] = {device: 0 for device, _ in site.devices}
        self.started = time.monotonic()
        self._kinds: dict[int, str] = {}
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"qihe-gw-{site.id}-{GATEWAY}",
            protocol=mqtt.MQTTv5,
        )
        client.will_set(self.status_topic, self._status("offline"), qos=1, retain=True)
        client.max_inflight_messages_set(self.window)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self.client = client

    def _status(self, state: str) -> bytes:
        return encode_payload(
            GatewayStatus(
                site=self.site.id,
                gateway=GATEWAY,
                state="online" if state == "online" else "offline",
                session=SESSION,
                ts=_utc(_now_us()),
            )
        )

    def _next_seq(self, device: str) -> int:
        seq = self.seq[device]
        self.seq[device] = (seq + 1) & 0xFFFF
        return seq

    # Readings ---------------------------------------------------------------------------

    def queue(self, kind: str, sensor: str, payload: bytes) -> None:
        self.outbox.append((f"{self.root}/{kind}/{sensor}", payload, kind in RETAINED_KINDS, kind))

    def seat(self, device: str, number: int, occupied: bool) -> None:
        sensor = f"{device}.{number}"
        payload = seat_payload(
            self.site.id, device, sensor, _now_us(), self._next_seq(device), occupied
        )
        self.outbox.append((f"{self.root}/seat/{sensor}", payload, True, "seat"))

    def initial(self, occupied: list[list[bool]]) -> None:
        """After (re)connecting: each board's HELLO and first heartbeat, every seat's state."""
        for (device, count), states in zip(self.site.devices, occupied, strict=True):
            hello = DeviceReading(
                site=self.site.id,
                gateway=GATEWAY,
                device=device,
                sensor=device,
                ts=_utc(_now_us()),
                seq=self._next_seq(device),
                firmware="1.0.0",
                report_interval_s=60,
                sensors=tuple(f"seat.{n}" for n in range(1, count + 1)),
            )
            self.queue("device", device, encode_payload(hello))
            for number, state in enumerate(states, start=1):
                self.seat(device, number, state)
        self.report(heartbeats_only=True)

    def report(self, *, heartbeats_only: bool = False) -> None:
        """Each board's heartbeat; then (every link_report_interval) links, outbox, system."""
        base = {"site": self.site.id, "gateway": GATEWAY}
        uptime = int(time.monotonic() - self.started) + 86_400
        for device, _ in self.site.devices:
            beat = HeartbeatReading(
                **base,
                device=device,
                sensor=device,
                ts=_utc(_now_us()),
                seq=self._next_seq(device),
                uptime_s=uptime,
                supply_mv=3710,
            )
            self.queue("heartbeat", device, encode_payload(beat))
        if heartbeats_only:
            return
        for device, _ in self.site.devices:
            link = LinkReading(
                **base,
                device=device,
                sensor=device,
                ts=_utc(_now_us()),
                frames=self.seq[device],
                crc_errors=0,
                malformed=0,
                lost=0,
                duplicates=0,
                reconnects=0,
            )
            self.queue("link", device, encode_payload(link))
        outbox = OutboxReading(
            **base,
            device="gateway",
            sensor=GATEWAY,
            ts=_utc(_now_us()),
            queued=len(self.outbox),
            dropped_periodic=0,
            dropped_state=0,
            dropped_clock=0,
        )
        self.queue("outbox", GATEWAY, encode_payload(outbox))
        system = SystemReading(
            **base,
            device="gateway",
            sensor=GATEWAY,
            ts=_utc(_now_us()),
            disk_free_bytes=21_474_836_480,
            disk_total_bytes=31_268_536_320,
            mem_available_bytes=3_221_225_472,
            mem_total_bytes=4_124_626_944,
            cpu_temp_c=48.3,
            load_1m=0.42,
        )
        self.queue("system", GATEWAY, encode_payload(system))

    # Publishing ---------------------------------------------------------------------------

    def _publish(self, topic: str, payload: bytes, retain: bool, kind: str) -> bool:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        self.inflight += 1
        self._kinds[info.mid] = kind
        self.totals.published += 1
        return True

    def pump(self) -> None:
        """Publish from the outbox while the window has room (outside paho's callbacks, so
        each publish is written at once)."""
        if not self.connected:
            return
        if self.fresh:
            self.fresh = False
            self._publish(self.status_topic, self._status("online"), True, "status")
            self.client.subscribe(self.status_topic, qos=1)
        outbox = self.outbox
        while outbox and self.inflight < self.window:
            message = outbox.popleft()
            if not self._publish(*message):
                outbox.appendleft(message)
                return

    # paho callbacks (inside loop_read) ---------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            print(f"{self.site.id}: broker refused: {reason_code}", file=sys.stderr)
            return
        self.connected = self.fresh = True
        self.totals.connected += 1

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self.connected:
            self.totals.connected -= 1
            self.totals.disconnects += 1
        self.connected = False

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.inflight -= 1
        self.totals.acked[self._kinds.pop(mid, "?")] += 1
        if reason_code.is_failure:
            self.totals.refused += 1

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # Our own status topic (the publisher watches it for a late Will of an older
        # session; a fresh broker has none).
        return


class Generator:
    """Every gateway of this process, a Poisson source of seat changes, the periodic
    reports, and one ``selectors`` loop; commands arrive as JSON lines on stdin."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.totals = Totals()
        sites = [SiteLayout(s["id"], tuple((d, n) for d, n in s["devices"])) for s in plan["sites"]]
        self.gateways = [EmulatedGateway(site, plan, self.totals) for site in sites]
        self.rng = random.Random(plan["seed"])
        self.seats = [
            (gw, device, number)
            for gw in self.gateways
            for device, count in gw.site.devices
            for number in range(1, count + 1)
        ]
        self.occupied = bytearray(
            1 if self.rng.random() < plan["occupied_share"] else 0 for _ in self.seats
        )
        self.changed_at = array("d", [-math.inf]) * len(self.seats)
        self.rate = 0.0
        self.next_change = math.inf
        self.changes = 0  # since the last rate command
        self.skipped = 0
        self.behind = 0.0
        self.interval: float = plan["report_interval"]
        self.periodic = True
        now = time.monotonic()
        self.reports = [
            (now + self.rng.uniform(0, self.interval), i) for i in range(len(self.gateways))
        ]
        heapq.heapify(self.reports)
        self.selector = selectors.DefaultSelector()
        self.touched: set[EmulatedGateway] = set()
        # This run's ids in a formatted payload: the contract reads it and writes it back
        # byte for byte.
        gw = self.gateways[0]
        device = gw.site.devices[0][0]
        sample = seat_payload(gw.site.id, device, f"{device}.1", _now_us(), 0, True)
        if encode_payload(parse_reading(sample)) != sample:
            raise RuntimeError(f"seat payload differs from the contract's:\n{sample!r}")

    # Commands ------------------------------------------------------------------------------

    def command(self, doc: dict[str, Any]) -> dict[str, Any]:
        cmd = doc["cmd"]
        if cmd == "start":
            self.start()
            return {"gateways": len(self.gateways)}
        if cmd == "rate":
            changes, self.changes = self.changes, 0
            behind, self.behind = self.behind, 0.0
            self.rate = float(doc["seat_rate"])
            self.next_change = (
                time.monotonic() + self.rng.expovariate(self.rate) if self.rate > 0 else math.inf
            )
            return {"at": time.time(), "changes": changes, "behind": behind}
        if cmd == "periodic":
            self.periodic = bool(doc["on"])
            return {}
        if cmd == "stats":
            return {
                "connected": self.totals.connected,
                "published": self.totals.published,
                "acked": sum(self.totals.acked.values()),
                "acked_by_kind": dict(self.totals.acked),
                "queued": sum(len(gw.outbox) for gw in self.gateways),
                "inflight": sum(gw.inflight for gw in self.gateways),
                "refused": self.totals.refused,
                "disconnects": self.totals.disconnects,
                "skipped": self.skipped,
                "behind": self.behind,
            }
        raise ValueError(f"unknown command {cmd!r}")

    def start(self) -> None:
        """Connect every gateway (CONNECT sent; CONNACK comes through the loop)."""
        host, port = self.plan["host"], self.plan["port"]
        index = 0
        for gw in self.gateways:
            count = sum(n for _, n in gw.site.devices)
            states = [bool(s) for s in self.occupied[index : index + count]]
            index += count
            per_board, at = [], 0
            for _, n in gw.site.devices:
                per_board.append(states[at : at + n])
                at += n
            gw.initial(per_board)
            gw.client.connect(host, port, keepalive=self.plan["keepalive"])
            sock = gw.client.socket()
            assert sock is not None
            gw.fd = sock.fileno()
            self.selector.register(gw.fd, selectors.EVENT_READ, gw)
            self._watch_write(gw)

    # The loop --------------------------------------------------------------------------------

    def run(self) -> int:
        stdin = sys.stdin.fileno()
        os.set_blocking(stdin, False)
        self.selector.register(stdin, selectors.EVENT_READ, None)
        pending = b""
        next_misc = time.monotonic() + 1.0
        print(json.dumps({"ready": True}), flush=True)
        while True:
            now = time.monotonic()
            due = min(self.next_change, self.reports[0][0] if self.periodic else math.inf)
            timeout = min(max(0.0, due - now), 0.2)
            for key, mask in self.selector.select(timeout):
                gw = key.data
                if gw is None:
                    data = os.read(stdin, 65536)
                    if not data:
                        self.shutdown()
                        return 0
                    pending += data
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        reply = self.command(json.loads(line))
                        sys.stdout.write(json.dumps(reply) + "\n")
                        sys.stdout.flush()
                    continue
                if mask & selectors.EVENT_READ:
                    gw.client.loop_read()
                if mask & selectors.EVENT_WRITE:
                    gw.client.loop_write()
                self.touched.add(gw)
            now = time.monotonic()
            self._emit_due(now)
            for gw in self.touched:
                gw.pump()
                self._watch_write(gw)
            self.touched.clear()
            if now >= next_misc:
                next_misc = now + 1.0
                for gw in self.gateways:
                    if gw.fd >= 0:
                        gw.client.loop_misc()
                        self._watch_write(gw)

    def _watch_write(self, gw: EmulatedGateway) -> None:
        if gw.fd < 0:
            return
        if gw.client.socket() is None:  # connection lost: paho closed the socket
            with contextlib.suppress(KeyError, OSError, ValueError):
                self.selector.unregister(gw.fd)
            gw.fd = -1
            return
        want = gw.client.want_write()
        if want != gw.watching_write:
            gw.watching_write = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self.selector.modify(gw.fd, events, gw)

    def _emit_due(self, now: float) -> None:
        while self.next_change <= now:
            self.behind = max(self.behind, now - self.next_change)
            self._change(now)
            self.next_change += self.rng.expovariate(self.rate)
        while self.periodic and self.reports[0][0] <= now:
            due, i = heapq.heappop(self.reports)
            gw = self.gateways[i]
            gw.report()
            self.touched.add(gw)
            heapq.heappush(self.reports, (max(due + self.interval, now), i))

    def _change(self, now: float) -> None:
        n = len(self.seats)
        cooldown = min(COOLDOWN_S, 0.5 * n / self.rate)
        for _ in range(30):
            i = self.rng.randrange(n)
            if now - self.changed_at[i] >= cooldown:
                break
        else:
            self.skipped += 1
            return
        self.changed_at[i] = now
        self.occupied[i] ^= 1
        gw, device, number = self.seats[i]
        gw.seat(device, number, bool(self.occupied[i]))
        self.touched.add(gw)
        self.changes += 1

    def shutdown(self) -> None:
        for gw in self.gateways:
            if gw.fd >= 0:
                gw.client.disconnect()
                with contextlib.suppress(OSError):
                    gw.client.loop_write()


def _generator_main(plan_path: str) -> int:
    check_seat_payload()
    plan = json.loads(Path(plan_path).read_text())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return Generator(plan).run()


# The consumer (a worker process) -------------------------------------------------------


def _consumer_main(config_path: str) -> int:
    """``central.consumer.Consumer`` from a config file; answers each stdin line with its
    counters (one JSON line); stops cleanly (flush, ack, leave) when stdin closes."""
    from central.config import ConsumerConfig
    from central.consumer import Consumer
    from qihe.configfile import load_config_file

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpcore", "urllib3"):  # as ``qihe consumer run`` does
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    consumer = Consumer(load_config_file(config_path, ConsumerConfig))
    consumer.start()
    try:
        print(json.dumps({"ready": True}), flush=True)
        for _line in sys.stdin:
            print(json.dumps(asdict(consumer.stats())), flush=True)
    finally:
        consumer.stop()
    return 0


# The stack ----------------------------------------------------------------------------------


class CityBroker(MosquittoProcess):
    """Mosquitto with the limits of ``deploy/mosquitto/qihe.conf``, anonymous on loopback.

    ``save_every_change`` is the deploy file's persistence (a snapshot after every change);
    otherwise a snapshot every second, as the devstack does (see the module's notes).
    """

    def __init__(self, folder: Path, *, save_every_change: bool, nodelay: bool) -> None:
        super().__init__(folder)
        self.save_every_change = save_every_change
        self.nodelay = nodelay

    def config_text(self) -> str:
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        save = ["autosave_interval 1"]
        if self.save_every_change:
            save = ["autosave_on_changes true", "autosave_interval 1"]
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
                *save,
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


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from ``/proc/stat``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    total = sum(fields[:8])  # guest time is already in user
    return total - idle, total


def _raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        if want < needed:
            print(f"open-file limit {want} < {needed}: connections may fail", file=sys.stderr)


def write_live_config(folder: Path, sites: list[SiteLayout], broker: CityBroker) -> Path:
    directory = []
    for site in sites:
        grids, row = [], 1
        for device, count in site.devices:
            grids.append(
                {"gateway": GATEWAY, "device": device, "count": count, "cols": 8, "first_row": row}
            )
            row += math.ceil(count / 8)
        directory.append(
            {
                "id": site.id,
                "name": f"淇河书屋·{site.id}",
                "opening_hours": {"daily": "00:00-24:00"},
                "seat_grids": grids,
            }
        )
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


def _drop_session(broker: CityBroker, client_id: str) -> None:
    """End a consumer's persistent session: else the broker queues for it for two days."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 0
    client.connect(broker.host, broker.port, clean_start=True, properties=properties)
    client.loop_start()
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()


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


# Measuring --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # monotonic
    published: int  # PUBACKed to the gateways
    consumed: int  # acked by the consumer(s): stored in InfluxDB
    live: int  # taken by the live service (its /healthz messages_received)
    queued: int  # waiting in the gateways' outboxes (windows full)


class Sampler:
    """Counters of the generators, the consumers and the live service every ``SAMPLE_S``;
    how far the consumers and the live service are behind what the broker took."""

    def __init__(self, generators: list[Worker]) -> None:
        self.generators = generators
        self.http: httpx.AsyncClient | None = None  # the live service
        self.consumers: list[Worker] = []
        self.samples: list[Sample] = []
        self._published: list[int] = []
        #: Published before the current consumers started, and what they acked before
        #: the first reading they are measured on (retained messages replayed to them).
        self.published_base = 0
        self.consumed_base = 0
        #: Held by each sample, and while the consumers are replaced.
        self.lock = asyncio.Lock()

    def reset(self, consumers: list[Worker], published: int, consumed: int) -> None:
        self.consumers, self.published_base, self.consumed_base = consumers, published, consumed
        self.samples, self._published = [], []

    async def take(self) -> Sample:
        async with self.lock:
            return await self._take()

    async def _take(self) -> Sample:
        began = time.monotonic()
        assert self.http is not None
        health, *replies = await asyncio.gather(
            self.http.get("/healthz"),
            *(w.request(cmd="stats") for w in self.generators),
            *(w.request(cmd="stats") for w in self.consumers),
        )
        gens, cons = replies[: len(self.generators)], replies[len(self.generators) :]
        sample = Sample(
            t=(began + time.monotonic()) / 2,
            published=sum(g["acked"] for g in gens) - self.published_base,
            consumed=sum(c["acked"] for c in cons) - self.consumed_base,
            live=health.json()["messages_received"] - self.published_base,
            queued=sum(g["queued"] + g["inflight"] for g in gens),
        )
        self.samples.append(sample)
        self._published.append(max(sample.published, self._published[-1] if self._published else 0))
        return sample

    async def run(self) -> None:
        while True:
            await self.take()
            await asyncio.sleep(SAMPLE_S)

    def lag(self, i: int, of: str = "consumed") -> tuple[int, float]:
        """Messages published but not yet stored (``of="live"``: not yet taken by the live
        service) at sample ``i``, and the oldest one's age (at least, when it is older than
        the first sample)."""
        s = self.samples[i]
        done: int = getattr(s, of)
        behind = s.published - done
        if behind <= 0:
            return 0, 0.0
        target = done + 1
        j = bisect.bisect_left(self._published, target, 0, i + 1)
        if j == 0:
            return behind, s.t - self.samples[0].t
        a, b = self.samples[j - 1], self.samples[min(j, i)]
        span = self._published[min(j, i)] - self._published[j - 1]
        frac = (target - self._published[j - 1]) / span if span > 0 else 1.0
        return behind, max(0.0, s.t - (a.t + frac * (b.t - a.t)))


class EventTap:
    """One client of ``/api/v1/events``: the latency of every seat event (t1 − its ``since``)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (t0 wall, latency s), in arrival order
        self.ready = asyncio.Event()
        self.resyncs = 0
        self.seat_seen = asyncio.Event()
        #: Seats whose last event showed them free or occupied.
        self.known: set[tuple[str, str]] = set()

    async def run(self, http: httpx.AsyncClient) -> None:
        async with http.stream("GET", "/api/v1/events", timeout=None) as response:
            response.raise_for_status()
            pending = b""
            async for chunk in response.aiter_raw():
                now = time.time()
                pending += chunk
                if b"\n\n" not in pending:
                    continue
                *frames, pending = pending.split(b"\n\n")
                for frame in frames:
                    self._take(frame, now)

    def _take(self, frame: bytes, now: float) -> None:
        kind, data = b"", b""
        for line in frame.split(b"\n"):
            if line.startswith(b"event: "):
                kind = line[7:]
            elif line.startswith(b"data: "):
                data = line[6:]
        if kind == b"seat":
            self.seat_seen.set()
            doc = json.loads(data)
            seat, key = doc["seat"], (doc["site"], doc["seat"]["id"])
            if seat["state"] in ("occupied", "free") and seat["since"]:
                t0 = datetime.fromisoformat(seat["since"]).timestamp()
                self.samples.append((t0, now - t0))
                self.known.add(key)
            else:
                self.known.discard(key)
        elif kind == b"ready":
            self.ready.set()
        elif kind == b"resync":
            self.resyncs += 1

    async def settle(self, quiet: float = 0.5, most: float = 15.0) -> None:
        """Until no seat event came for ``quiet`` s (the live service caught up), or ``most``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(most):
                while True:
                    self.seat_seen.clear()
                    try:
                        async with asyncio.timeout(quiet):
                            await self.seat_seen.wait()
                    except TimeoutError:
                        return

    def latencies(self, start: float, end: float) -> list[float]:
        """Latencies (ms) of the changes made in ``[start, end]`` (wall clock), sorted."""
        return sorted(lat * 1000 for t0, lat in self.samples if start <= t0 <= end)


@dataclass(slots=True)
class Span:
    """One measured stretch at one offered rate."""

    phase: str
    label: str
    offered: float  # messages/s asked of the generator, all kinds
    seconds: float
    published: float  # messages/s the broker PUBACKed
    consumed: float  # messages/s the consumer(s) stored and acked
    lag_max: int  # messages
    lag_max_s: float
    lag_end_s: float
    backlog_end: int  # in the gateways' outboxes and windows at the end
    behind_s: float  # how late the generator made its latest change (it could not keep up)
    drained_s: float | None  # from the end until everything was stored (None: not within limit)
    changes: int
    e2e_samples: int
    e2e_lost: int
    p50: float | None
    p99: float | None
    max: float | None
    resyncs: int  # times the event stream fell behind and was told to resync
    cpu: dict[str, float]  # % of one core
    machine_busy: float  # % of all cores busy, every process on the machine (others' too)
    #: Growth of the consumer's backlog (least squares over the step after its first
    #: flush), messages/s: about 0 while it keeps up.
    lag_growth: float
    live_lag_max: int  # messages the live service had not taken yet
    live_lag_max_s: float
    live_lag_growth: float
    holds: bool = False


class City:
    """The running stack and what it measures."""

    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.sites = layout(args.gateways, args.seats)
        self.seats = args.gateways * args.seats
        self.periodic_rate = sum(periodic_per_gateway(s) for s in self.sites) / args.report_interval
        self.broker = CityBroker(
            folder / "mosquitto",
            save_every_change=args.persistence == "deploy",
            nodelay=args.nodelay,
        )
        self.influx = InfluxdProcess(folder / "influxd")
        self.live: Child | None = None
        self.http: httpx.AsyncClient | None = None
        self.generators: list[Worker] = []
        self.seat_share: list[float] = []
        self.consumers: list[Worker] = []
        self.sampler = Sampler(self.generators)
        self.tap = EventTap()
        self.spans: list[Span] = []
        self.notes: dict[str, Any] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self._next_poll = 0.0

    # Processes -----------------------------------------------------------------------------

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

    async def start(self, exits: contextlib.AsyncExitStack) -> None:
        args, folder = self.args, self.folder
        await asyncio.gather(
            asyncio.to_thread(self.broker.start), asyncio.to_thread(self.influx.start)
        )
        exits.callback(self.influx.stop)
        exits.callback(self.broker.stop)

        live_config = write_live_config(folder, self.sites, self.broker)
        port = yaml.safe_load(live_config.read_text())["http"]["port"]
        argv = [sys.executable, "-m", "qihe.cli", "live", "--config", str(live_config)]
        self.live = Child("live service", argv, folder / "live.log")
        exits.push_async_callback(self.live.stop)
        await self.live.start()
        self.http = await exits.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
        )
        await self._wait_live_healthy()
        self.sampler.http = self.http

        self.sampler.reset(
            await self.start_consumers(exits, ["bench-consumer"], database="city", group=""), 0, 0
        )
        tap = asyncio.create_task(self.tap.run(self.http), name="event-stream")
        self.tasks.append(tap)
        exits.push_async_callback(_cancel, tap)
        async with asyncio.timeout(10):
            await self.tap.ready.wait()

        count = max(1, min(args.generator_processes, len(self.sites)))
        for w in range(count):
            mine = self.sites[w::count]
            plan = {
                "host": self.broker.host,
                "port": self.broker.port,
                "prefix": PREFIX,
                "inflight": args.inflight,
                "keepalive": 30,
                "report_interval": args.report_interval,
                "occupied_share": 0.3,
                "seed": args.seed + w,
                "sites": [{"id": s.id, "devices": s.devices} for s in mine],
            }
            path = folder / f"generator-{w}.json"
            path.write_text(json.dumps(plan))
            argv = [sys.executable, "-m", "bench.city", "--generator-worker", str(path)]
            worker = Worker(f"generator {w}", argv, folder / f"generator-{w}.log")
            self.generators.append(worker)
            exits.push_async_callback(worker.close)
            await worker.start()
            self.seat_share.append(sum(n for s in mine for _, n in s.devices) / self.seats)

    async def start_consumers(
        self, exits: contextlib.AsyncExitStack, names: list[str], *, database: str, group: str
    ) -> list[Worker]:
        workers = []
        for name in names:
            path = write_consumer_config(
                self.folder, name, self.broker, self.influx, database, group
            )
            argv = [sys.executable, "-m", "bench.city", "--consumer-worker", str(path)]
            worker = Worker(name, argv, self.folder / f"{name}.log")
            exits.push_async_callback(worker.close)
            workers.append(worker)
        await asyncio.gather(*(w.start() for w in workers))
        self.consumers = workers
        return workers

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

    async def _live_complete(self) -> bool:
        """Every seat known in the live service: seen on the event stream (asking the API
        would cost the service a refresh of every site per request), or after the stream
        had to resync, from ``/api/v1/sites`` every few seconds."""
        if len(self.tap.known) >= self.seats:
            return True
        if not self.tap.resyncs or time.monotonic() < self._next_poll:
            return False
        self._next_poll = time.monotonic() + 5
        assert self.http is not None
        listing = (await self.http.get("/api/v1/sites")).json()["sites"]
        known = [
            s
            for s in listing
            if s["online"] and s["seats"]["free"] + s["seats"]["occupied"] == self.args.seats
        ]
        return len(known) == len(self.sites)

    # Phases ---------------------------------------------------------------------------------

    async def initial_state(self) -> dict[str, float]:
        """Every gateway connects and publishes its status, boards and seats at once."""
        began = time.monotonic()
        await asyncio.gather(*(g.request(cmd="start") for g in self.generators))
        marks: dict[str, float] = {}
        async with asyncio.timeout(START_TIMEOUT_S):
            while not {"connected", "published", "stored", "live"} <= marks.keys():
                await asyncio.sleep(0.5)
                self.check_alive()
                stats = await asyncio.gather(*(g.request(cmd="stats") for g in self.generators))
                sample = self.sampler.samples[-1] if self.sampler.samples else None
                now = time.monotonic() - began
                if "connected" not in marks and sum(s["connected"] for s in stats) == len(
                    self.sites
                ):
                    marks["connected"] = now
                settled = all(s["queued"] == 0 and s["inflight"] == 0 for s in stats)
                if "published" not in marks and "connected" in marks and settled:
                    marks["published"] = now
                    marks["messages"] = sum(s["acked"] for s in stats)
                if (
                    "published" in marks
                    and "stored" not in marks
                    and sample is not None
                    and sample.consumed >= marks["messages"]
                ):
                    marks["stored"] = now
                if "live" not in marks and "published" in marks and await self._live_complete():
                    marks["live"] = now
                    await self.live_caught_up(within=START_TIMEOUT_S)
                    marks["live_all"] = time.monotonic() - began
        assert self.live is not None
        marks["live_rss_mb"] = proc_figures(self.live.pid).vm_rss_bytes / 1e6
        return marks

    async def measure(self, phase: str, label: str, offered: float, seconds: float) -> Span:
        """Offer ``offered`` messages/s for ``seconds``; then stop, drain and read the figures.
        A city-rate window starts once the live service has caught up."""
        seat_rate = max(0.0, offered - self.periodic_rate)
        if label.startswith("city"):
            await self.live_caught_up(within=30.0)
        cpu0, busy0, resyncs = self.cpu_seconds(), _machine_jiffies(), self.tap.resyncs
        first = len(self.sampler.samples)
        s0 = await self.sampler.take()
        replies = await asyncio.gather(
            *(
                g.request(cmd="rate", seat_rate=seat_rate * share)
                for g, share in zip(self.generators, self.seat_share, strict=True)
            )
        )
        wall_start = min(r["at"] for r in replies)
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            await asyncio.sleep(min(1.0, seconds - (time.monotonic() - began)))
            self.check_alive()
        s1 = await self.sampler.take()
        last = len(self.sampler.samples) - 1
        cpu1, busy1 = self.cpu_seconds(), _machine_jiffies()
        replies = await asyncio.gather(
            *(g.request(cmd="rate", seat_rate=0) for g in self.generators)
        )
        wall_end = max(r["at"] for r in replies)
        elapsed = s1.t - s0.t
        drained = await self.drain()
        await self.tap.settle(most=15.0 if label.startswith("city") else self.args.settle)
        lags = [self.sampler.lag(i) for i in range(first, last + 1)]
        live = [self.sampler.lag(i, of="live") for i in range(first, last + 1)]
        latencies = self.tap.latencies(wall_start, wall_end)
        changes = sum(r["changes"] for r in replies)
        span = Span(
            phase=phase,
            label=label,
            offered=offered,
            seconds=elapsed,
            published=(s1.published - s0.published) / elapsed,
            consumed=(s1.consumed - s0.consumed) / elapsed,
            lag_max=max(n for n, _ in lags),
            lag_max_s=max(s for _, s in lags),
            lag_end_s=lags[-1][1],
            backlog_end=s1.queued,
            behind_s=max(r["behind"] for r in replies),
            drained_s=drained,
            changes=changes,
            e2e_samples=len(latencies),
            e2e_lost=max(0, changes - len(latencies)),
            p50=percentile(latencies, 50),
            p99=percentile(latencies, 99),
            max=latencies[-1] if latencies else None,
            resyncs=self.tap.resyncs - resyncs,
            cpu={name: 100 * (cpu1[name] - cpu0.get(name, 0.0)) / elapsed for name in cpu1},
            machine_busy=100 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
            lag_growth=self._lag_growth(first, last, s0.t + LAG_WARMUP_S),
            live_lag_max=max(n for n, _ in live),
            live_lag_max_s=max(s for _, s in live),
            live_lag_growth=self._lag_growth(first, last, s0.t + LAG_WARMUP_S, of="live"),
        )
        growth = span.lag_growth / max(span.published, 1.0)
        span.holds = (
            span.published >= 0.95 * offered
            and growth <= MAX_GROWTH
            and span.lag_max_s <= self.args.max_lag
            and drained is not None
        )
        self.spans.append(span)
        print(_span_line(span), file=sys.stderr, flush=True)
        return span

    def _lag_growth(self, first: int, last: int, after: float, of: str = "consumed") -> float:
        """Messages/s by which the consumer's backlog grew (least squares), from ``after``."""
        points = [
            (self.sampler.samples[i].t, self.sampler.lag(i, of)[0])
            for i in range(first, last + 1)
            if self.sampler.samples[i].t >= after
        ]
        if len(points) < 3:
            return 0.0
        mean_t = sum(t for t, _ in points) / len(points)
        mean_n = sum(n for _, n in points) / len(points)
        spread = sum((t - mean_t) ** 2 for t, _ in points)
        return sum((t - mean_t) * (n - mean_n) for t, n in points) / spread if spread else 0.0

    async def live_caught_up(self, within: float) -> float | None:
        """Seconds until the live service has taken every message published by now; None if
        not ``within`` (it is still working through a backlog the broker queued for it)."""
        began = time.monotonic()
        target = (await self.sampler.take()).published
        while time.monotonic() - began < within:
            sample = await self.sampler.take()
            if sample.live >= target:
                return time.monotonic() - began
            await asyncio.sleep(0.2)
        return None

    async def drain(self, within: float = DRAIN_TIMEOUT_S) -> float | None:
        """Seconds until every message published or queued by now is stored and acked (the
        periodic reports that keep coming meanwhile are not waited for); None if not
        ``within``."""
        began = time.monotonic()
        now = await self.sampler.take()
        target = now.published + now.queued
        while time.monotonic() - began < within:
            sample = await self.sampler.take()
            if sample.consumed >= target:
                return time.monotonic() - began
            await asyncio.sleep(0.1)
            self.check_alive()
        return None

    async def ladder(self, phase: str, rates: list[float], *, search: bool) -> list[Span]:
        """Each rate until one does not hold. With ``search``: if even the first did not,
        halve it (twice at most) until one does; then once halfway between the highest
        rate that held and the lowest that did not."""
        spans: list[Span] = []

        async def step(rate: float) -> bool:
            span = await self.measure(phase, "stress", rate, self.args.step)
            spans.append(span)
            return span.drained_s is not None  # else the next step would start on a backlog

        for rate in rates:
            if not await step(rate) or not spans[-1].holds:
                break
        if search:
            for _ in range(2):
                if any(s.holds for s in spans) or spans[-1].drained_s is None:
                    break
                await step(min(s.offered for s in spans) / 2)
            good = [s.offered for s in spans if s.holds]
            bad = [s.offered for s in spans if not s.holds]
            if good and bad and spans[-1].drained_s is not None:
                await step((max(good) + min(bad)) / 2)
        return spans

    async def switch_to_shared(self, exits: contextlib.AsyncExitStack) -> dict[str, Any]:
        """Quiet the gateways, stop the one consumer (its session ended), start two sharing
        one group; wait out what the broker replays to them before anything is published."""
        await asyncio.gather(*(g.request(cmd="periodic", on=False) for g in self.generators))
        await self.drain()
        check = await self.count_points("city", since=None)
        async with self.sampler.lock:
            published = self.sampler.published_base + max(self.sampler._published, default=0)
            for worker in self.consumers:
                await worker.close()
            await asyncio.to_thread(_drop_session, self.broker, "bench-consumer")
            began = time.monotonic()
            workers = await self.start_consumers(
                exits,
                ["bench-consumer-1", "bench-consumer-2"],
                database="city_shared",
                group=SHARED_GROUP,
            )
            replayed = await self._replayed(workers)
            self.notes["replay_s"] = time.monotonic() - began
            self.notes["replayed"] = replayed
            self.sampler.reset(workers, published, sum(replayed))
        self.notes["shared_start"] = (time.time(), await self._acked_by_kind())
        await asyncio.gather(*(g.request(cmd="periodic", on=True) for g in self.generators))
        return check

    async def _replayed(self, workers: list[Worker]) -> list[int]:
        """Messages each consumer got while nothing was published: retained ones, replayed on
        subscribing (Mosquitto before 2.0.13 does so on shared subscriptions too)."""
        last: list[int] = []
        steady = 0
        async with asyncio.timeout(START_TIMEOUT_S):
            while steady < 4:
                await asyncio.sleep(0.25)
                stats = await asyncio.gather(*(w.request(cmd="stats") for w in workers))
                now = [s["received"] for s in stats]
                done = all(s["pending"] == 0 for s in stats)
                steady = steady + 1 if now == last and done else 0
                last = now
        return last

    async def _acked_by_kind(self) -> Counter[str]:
        stats = await asyncio.gather(*(g.request(cmd="stats") for g in self.generators))
        total: Counter[str] = Counter()
        for s in stats:
            total.update(s["acked_by_kind"])
        return total

    async def count_points(
        self, database: str, since: tuple[float, Counter[str]] | None
    ) -> dict[str, Any]:
        """Published (per kind; since a moment, with what was published before it) against
        the points InfluxDB holds stamped from that moment on: lost and extra."""
        acked = await self._acked_by_kind()
        where = ""
        if since is not None:
            acked = acked - since[1]
            where = f" WHERE time >= {int(since[0] * 1e9)}"
        stored: dict[str, int] = {}
        for kind, n in acked.items():
            if n == 0:
                continue
            measurement, field_name = MEASURED_BY[kind]
            rows = await asyncio.to_thread(
                self.influx.rows,
                f'SELECT count("{field_name}") FROM "{measurement}"{where}',
                database,
            )
            stored[kind] = int(rows[0]["count"]) if rows else 0
        published = {k: n for k, n in acked.items() if n}
        return {
            "published": sum(published.values()),
            "stored": sum(stored.values()),
            "lost": sum(max(0, n - stored.get(k, 0)) for k, n in published.items()),
            "extra": sum(max(0, stored.get(k, 0) - n) for k, n in published.items()),
            "by_kind": {k: [n, stored.get(k, 0)] for k, n in published.items()},
        }

    async def shared_check(self) -> dict[str, Any]:
        """After the two consumers' stretch: every message written once, by one of them."""
        await asyncio.gather(*(g.request(cmd="periodic", on=False) for g in self.generators))
        drained = await self.drain(within=2 * DRAIN_TIMEOUT_S)
        counts = await self.count_points("city_shared", since=self.notes["shared_start"])
        stats = await asyncio.gather(*(c.request(cmd="stats") for c in self.consumers))
        replayed: list[int] = self.notes["replayed"]
        received = [s["received"] - r for s, r in zip(stats, replayed, strict=True)]
        doubled = sum(received) - counts["published"]
        return {
            **counts,
            "drained": drained is not None,
            "received": received,
            "replayed": replayed,
            "replay_s": self.notes["replay_s"],
            "invalid": sum(s["invalid"] for s in stats),
            "doubled": doubled,
            "lost_or_doubled": counts["lost"] + counts["extra"] + abs(doubled),
            "each_got_some": all(r > 0 for r in received),
        }

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


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
        await task


# Running ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Results:
    initial: dict[str, float] = field(default_factory=dict)
    spans: list[Span] = field(default_factory=list)
    check_one: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    memory_city: dict[str, float] = field(default_factory=dict)
    memory_end: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


async def run_city(args: argparse.Namespace, folder: Path) -> Results:
    began = time.monotonic()
    results = Results()
    async with contextlib.AsyncExitStack() as exits:
        city = City(args, folder)
        print(
            f"starting {args.gateways} gateways × {args.seats} seats, "
            f"{city.periodic_rate:.0f} periodic messages/s …",
            file=sys.stderr,
            flush=True,
        )
        await city.start(exits)
        sampler = asyncio.create_task(city.sampler.run(), name="sampler")
        city.tasks.append(sampler)
        exits.push_async_callback(_cancel, sampler)
        results.initial = await city.initial_state()
        print(f"initial state: {_initial_line(results.initial)}", file=sys.stderr, flush=True)

        city_rate = city.seats * args.changes_per_seat_hour / 3600 + city.periodic_rate
        for run in range(args.runs):
            await city.measure("one consumer", f"city {run + 1}", city_rate, args.window)
        results.memory_city = city.memory()
        rates = [float(r) for r in args.stress_rates.split(",") if r.strip()]
        one = await city.ladder("one consumer", rates, search=True)

        results.check_one = await city.switch_to_shared(exits)
        # Where one consumer stopped keeping up: its best rate, and the next it failed.
        good = [s.offered for s in one if s.holds]
        bad = [s.offered for s in one if not s.holds and (not good or s.offered > max(good))]
        shared_rates = sorted({*([max(good)] if good else []), *([min(bad)] if bad else [])})
        await city.ladder("two consumers", shared_rates or rates[:1], search=False)
        results.shared = await city.shared_check()
        results.memory_end = city.memory()
        results.spans = city.spans
        await _cancel(sampler)  # before the consumers it asks are stopped
    results.seconds = time.monotonic() - began
    return results


# Reporting ---------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _span_line(s: Span) -> str:
    verdict = "holds" if s.holds else "does not hold"
    return (
        f"  {s.phase}, {s.label} {s.offered:,.0f}/s: published {s.published:,.0f}/s, stored "
        f"{s.consumed:,.0f}/s, lag max {s.lag_max:,} ({s.lag_max_s:.1f} s, growing "
        f"{s.lag_growth:+,.0f}/s); live lag max {s.live_lag_max:,} ({s.live_lag_max_s:.1f} s); e2e "
        f"{s.e2e_samples:,} samples p50 {_ms(s.p50)} p99 {_ms(s.p99)}, no event {s.e2e_lost}, "
        f"resyncs {s.resyncs}; "
        f"CPU {', '.join(f'{k} {v:.0f}%' for k, v in s.cpu.items())}, machine "
        f"{s.machine_busy:.0f}% busy; {verdict}"
    )


def _initial_line(marks: dict[str, float]) -> str:
    return (
        f"{marks.get('messages', 0):,.0f} messages; all connected at {marks['connected']:.1f} s, "
        f"all PUBACKed at {marks['published']:.1f} s, stored at {marks['stored']:.1f} s, "
        f"every seat on the live service at {marks['live']:.1f} s"
    )


def spans_table(spans: Sequence[Span]) -> str:
    names = list(spans[0].cpu) if spans else []
    lines = [
        "| consumers | stretch | offered /s | published /s | stored /s | lag max | lag growth | "
        "live lag max | "
        "e2e samples | p50 | p99 | max | no event | resyncs | "
        + " | ".join(f"CPU {n}" for n in names)
        + " | machine busy | holds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        + "---|" * len(names)
        + "---|---|",
    ]
    for s in spans:
        lines.append(
            f"| {s.phase} | {s.label} | {s.offered:,.0f} | {s.published:,.0f} | "
            f"{s.consumed:,.0f} | {s.lag_max:,} ({s.lag_max_s:.1f} s) | "
            f"{s.lag_growth:+,.0f}/s | {s.live_lag_max:,} ({s.live_lag_max_s:.1f} s) | "
            f"{s.e2e_samples:,} | "
            f"{_ms(s.p50)} | {_ms(s.p99)} | {_ms(s.max)} | {s.e2e_lost:,} | {s.resyncs} | "
            + " | ".join(f"{s.cpu[n]:.0f}%" for n in names)
            + f" | {s.machine_busy:.0f}% | "
            + ("–" if s.label != "stress" else "yes" if s.holds else "no")
            + " |"
        )
    return "\n".join(lines)


def _rates(spans: Sequence[Span]) -> str:
    return ", ".join(f"{s.offered:,.0f}" for s in spans)


def _limiter(span: Span | None) -> str:
    """Which process was busiest when the rate stopped holding (a hint, not a proof)."""
    if span is None:
        return "every step held (none higher tried)"
    ranked = sorted(span.cpu.items(), key=lambda kv: -kv[1])
    busiest = ", ".join(f"{name} {cpu:.0f}%" for name, cpu in ranked[:4])
    return (
        f"at {span.offered:,.0f}/s the backlog grew {span.lag_growth:,.0f}/s; CPU {busiest} "
        f"of a core; the machine {span.machine_busy:.0f}% busy (ours "
        f"{sum(span.cpu.values()) / (os.cpu_count() or 1):.0f}%)"
    )


def rows(results: Results, args: argparse.Namespace) -> list[Row]:
    spans = results.spans
    city = [s for s in spans if s.phase == "one consumer" and s.label.startswith("city")]
    one = [s for s in spans if s.phase == "one consumer" and s.label == "stress"]
    two = [s for s in spans if s.phase == "two consumers" and s.label == "stress"]
    best_one = max((s for s in one if s.holds), key=lambda s: s.offered, default=None)
    best_two = max((s for s in two if s.holds), key=lambda s: s.offered, default=None)
    fail_one = min((s for s in one if not s.holds), key=lambda s: s.offered, default=None)
    fail_two = min((s for s in two if not s.holds), key=lambda s: s.offered, default=None)
    shared = results.shared
    initial = results.initial
    first_step = one[0] if one else None
    first = first_step.offered if first_step else 0.0
    city_rate = city[0].offered if city else 0.0

    def lag(span: Span | None) -> float | None:
        return None if span is None else span.lag_max_s

    out = [
        Row(
            SCENARIO,
            "sustained messages/s, one consumer keeping up",
            None if best_one is None else best_one.published,
            "msg/s",
            runs=[] if best_one is None else [best_one.published],
            note=f"ladder {_rates(one)}; limit {_limiter(fail_one)}",
        ),
        Row(
            SCENARIO,
            "sustained messages/s, two consumers (shared subscription)",
            None if best_two is None else best_two.published,
            "msg/s",
            runs=[] if best_two is None else [best_two.published],
            note=f"ladder {_rates(two)}; limit {_limiter(fail_two)}",
        ),
        Row(
            SCENARIO,
            f"consumer lag, max at city rate ({city_rate:,.0f} msg/s)",
            median([s.lag_max_s for s in city]),
            "s",
            runs=[s.lag_max_s for s in city],
            note=f"in messages: {', '.join(f'{s.lag_max:,}' for s in city)}",
        ),
        Row(
            SCENARIO,
            "consumer lag, max at the sustained rate",
            lag(best_one),
            "s",
            runs=[] if best_one is None else [best_one.lag_max_s],
        ),
        Row(
            SCENARIO,
            "end to end p50, seat change → live page, city rate",
            median([s.p50 for s in city]),
            "ms",
            runs=[s.p50 for s in city if s.p50 is not None],
        ),
        Row(
            SCENARIO,
            "end to end p99, seat change → live page, city rate",
            median([s.p99 for s in city]),
            "ms",
            target=Target("value", "<=", 100),
            runs=[s.p99 for s in city if s.p99 is not None],
            note=(
                f"{sum(s.e2e_samples for s in city):,} changes, "
                f"{sum(s.e2e_lost for s in city)} without event; from the gateway's publish "
                "(its outbox commit wait is bench/live_latency's)"
            ),
        ),
        Row(
            SCENARIO,
            "end to end max, city rate",
            median([s.max for s in city]),
            "ms",
            runs=[s.max for s in city if s.max is not None],
        ),
        Row(
            SCENARIO,
            f"end to end p99 at {first:,.0f} msg/s (the ladder's first step)",
            None if first_step is None else first_step.p99,
            "ms",
            runs=[] if first_step is None or first_step.p99 is None else [first_step.p99],
            note=(
                ""
                if first_step is None
                else f"p50 {_ms(first_step.p50)}; the live service's backlog grew "
                f"{first_step.live_lag_growth:+,.0f}/s (max {first_step.live_lag_max:,} "
                f"messages, {first_step.live_lag_max_s:.1f} s)"
            ),
        ),
        Row(
            SCENARIO,
            "live service intake, city's initial state (every seat shown)",
            initial.get("messages", 0) / initial["live_all"] if initial.get("live_all") else None,
            "msg/s",
            note=(
                f"{initial.get('messages', 0):,.0f} messages PUBACKed "
                f"{initial.get('published', 0):.0f} s after the gateways started connecting, "
                f"stored by the consumer at {initial.get('stored', 0):.0f} s, every seat shown "
                f"by the live service at {initial.get('live', 0):.0f} s, every message taken "
                f"at {initial.get('live_all', 0):.0f} s"
            ),
        ),
        Row(
            SCENARIO,
            f"live service VmRSS, {args.gateways * args.seats:,} seats at city rate",
            results.memory_city.get("live_rss_mb"),
            "MB",
        ),
        Row(
            SCENARIO,
            "live service VmHWM (peak, stress included)",
            results.memory_end.get("live_hwm_mb"),
            "MB",
        ),
        Row(
            SCENARIO,
            "broker VmHWM (peak)",
            results.memory_end.get("broker_hwm_mb"),
            "MB",
            note=f"broker CPU at city rate {median([s.cpu['broker'] for s in city]) or 0:.0f}%",
        ),
        Row(
            SCENARIO,
            "consumer CPU at city rate",
            median([s.cpu["consumer"] for s in city]),
            "% of a core",
            runs=[s.cpu["consumer"] for s in city],
            note=(
                "generator CPU at the sustained rate "
                f"{0 if best_one is None else best_one.cpu['generator']:.0f}% of a core"
            ),
        ),
        Row(
            SCENARIO,
            "shared subscription: readings lost + doubled",
            shared.get("lost_or_doubled"),
            "readings",
            target=Target("value", "<=", 0),
            note=(
                f"N={shared.get('published', 0):,} published; received "
                f"{' + '.join(f'{r:,}' for r in shared.get('received', []))}; InfluxDB holds "
                f"{shared.get('stored', 0):,}; lost {shared.get('lost')}, doubled "
                f"{shared.get('doubled')}, refused {shared.get('invalid')}; each got some: "
                f"{'yes' if shared.get('each_got_some') else 'NO'}; on subscribing each was "
                f"also sent {' / '.join(f'{r:,}' for r in shared.get('replayed', []))} retained "
                f"messages ({shared.get('replay_s', 0):.0f} s)"
            ),
        ),
    ]
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.city", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--gateways", type=int, default=400, help="one site, one connection each")
    parser.add_argument("--seats", type=int, default=80, help="seats per gateway")
    parser.add_argument("--changes-per-seat-hour", type=float, default=3.0)
    parser.add_argument(
        "--report-interval", type=float, default=60.0, help="seconds between periodic reports"
    )
    parser.add_argument("--window", type=float, default=10.0, help="seconds per city-rate window")
    parser.add_argument("--runs", type=int, default=3, help="city-rate windows (medians taken)")
    parser.add_argument(
        "--stress-rates",
        default="500,2000,4000,8000",
        help="total messages/s of the stress ladder, comma-separated",
    )
    parser.add_argument("--step", type=float, default=8.0, help="seconds per stress step")
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds a stress step's seat events may come after it (later: no event)",
    )
    parser.add_argument(
        "--max-lag", type=float, default=5.0, help="consumer lag (s) a step may reach"
    )
    parser.add_argument(
        "--inflight", type=int, default=100, help="per gateway (broker.max_inflight)"
    )
    parser.add_argument("--generator-processes", type=int, default=1)
    parser.add_argument(
        "--persistence",
        choices=("second", "deploy"),
        default="second",
        help="broker snapshots: every second, or after every change as deploy/mosquitto does",
    )
    parser.add_argument("--nodelay", action="store_true", help="set_tcp_nodelay in the broker")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep logs and state under DIR")
    parser.add_argument("--generator-worker", metavar="PLAN", help=argparse.SUPPRESS)
    parser.add_argument("--consumer-worker", metavar="CONFIG", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.generator_worker:
        return _generator_main(args.generator_worker)
    if args.consumer_worker:
        return _consumer_main(args.consumer_worker)
    check_seat_payload()
    _raise_open_files(4 * args.gateways + 1024)
    info = machine()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    command = " ".join(["python -m bench.city", *(argv or sys.argv[1:])])
    try:
        with contextlib.ExitStack() as cleanup:
            if args.keep is not None:
                folder = args.keep
                folder.mkdir(parents=True, exist_ok=True)
                for old in ("mosquitto", "influxd"):
                    if (folder / old).exists():
                        raise SystemExit(f"{folder / old} exists: --keep needs a fresh folder")
            else:
                folder = Path(
                    cleanup.enter_context(tempfile.TemporaryDirectory(prefix="qihe-city-"))
                )
            results = asyncio.run(run_city(args, folder))
    except KeyboardInterrupt:
        print("interrupted; every child process was stopped", file=sys.stderr)
        return 130
    finally:
        kill_leftovers()
    table_rows = rows(results, args)
    print(
        f"\nRun {info['date']}: {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
        f"Mosquitto {info['mosquitto']}, InfluxDB {info['influxdb']}; {args.gateways} gateways × "
        f"{args.seats} seats; broker snapshots {args.persistence}; took {results.seconds:.0f} s\n"
    )
    print(f"Initial state: {_initial_line(results.initial)}\n")
    print(spans_table(results.spans))
    print()
    for row in table_rows:
        value = "–" if row.value is None else f"{row.value:,.1f}"
        verdict = "" if row.met is None else f"  [{row.target}: {'met' if row.met else 'NOT met'}]"
        print(
            f"- {row.metric}: {value} {row.unit}{verdict}" + (f" — {row.note}" if row.note else "")
        )
    one = results.check_one
    print(
        f"\nOne consumer: InfluxDB holds {one.get('stored', 0):,} of {one.get('published', 0):,} "
        f"published (lost {one.get('lost')}, extra {one.get('extra')})"
    )
    if args.json is not None:
        write_rows(
            args.json,
            table_rows,
            command=command,
            initial=results.initial,
            spans=[asdict(s) for s in results.spans],
            one_consumer_check=results.check_one,
            shared_check=results.shared,
            memory={"city": results.memory_city, "end": results.memory_end},
            seconds=results.seconds,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
