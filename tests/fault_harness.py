"""Fault scenarios with real processes, compared reading by reading.

One :class:`Pipe` per scenario owns everything it may kill::

    scripted board ──pty──▶ gateway ──▶ Mosquitto ──▶ consumer ──▶ InfluxDB
    (in this process)       (qihe gateway run)        (qihe consumer run)

The broker and InfluxDB are the pipe's own (``devstack``), in the pipe's
folder, so killing them disturbs no other test. The board is scripted: every
``step`` seconds it toggles the next seat round-robin, every fifth step a person
enters or leaves (a PEOPLE report, and the door opening and closing), and it
sends a heartbeat (with the counter totals) every second. What it produced is
known exactly; :func:`compare` matches it with the points in InfluxDB by sensor
and by the board's frame number ``seq`` (a field of every serial reading), so a
missing reading, a second point for one reading and a swapped pair are all told
apart. The scenarios at the bottom are shared by ``tests/test_faults.py`` and
``python -m bench.reliability``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from zoneinfo import ZoneInfo

import yaml

from devstack import DevStackError, InfluxdProcess, MosquittoProcess
from edge.sequence import TrackerState
from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort
from firmware_bridge.messages import Door, Fault, Frame, Heartbeat, Hello, People, Seat
from tests.secure_broker import AclMosquitto

__all__ = [
    "DURABLE_BROKER",
    "SCENARIOS",
    "Comparison",
    "FaultRecord",
    "HarnessError",
    "Landed",
    "Pipe",
    "Produced",
    "Scenario",
    "ScenarioResult",
    "ServiceProcess",
    "board_before_gateway",
    "broker_down_60s",
    "broker_killed",
    "broker_killed_while_consumer_away",
    "broker_refuses_a_kind",
    "compare",
    "consumer_killed",
    "database_locked_30s",
    "fill_filesystem",
    "gateway_killed_before_commit",
    "gateway_killed_board_resending_slowly",
    "gateway_killed_repeatedly",
    "influxd_restarted",
    "markdown_table",
    "mounted_tmpfs",
    "points_of",
    "reading_of",
    "sd_card_full_60s",
    "serial_unplugged",
    "serial_unplugged_board_resends",
]

ROOT = Path(__file__).resolve().parent.parent
SITE = "qibin-taoyuan"
GATEWAY = "gw1"
DEVICE = "taoyuan-a"
SHANGHAI = ZoneInfo("Asia/Shanghai")
#: The board resends what the gateway has not acknowledged as stored after this long.
#: Shorter than the gateway's outbox commit interval (1 s), so a gap is refilled within
#: one commit; at 2 s, repeated gateway kills overflow the board's window, and what it
#: gives up is reported (gateway-kill-resend-2s).
RETRANSMIT_AFTER = timedelta(milliseconds=500)
#: Measurements that carry a board reading (and its ``seq``); link and status points do not.
MEASUREMENTS = ("seat", "door", "people", "heartbeat", "device", "fault")

#: Mosquitto 2.0 persists by snapshots: with ``autosave_on_changes`` the devstack's
#: ``autosave_interval 1`` counts changes instead of seconds, so the broker saves
#: after every loop in which something changed, as ``deploy/mosquitto/qihe.conf`` does.
#: Without it a SIGKILL loses what the broker had acknowledged and queued in the last
#: second or two (docs/reliability.md).
DURABLE_BROKER = "autosave_on_changes true"


class HarnessError(RuntimeError):
    """The pipe could not be set up or driven (not a finding about the code under test)."""


# -- what was produced and what landed ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Produced:
    """One reading the board produced: ``sensor`` is "measurement sensor-id"."""

    sensor: str
    seq: int
    value: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Landed:
    """One point in InfluxDB."""

    sensor: str
    time_ns: int
    seq: int | None
    value: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    produced: int
    landed: int  # produced readings with at least one point
    lost: int  # produced readings with no point
    duplicated: int  # points beyond the first for one reading
    unexpected: int  # points matching no produced reading (unknown seq, or another value)
    out_of_order: int  # points stored (by time) after a reading produced later
    missing: tuple[Produced, ...] = ()
    extra: tuple[Landed, ...] = ()

    @property
    def exact(self) -> bool:
        return (self.lost, self.duplicated, self.unexpected, self.out_of_order) == (0, 0, 0, 0)


def compare(produced: Sequence[Produced], points: Iterable[Landed]) -> Comparison:
    """Match points to produced readings by (sensor, seq); check values and per-sensor order."""
    position: dict[tuple[str, int], int] = {}
    for index, reading in enumerate(produced):
        key = (reading.sensor, reading.seq)
        if key in position:
            raise HarnessError(f"{key} produced twice: the harness does not follow board reboots")
        position[key] = index
    by_sensor: dict[str, list[Landed]] = defaultdict(list)
    for point in points:
        by_sensor[point.sensor].append(point)
    hits: Counter[tuple[str, int]] = Counter()
    extra: list[Landed] = []
    unexpected = out_of_order = 0
    for sensor, series in by_sensor.items():
        latest = -1
        for point in sorted(series, key=lambda p: p.time_ns):
            key = (sensor, -1 if point.seq is None else point.seq)
            found = position.get(key)
            if found is None or produced[found].value != point.value:
                unexpected += 1
                extra.append(point)
                continue
            hits[key] += 1
            if hits[key] > 1:
                extra.append(point)
                continue
            if found < latest:
                out_of_order += 1
            latest = max(latest, found)
    missing = tuple(r for r in produced if (r.sensor, r.seq) not in hits)
    return Comparison(
        produced=len(produced),
        landed=len(hits),
        lost=len(missing),
        duplicated=sum(n - 1 for n in hits.values()),
        unexpected=unexpected,
        out_of_order=out_of_order,
        missing=missing,
        extra=tuple(extra),
    )


def reading_of(frame: Frame, device: str = DEVICE) -> Produced | None:
    """The reading a frame becomes in InfluxDB (as the gateway and consumer map it), if any."""
    match frame.message:
        case Seat(seat, occupied):
            return Produced(f"seat {device}.{seat}", frame.seq, (int(occupied),))
        case Door(door, is_open):
            return Produced(f"door {device}.{door}", frame.seq, (int(is_open),))
        case People(counter, in_total, out_total):
            return Produced(f"people {device}.{counter}", frame.seq, (in_total, out_total))
        case Heartbeat(uptime_s, supply_mv):
            return Produced(f"heartbeat {device}", frame.seq, (uptime_s, supply_mv))
        case Hello(_, firmware):
            return Produced(f"device {device}", frame.seq, (".".join(map(str, firmware)),))
        case Fault(sensor, code, active):
            # The gateway names a fault after its sensor's kind too (edge/normalise.py).
            name = f"fault {device}.{sensor.kind.name.lower()}.{sensor.index}"
            return Produced(name, frame.seq, (code.name.lower(), int(active)))
    return None  # ACK / NACK carry no reading


_FIELDS = {
    "seat": ("occupied",),
    "door": ("open",),
    "people": ("in_total", "out_total"),
    "heartbeat": ("uptime_s", "supply_mv"),
    "device": ("firmware",),
    "fault": ("code", "active"),
}


#: The outbox health reading's drop counts (``OutboxReading``): together, every drop.
_DROP_FIELDS = ("dropped_periodic", "dropped_state", "dropped_clock")


def points_of(influx_answer: Mapping[str, Any]) -> list[Landed]:
    """Points of ``SELECT * FROM <measurements> GROUP BY "sensor"`` (epoch=ns)."""
    out: list[Landed] = []
    for statement in influx_answer.get("results", []):
        for series in statement.get("series", []):
            measurement = series["name"]
            sensor = f"{measurement} {series['tags']['sensor']}"
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                value = tuple(row.get(name) for name in _FIELDS[measurement])
                out.append(Landed(sensor, int(row["time"]), row.get("seq"), value))
    return out


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultRecord:
    name: str
    started: float  # monotonic
    ended: float  # when the fault was undone (process restarted, cable back in)
    produced_during: int  # readings the board produced between the two
    recovery_seconds: float  # from ``ended`` until InfluxDB held all produced until then


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    scenario: str
    produced: int
    landed: int
    lost: int
    duplicated: int
    unexpected: int
    out_of_order: int
    #: Reports the board itself never put on the wire (unplugged, silent); not in ``produced``.
    not_sent: int
    #: Frames the board sent again because the gateway had not acknowledged them as stored.
    resent: int
    faults: tuple[FaultRecord, ...]
    duration_seconds: float
    comparison: Comparison = field(repr=False)
    #: "Error" lines of the broker's log (a broker that cannot persist says so only there).
    broker_errors: tuple[str, ...] = ()
    logs: tuple[Path, ...] = field(default=(), repr=False)
    #: The gateway's drop counts by kind, as its outbox stored them (the ``drops`` table).
    gateway_dropped: Mapping[str, int] = field(default_factory=dict)
    #: All drops the gateway's last outbox health reading in InfluxDB reported (None: none seen).
    gateway_reported_dropped: int | None = None
    #: Reports the board gave up unacknowledged (window full or too old), its own count;
    #: with retransmission these are in ``produced``, and every lost reading must be one.
    board_dropped: int = 0
    #: ``board_dropped`` as the gateway published it (the newest link point; None: none seen).
    reported_board_dropped: int | None = None
    #: Produced readings of reports the board gave up (fate ``evicted``), by (sensor, seq).
    given_up: frozenset[tuple[str, int]] = frozenset()
    #: Per gateway SIGKILL (gateway-kill-uncommitted): the board's frames the killed gateway
    #: had stamped and handed to its publisher that its store had not committed.
    uncommitted_at_kills: tuple[int, ...] = ()

    @property
    def recovery_seconds(self) -> float:
        """The slowest recovery of the scenario's faults."""
        return max((f.recovery_seconds for f in self.faults), default=0.0)

    @property
    def accounted(self) -> bool:
        """Every reading landed once, in order, or the board gave it up and the gateway
        published the board's count of those (``comparison.exact`` when it gave none up)."""
        c = self.comparison
        if (c.duplicated, c.unexpected, c.out_of_order) != (0, 0, 0):
            return False
        if not {(r.sensor, r.seq) for r in c.missing} <= self.given_up:
            return False
        return self.board_dropped == 0 or self.reported_board_dropped == self.board_dropped

    @property
    def produced_during_faults(self) -> int:
        return sum(f.produced_during for f in self.faults)

    def describe(self) -> str:
        """For an assertion message: the counts, the first problems, where the logs are."""
        c = self.comparison
        lines = [repr(self)]
        lines += [f"  lost {r}" for r in c.missing[:10]]
        lines += [f"  extra {p}" for p in c.extra[:10]]
        lines += [f"  broker {line}" for line in self.broker_errors[:10]]
        lines += [f"  log {path}" for path in self.logs]
        return "\n".join(lines)


def markdown_table(results: Sequence[ScenarioResult]) -> str:
    head = (
        "| scenario | faults | produced | landed | lost | duplicated | unexpected | out of order "
        "| produced during faults | resent by the board | dropped by the board "
        "| recovery, worst (s) | run (s) |\n"
        "|---|" + "---:|" * 12
    )
    rows = [
        f"| {r.scenario} | {len(r.faults)} | {r.produced} | {r.landed} | {r.lost} "
        f"| {r.duplicated} | {r.unexpected} | {r.out_of_order} | {r.produced_during_faults} "
        f"| {r.resent} | {r.not_sent + r.board_dropped} | {r.recovery_seconds:.1f} "
        f"| {r.duration_seconds:.0f} |"
        for r in results
    ]
    return "\n".join([head, *rows])


# -- the gateway and the consumer as child processes ---------------------------------------


class ServiceProcess:
    """``python -m qihe_cli.main ...`` as a child process, logging to a file; ready when a line
    says so.

    Readiness is read from the log: the gateway logs ``serial port PATH open`` once
    it holds the port (pyserial has flushed the port's input by then, so what the
    board sends afterwards reaches it), the consumer ``consuming ...`` once subscribed.
    """

    def __init__(self, name: str, args: Sequence[str], log_path: Path, ready_marker: str) -> None:
        self.name = name
        self.command = [sys.executable, "-m", "qihe_cli.main", *args]
        self.log_path = log_path
        self.ready_marker = ready_marker
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def ready_count(self) -> int:
        with contextlib.suppress(FileNotFoundError):
            return self.log_path.read_text(errors="replace").count(self.ready_marker)
        return 0

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def start(self, timeout: float = 30.0) -> None:
        """Launch and wait until ready."""
        before = self.ready_count()
        await asyncio.to_thread(self._launch)
        await self.wait_ready(before, timeout)

    def _launch(self) -> None:
        if self.running:
            raise HarnessError(f"{self.name} is already running")
        self._log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "GPIOZERO_PIN_FACTORY": "mock"}
        self._proc = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, env=env
        )

    async def wait_ready(self, before: int, timeout: float = 30.0) -> None:
        """Wait until the ready line appeared more than ``before`` times."""
        deadline = time.monotonic() + timeout
        while self.ready_count() <= before:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise HarnessError(f"{self.name} exited ({code}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise HarnessError(f"{self.name} not ready after {timeout}s:\n{self.tail()}")
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind in the process."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM and wait (the clean stop path); SIGKILL if it hangs."""
        self._end(signal.SIGTERM)

    def _end(self, sig: signal.Signals) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


# -- the pipe ---------------------------------------------------------------------------------


class Pipe:
    """Board → gateway → Mosquitto → consumer → InfluxDB for one scenario, under ``folder``.

    ``retransmit_after``: the board resends reports the gateway has not acknowledged
    as stored, and the truth is the board's ``produced_reports()``; without it, the
    truth is what reached the wire intact (the emulator's journal).
    """

    def __init__(
        self,
        folder: Path,
        *,
        name: str = "pipe",
        seats: int = 4,
        step: float = 0.1,
        broker_config: str = DURABLE_BROKER,
        retransmit_after: timedelta | None = None,
        state_dir: Path | None = None,
        gateway_extra: Mapping[str, Any] | None = None,
        board_first: float = 0.0,
        broker_acl: str | None = None,
    ) -> None:
        self.folder = folder
        #: Seconds the board talks before the gateway starts (a Pi's service starts after
        #: the board is powered): what it sends meanwhile reaches no one at first.
        self.board_first = board_first
        #: The gateway's state folder (its outbox): on a small tmpfs for the SD-card faults.
        self.state_dir = folder / "gateway-state" if state_dir is None else state_dir
        #: Top-level gateway config keys set on top of the pipe's own (``outbox``, ...).
        self.gateway_extra = dict(gateway_extra or {})
        self.name = name
        self.step = step
        self.seats = seats
        self.retransmit_after = retransmit_after
        self.prefix = f"faults/{name}"
        self.database = f"faults_{name.replace('-', '_')}"
        self.broker: MosquittoProcess = MosquittoProcess(
            folder / "mosquitto", extra_config=broker_config
        )
        if broker_acl is not None:
            # broker-refuses: every publish checked against an ACL the scenario rewrites.
            self.broker = AclMosquitto(folder / "mosquitto", extra_config=broker_config)
        self.broker_acl = broker_acl
        self.influxd = InfluxdProcess(folder / "influxd")
        self.link = folder / "serial" / "usb-qihe_board-a-if00"
        self.port = PtyPort(self.link)
        options: dict[str, Any] = {
            "device_id": DEVICE,
            "seats": seats,
            "speed": 1.0,
            "simulate": False,
            "report_interval_s": 1,
            "door_hold": timedelta(milliseconds=200),
            "start": datetime(2026, 11, 28, 9, 0, tzinfo=SHANGHAI),
        }
        if retransmit_after is not None:
            options["retransmit_after"] = retransmit_after
        self.emulator = BookHouseEmulator(EmulatorConfig(**options))
        self.gateway = ServiceProcess(
            "gateway",
            ["gateway", "run", "--config", str(folder / "gateway.yaml")],
            folder / "gateway.log",
            f"serial port {self.link} open",
        )
        self.consumer = ServiceProcess(
            "consumer",
            ["consumer", "run", "--config", str(folder / "consumer.yaml")],
            folder / "consumer.log",
            "consuming ",
        )
        self.faults: list[FaultRecord] = []
        self._watchers: list[asyncio.Task[None]] = []
        self._stack = contextlib.AsyncExitStack()
        self._stop_producing = asyncio.Event()
        self._producer: asyncio.Task[None] | None = None
        self._occupied = [False] * seats
        self._started_at = 0.0
        self.uncommitted_at_kills: list[int] = []

    # -- life cycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Servers, consumer, gateway (holding the port), then power the board up and produce."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._started_at = time.monotonic()
        if isinstance(self.broker, AclMosquitto) and self.broker_acl is not None:
            self.broker.acl_file.parent.mkdir(parents=True, exist_ok=True)
            self.broker.acl_file.write_text(self.broker_acl)
        await asyncio.to_thread(self.broker.start)
        await asyncio.to_thread(self.influxd.start)
        self._write_configs()
        await self.consumer.start()
        await self._stack.enter_async_context(self.port)  # the link exists from here on
        if self.board_first:
            await self._stack.enter_async_context(self.emulator.attach(self.port))
            self._producer = asyncio.create_task(self._produce(), name=f"{self.name}-producer")
            await asyncio.sleep(self.board_first)
            await self.gateway.start()
            return
        await self.gateway.start()
        # pyserial empties the input buffer when it opens the port: power up only now.
        await self._stack.enter_async_context(self.emulator.attach(self.port))
        self._producer = asyncio.create_task(self._produce(), name=f"{self.name}-producer")

    async def close(self) -> None:
        """Stop everything this pipe started (idempotent)."""
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        await self.stop_production()
        await self._stack.aclose()
        for service in (self.gateway, self.consumer):
            await asyncio.to_thread(service.stop)
        await asyncio.to_thread(self.broker.stop)
        await asyncio.to_thread(self.influxd.stop)

    def _write_configs(self) -> None:
        gateway = {
            "site": SITE,
            "gateway": GATEWAY,
            "state_dir": str(self.state_dir),
            "broker": {
                "host": self.broker.host,
                "port": self.broker.port,
                "topic_prefix": self.prefix,
                "keepalive": 5,
                # Short backoff keeps the run short; the guarantees do not depend on it.
                "reconnect_min": 0.2,
                "reconnect_max": 2,
            },
            "serial": [
                {
                    "path": str(self.link),
                    "device": DEVICE,
                    "reconnect_min": 0.05,
                    "reconnect_max": 0.5,
                }
            ],
        }
        consumer = {
            "mqtt": {
                "host": self.broker.host,
                "port": self.broker.port,
                "client_id": f"consumer-{self.name}",
                "topic_prefix": self.prefix,
                "keepalive": 5,
            },
            "influx": {
                "api": "v1",
                "url": self.influxd.url,
                "database": self.database,
                "timeout": 5,
            },
            "flush_interval": 0.2,
            "retry_min_delay": 0.1,
            "retry_max_delay": 1,
            "stop_timeout": 5,
        }
        gateway.update(self.gateway_extra)
        (self.folder / "gateway.yaml").write_text(yaml.safe_dump(gateway))
        (self.folder / "consumer.yaml").write_text(yaml.safe_dump(consumer))

    # -- the board -------------------------------------------------------------------------

    async def _produce(self) -> None:
        """Round-robin seat toggles; every fifth step someone enters or leaves. Steady rate."""
        loop = asyncio.get_running_loop()
        step_no = 0
        next_at = loop.time()
        while not self._stop_producing.is_set():
            if step_no % 5 == 4:
                if (step_no // 5) % 2 == 0:
                    self.emulator.count_people(entered=1)
                else:
                    self.emulator.count_people(left=1)
            else:
                index = (step_no - step_no // 5) % self.seats
                self._occupied[index] = not self._occupied[index]
                self.emulator.set_seat(index + 1, self._occupied[index])
            step_no += 1
            next_at = max(next_at + self.step, loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(next_at - loop.time()):
                    await self._stop_producing.wait()

    async def stop_production(self) -> None:
        """No more scripted changes; heartbeats go on until the board is powered off."""
        self._stop_producing.set()
        if self._producer is not None:
            await self._producer
            self._producer = None

    def produced(self) -> list[Produced]:
        """Every reading the board produced so far, in production order."""
        if self.retransmit_after is not None:
            # The board resends what the gateway has not stored: each report once, from the board.
            frames = [report.frame for report in self.emulator.produced_reports()]
        else:
            frames = [entry.frame for entry in self.emulator.journal if not entry.corrupted]
        return [r for r in map(reading_of, frames) if r is not None]

    def not_sent(self) -> int:
        """Reports the board dropped itself (unplugged, silent): no reading, never on the wire."""
        if self.retransmit_after is not None:
            return 0  # they are resent; produced() holds them
        return sum(1 for d in self.emulator.dropped if reading_of(d.frame) is not None)

    def given_up(self) -> set[tuple[str, int]]:
        """Readings of reports the board gave up unacknowledged (window full or too old)."""
        return {
            (reading.sensor, reading.seq)
            for report in self.emulator.produced_reports()
            if report.fate == "evicted" and (reading := reading_of(report.frame)) is not None
        }

    # -- InfluxDB ----------------------------------------------------------------------------

    def landed(self) -> list[Landed]:
        """Every reading point in the pipe's database (none yet if InfluxDB does not answer)."""
        names = ", ".join(f'"{m}"' for m in MEASUREMENTS)
        try:
            answer = self.influxd.query(f'SELECT * FROM {names} GROUP BY "sensor"', self.database)
        except (DevStackError, urllib.error.URLError, OSError):
            return []  # no database yet, or InfluxDB down
        return points_of(answer)

    async def wait_delivered(self, readings: Sequence[Produced], timeout: float) -> float | None:
        """Seconds until InfluxDB held every one of ``readings``; ``None`` at the deadline."""
        started = time.monotonic()
        wanted = {(r.sensor, r.seq) for r in readings}
        while True:
            points = await asyncio.to_thread(self.landed)
            # A report the board gave up may never land: it is counted, not waited for.
            if wanted - self.given_up() <= {(p.sensor, p.seq) for p in points}:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                return None
            await asyncio.sleep(0.2)

    # -- faults --------------------------------------------------------------------------------

    async def inject(
        self,
        name: str,
        fault: Callable[[], Awaitable[None]],
        repair: Callable[[], Awaitable[None]],
        *,
        down: float,
        wait_recovery: bool = True,
        recovery_timeout: float = 40.0,
    ) -> None:
        """``fault()``, ``down`` seconds of production, ``repair()``; then measure the recovery.

        With ``wait_recovery=False`` the recovery is measured in the background and
        the next fault may strike while the pipe is still catching up.
        """
        produced_before = len(self.produced())
        started = time.monotonic()
        await fault()
        await asyncio.sleep(down)
        ended = time.monotonic()
        upto = self.produced()
        await repair()

        async def watch() -> None:
            waited = await self.wait_delivered(upto, recovery_timeout)
            recovery = math.inf if waited is None else time.monotonic() - ended
            self.faults.append(
                FaultRecord(name, started, ended, len(upto) - produced_before, recovery)
            )

        watcher = asyncio.create_task(watch(), name=f"{self.name}-recovery-{name}")
        self._watchers.append(watcher)
        if wait_recovery:
            await watcher

    async def kill_broker(self) -> None:
        await asyncio.to_thread(self.broker.stop, kill=True)

    async def set_broker_acl(self, acl: str) -> None:
        """Rewrite the broker's ACL and make it reload the file (SIGHUP), as an admin would."""
        broker = self.broker
        if not isinstance(broker, AclMosquitto):
            raise HarnessError("this pipe's broker has no ACL (give Pipe(broker_acl=...))")
        broker.acl_file.write_text(acl)
        await asyncio.to_thread(broker.reload)

    async def stop_broker(self) -> None:
        await asyncio.to_thread(self.broker.stop)

    async def start_broker(self) -> None:
        await asyncio.to_thread(self.broker.start)

    async def stop_influxd(self) -> None:
        await asyncio.to_thread(self.influxd.stop)

    async def start_influxd(self) -> None:
        await asyncio.to_thread(self.influxd.start)

    async def kill_consumer(self) -> None:
        await asyncio.to_thread(self.consumer.kill)

    async def start_consumer(self) -> None:
        await self.consumer.start()

    async def kill_gateway(self) -> None:
        await asyncio.to_thread(self.gateway.kill)

    async def kill_gateway_counting_uncommitted(self) -> None:
        """SIGKILL the gateway, then count what it published and had not committed."""
        await self.kill_gateway()
        self.uncommitted_at_kills.append(await asyncio.to_thread(self.uncommitted))

    def uncommitted(self) -> int:
        """Frames of the board the (killed) gateway journalled as published
        (``edge/stamp_journal.py``) beyond the board's state its store last committed."""
        con = sqlite3.connect(self.state_dir / "outbox.sqlite3")
        try:
            row = con.execute(
                "SELECT state FROM device_sequence WHERE device = ?", (DEVICE,)
            ).fetchone()
        finally:
            con.close()
        last = None if row is None else TrackerState.from_json(row[0]).last
        journal = self.state_dir / f"stamps-{DEVICE}"
        seqs = [int(line.split()[1]) for line in journal.read_bytes().splitlines() if line]
        if last is None:
            return len(seqs)
        return sum(1 for seq in seqs if 0 < (seq - last) % 0x10000 < 0x8000)

    async def start_gateway(self) -> None:
        await self.gateway.start()

    async def unplug(self) -> None:
        """Pull the cable: the pty closes, the gateway's reads fail, the link disappears."""
        if self.retransmit_after is None:
            # Today's board cannot resend, and two things on a real line lose what it sends
            # around an unplug: bytes still in the port when the cable goes are discarded
            # (the tty hangs up), and so are bytes sent before the gateway has reopened the
            # port (pyserial flushes its input at open). The board keeps quiet from just
            # before the unplug until the gateway holds the port again; those reports are
            # dropped by the board and counted as not sent (``not_sent``), not as produced.
            self.emulator.set_silent(True)
            await asyncio.sleep(0.3)
        await self.emulator.unplug()

    async def replug(self) -> None:
        """Plug the cable back in and wait until the gateway holds the port again."""
        before = self.gateway.ready_count()
        await self.emulator.replug()
        await self.gateway.wait_ready(before)
        if self.retransmit_after is None:
            self.emulator.set_silent(False)

    # -- the end -----------------------------------------------------------------------------

    async def finish(self, scenario: str, *, drain_timeout: float = 40.0) -> ScenarioResult:
        """Stop producing, power the board off, wait until InfluxDB holds it all, compare."""
        await self.stop_production()
        if self.retransmit_after is not None:
            await self._wait_board_acknowledged(drain_timeout)
        else:
            # Powering off drops whatever still sits unread in the pty: that is the unplug's
            # loss, not the fault's. Hush the board (what it makes now never reaches the wire,
            # so it is not "produced"), let the gateway read what is on the wire, then power off.
            self.emulator.set_silent(True)
            await self.wait_delivered(self.produced(), drain_timeout)
        await self._stack.aclose()  # powers the board off and unplugs it: production is final
        produced = self.produced()
        await self.wait_delivered(produced, drain_timeout)
        await asyncio.gather(*self._watchers)
        await asyncio.sleep(1.0)  # a late redelivery would show up as a second point
        comparison = compare(produced, await asyncio.to_thread(self.landed))
        return ScenarioResult(
            scenario=scenario,
            produced=comparison.produced,
            landed=comparison.landed,
            lost=comparison.lost,
            duplicated=comparison.duplicated,
            unexpected=comparison.unexpected,
            out_of_order=comparison.out_of_order,
            not_sent=self.not_sent(),
            resent=self.emulator.state.resent,
            faults=tuple(sorted(self.faults, key=lambda f: f.started)),
            duration_seconds=time.monotonic() - self._started_at,
            comparison=comparison,
            broker_errors=tuple(
                line
                for line in self.broker.log_path.read_text(errors="replace").splitlines()
                if "Error" in line
            ),
            logs=(self.gateway.log_path, self.consumer.log_path, self.broker.log_path),
            gateway_dropped=await asyncio.to_thread(self.gateway_drops),
            gateway_reported_dropped=await asyncio.to_thread(self.reported_drops),
            board_dropped=self.emulator.state.window_dropped,
            reported_board_dropped=await self._wait_board_dropped_reported(drain_timeout),
            given_up=frozenset(self.given_up()),
            uncommitted_at_kills=tuple(self.uncommitted_at_kills),
        )

    async def _wait_board_dropped_reported(self, timeout: float) -> int | None:
        """The gateway's newest ``board_dropped`` in InfluxDB, once it is the board's count.

        The gateway publishes its link readings every ``link_report_interval``; at the
        deadline, whatever the newest one says.
        """
        if self.retransmit_after is None:
            return None
        if self.emulator.state.window_dropped == 0:  # nothing to wait for (0 or no point)
            return await asyncio.to_thread(self.reported_board_dropped)
        deadline = time.monotonic() + timeout
        while True:
            reported = await asyncio.to_thread(self.reported_board_dropped)
            if reported == self.emulator.state.window_dropped or time.monotonic() > deadline:
                return reported
            await asyncio.sleep(0.2)

    def reported_board_dropped(self) -> int | None:
        """``board_dropped`` of the gateway's newest link reading in InfluxDB."""
        query = 'SELECT "board_dropped" FROM "link" ORDER BY time DESC LIMIT 1'
        try:
            answer = self.influxd.query(query, self.database)
        except (DevStackError, urllib.error.URLError, OSError):
            return None
        for statement in answer.get("results", []):
            for series in statement.get("series", []):
                value = series["values"][0][1]
                return None if value is None else int(value)
        return None

    def gateway_drops(self) -> dict[str, int]:
        """The gateway's drop counts by kind, read from its outbox file (``{}`` if none yet)."""
        path = self.state_dir / "outbox.sqlite3"
        if not path.exists():
            return {}
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as con:
            try:
                return dict(con.execute("SELECT kind, count FROM drops").fetchall())
            except sqlite3.OperationalError:
                return {}

    def reported_drops(self) -> int | None:
        """Every drop the gateway's newest outbox health reading in InfluxDB reports."""
        query = "SELECT * FROM outbox ORDER BY time DESC LIMIT 1"
        try:
            answer = self.influxd.query(query, self.database)
        except (DevStackError, urllib.error.URLError, OSError):
            return None
        for statement in answer.get("results", []):
            for series in statement.get("series", []):
                row = dict(zip(series["columns"], series["values"][0], strict=True))
                return sum(int(row[name]) for name in _DROP_FIELDS)
        return None

    async def _wait_board_acknowledged(self, timeout: float) -> None:
        """With retransmission: until the gateway has acknowledged every report as stored."""
        deadline = time.monotonic() + timeout
        # And until the gateway has stored the board's count of what it gave up.
        while self.emulator.unacknowledged or self.emulator.state.owes_window:
            if time.monotonic() > deadline:
                return  # the comparison will show what is missing
            await asyncio.sleep(0.05)


# -- the scenarios ----------------------------------------------------------------------------


async def broker_killed(folder: Path) -> ScenarioResult:
    async with Pipe(folder, name="broker-kill") as pipe:
        await asyncio.sleep(4)
        await pipe.inject("broker SIGKILL", pipe.kill_broker, pipe.start_broker, down=2)
        await asyncio.sleep(3)
        return await pipe.finish("broker SIGKILLed and restarted")


async def broker_killed_while_consumer_away(folder: Path) -> ScenarioResult:
    async with Pipe(folder, name="broker-kill-away") as pipe:
        await asyncio.sleep(3)

        async def consumer_then_broker_killed() -> None:
            await pipe.kill_consumer()
            await asyncio.sleep(3)  # readings queue in the broker for the consumer's session
            await pipe.kill_broker()

        async def both_restarted() -> None:
            await pipe.start_broker()
            await pipe.start_consumer()

        await pipe.inject(
            "consumer SIGKILL, 3 s later broker SIGKILL",
            consumer_then_broker_killed,
            both_restarted,
            down=2,
        )
        await asyncio.sleep(3)
        return await pipe.finish("broker SIGKILLed while the consumer is away")


async def broker_down_60s(folder: Path) -> ScenarioResult:
    async with Pipe(folder, name="broker-down") as pipe:
        await asyncio.sleep(3)
        await pipe.inject("broker down 60 s", pipe.stop_broker, pipe.start_broker, down=60)
        await asyncio.sleep(3)
        return await pipe.finish("broker down for 60 s")


async def influxd_restarted(folder: Path) -> ScenarioResult:
    async with Pipe(folder, name="influxd-restart") as pipe:
        await asyncio.sleep(4)
        await pipe.inject("InfluxDB stop", pipe.stop_influxd, pipe.start_influxd, down=5)
        await asyncio.sleep(3)
        return await pipe.finish("InfluxDB stopped and restarted")


async def consumer_killed(folder: Path) -> ScenarioResult:
    async with Pipe(folder, name="consumer-kill") as pipe:
        await asyncio.sleep(4)
        await pipe.inject("consumer SIGKILL", pipe.kill_consumer, pipe.start_consumer, down=3)
        await asyncio.sleep(3)
        return await pipe.finish("consumer SIGKILLed and restarted")


async def serial_unplugged(
    folder: Path, *, retransmit_after: timedelta | None = None
) -> ScenarioResult:
    name = "serial-unplug" if retransmit_after is None else "serial-unplug-resend"
    async with Pipe(folder, name=name, retransmit_after=retransmit_after) as pipe:
        await asyncio.sleep(4)
        await pipe.inject("serial unplug", pipe.unplug, pipe.replug, down=3)
        await asyncio.sleep(3)
        scenario = "serial port unplugged and plugged back"
        if retransmit_after is not None:
            scenario += ", board resending"
        return await pipe.finish(scenario)


async def serial_unplugged_board_resends(folder: Path) -> ScenarioResult:
    return await serial_unplugged(folder, retransmit_after=RETRANSMIT_AFTER)


async def gateway_killed_repeatedly(
    folder: Path,
    *,
    kills: int = 10,
    seed: int = 20261128,
    retransmit_after: timedelta = RETRANSMIT_AFTER,
) -> ScenarioResult:
    """The gateway SIGKILLed ``kills`` times at seeded random moments, each time restarted.

    Needs the durable outbox (readings survive a SIGKILL once committed) and a board
    that resends what the gateway has not acknowledged as stored.
    """
    rng = random.Random(seed)
    async with Pipe(
        folder, name="gateway-kill", retransmit_after=retransmit_after, gateway_extra=_LINK_EVERY_S
    ) as pipe:
        await asyncio.sleep(3)
        for n in range(1, kills + 1):
            # Anywhere in the stream, also while the last restart is still catching up.
            await asyncio.sleep(rng.uniform(0.2, 2.5))
            await pipe.inject(
                f"gateway SIGKILL {n}",
                pipe.kill_gateway,
                pipe.start_gateway,
                down=rng.uniform(0.0, 1.0),
                wait_recovery=False,
            )
        await asyncio.sleep(3)
        scenario = f"gateway SIGKILLed {kills} times at random moments"
        if retransmit_after != RETRANSMIT_AFTER:
            scenario += f", board resending after {retransmit_after.total_seconds():g} s"
        return await pipe.finish(scenario)


async def gateway_killed_before_commit(
    folder: Path, *, kills: int = 10, commit_interval: float = 2.0, seed: int = 20261207
) -> ScenarioResult:
    """The gateway SIGKILLed ``kills`` times right after publishing, before committing.

    The gateway publishes a reading as it arrives and commits every ``commit_interval``
    (2 s here, so the window is wide): each kill comes after the first commit of a
    (re)start and before the second, with readings published and not stored. The board
    resends them (never acknowledged), and the restarted gateway must give them the
    stamps they were published with, or InfluxDB would hold them twice.
    """
    rng = random.Random(seed)
    extra = {**_LINK_EVERY_S, "outbox": {"commit_interval": commit_interval}}
    async with Pipe(
        folder,
        name="gateway-kill-uncommitted",
        retransmit_after=RETRANSMIT_AFTER,
        gateway_extra=extra,
    ) as pipe:
        for n in range(1, kills + 1):
            # The gateway was (re)started just now: its first commit comes commit_interval
            # after, its second twice that; strike between the two.
            await asyncio.sleep(rng.uniform(commit_interval + 0.3, 2 * commit_interval - 0.3))
            await pipe.inject(
                f"gateway SIGKILL {n} before a commit",
                pipe.kill_gateway_counting_uncommitted,
                pipe.start_gateway,
                down=rng.uniform(0.0, 0.5),
                wait_recovery=False,
            )
        await asyncio.sleep(3)
        return await pipe.finish(
            f"gateway SIGKILLed {kills} times after publishing, before committing"
        )


async def gateway_killed_board_resending_slowly(folder: Path) -> ScenarioResult:
    return await gateway_killed_repeatedly(folder, retransmit_after=timedelta(seconds=2))


#: Link readings (with the board's ``board_dropped``) every second, not every minute.
_LINK_EVERY_S: Mapping[str, Any] = {"link_report_interval": 1}


async def board_before_gateway(folder: Path, *, ahead: float = 5.0) -> ScenarioResult:
    """The board talks ``ahead`` seconds before the gateway starts, with a fresh state folder.

    What it sent meanwhile reached no one (pyserial also flushes the port's input when
    the gateway opens it): the gateway must not acknowledge past it before the board's
    resends brought it in.
    """
    async with Pipe(
        folder,
        name="board-first",
        retransmit_after=RETRANSMIT_AFTER,
        gateway_extra=_LINK_EVERY_S,
        board_first=ahead,
    ) as pipe:
        ready = time.monotonic()  # the gateway holds the port from here
        before = pipe.produced()
        waited = await pipe.wait_delivered(before, 40.0)
        recovery = math.inf if waited is None else time.monotonic() - ready
        name = "gateway starts after the board"
        pipe.faults.append(FaultRecord(name, ready - ahead, ready, len(before), recovery))
        await asyncio.sleep(3)
        return await pipe.finish(f"board talking {ahead:g} s before the gateway starts")


# -- SD card faults: a full filesystem, a locked outbox -----------------------------------------

#: The gateway's state folder in sd-full: a tmpfs this small, filled in an instant.
TMPFS_SIZE = "4m"


@contextlib.asynccontextmanager
async def mounted_tmpfs(path: Path, size: str = TMPFS_SIZE) -> AsyncIterator[Path]:
    """A size-limited tmpfs mounted at ``path`` (root only), unmounted after (lazily, in
    case a process still holds a file there)."""
    if os.geteuid() != 0:
        raise HarnessError("mounting a tmpfs needs root")
    await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)]
    done = await asyncio.to_thread(subprocess.run, mount, capture_output=True, text=True)
    if done.returncode != 0:
        raise HarnessError(f"cannot mount a tmpfs at {path}: {done.stderr.strip()}")
    try:
        yield path
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", "-l", str(path)], capture_output=True)


def fill_filesystem(filler: Path) -> int:
    """Write ``filler`` until its filesystem has not one byte left; the bytes written."""
    written = 0
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    written += os.write(fd, b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return written


def _sd_gateway_extra(max_pending: int | None) -> dict[str, Any]:
    # Outbox health readings every second: the drops show up in InfluxDB soon after.
    extra: dict[str, Any] = {"link_report_interval": 1}
    if max_pending is not None:
        extra["outbox"] = {"max_pending": max_pending}
    return extra


async def sd_card_full(
    folder: Path,
    *,
    down: float = 60,
    max_pending: int | None = None,
    drain_timeout: float = 40,
    broker_down: bool = False,
) -> ScenarioResult:
    """The gateway's state folder is a small tmpfs; a file takes every free byte of it for
    ``down`` seconds, then goes. Needs root. ``max_pending``: the gateway's memory bound.

    The gateway publishes readings before storing them, so with the broker up a failing
    store holds (nearly) nothing in memory: ``broker_down`` stops Mosquitto for the same
    time, so readings can go nowhere and the memory bound is passed."""
    async with mounted_tmpfs(folder / "sd-card") as card:
        extra = _sd_gateway_extra(max_pending)
        async with Pipe(
            folder, name="sd-full", state_dir=card / "qihe", gateway_extra=extra
        ) as pipe:
            filler = card / "filler"

            async def fill() -> None:
                await asyncio.to_thread(fill_filesystem, filler)
                if broker_down:
                    await pipe.stop_broker()

            async def free() -> None:
                await asyncio.to_thread(filler.unlink)
                if broker_down:
                    await pipe.start_broker()

            await asyncio.sleep(3)
            await pipe.inject(
                f"SD card full {down:g} s", fill, free, down=down, recovery_timeout=drain_timeout
            )
            await asyncio.sleep(3)
            return await pipe.finish(f"SD card full for {down:g} s", drain_timeout=drain_timeout)


async def sd_card_full_60s(folder: Path) -> ScenarioResult:
    return await sd_card_full(folder)


async def database_locked(
    folder: Path,
    *,
    down: float = 30,
    max_pending: int | None = None,
    drain_timeout: float = 40,
    broker_down: bool = False,
) -> ScenarioResult:
    """Another process holds ``BEGIN EXCLUSIVE`` on the gateway's outbox for ``down`` seconds
    (this one, through its own connection): the gateway's reads work, its commits fail.
    ``broker_down``: Mosquitto stopped for the same time (as in :func:`sd_card_full`)."""
    extra = _sd_gateway_extra(max_pending)
    async with Pipe(folder, name="db-locked", gateway_extra=extra) as pipe:
        holder: list[sqlite3.Connection] = []

        def lock() -> None:
            con = sqlite3.connect(
                pipe.state_dir / "outbox.sqlite3",
                isolation_level=None,
                timeout=10,
                check_same_thread=False,
            )
            con.execute("BEGIN EXCLUSIVE")
            holder.append(con)

        def unlock() -> None:
            con = holder.pop()
            con.execute("ROLLBACK")
            con.close()

        async def fault() -> None:
            await asyncio.to_thread(lock)
            if broker_down:
                await pipe.stop_broker()

        async def repair() -> None:
            await asyncio.to_thread(unlock)
            if broker_down:
                await pipe.start_broker()

        await asyncio.sleep(3)
        await pipe.inject(
            f"outbox locked {down:g} s", fault, repair, down=down, recovery_timeout=drain_timeout
        )
        await asyncio.sleep(3)
        return await pipe.finish(f"database locked for {down:g} s", drain_timeout=drain_timeout)


async def database_locked_30s(folder: Path) -> ScenarioResult:
    return await database_locked(folder)


#: The pipe's broker lets everyone do everything (anonymous clients, the ACL's first lines)...
ACL_OPEN = "topic readwrite #\n"


def acl_denying(kind: str) -> str:
    """...or everything but the gateway's readings of ``kind`` (Mosquitto checks denials first)."""
    return f"topic deny faults/broker-refuses/v1/{SITE}/{GATEWAY}/{kind}/#\n{ACL_OPEN}"


async def broker_refuses_a_kind(folder: Path, *, refused_for: float = 10.0) -> ScenarioResult:
    """The broker's ACL denies the gateway's door topics (PUBACK 0x87) for ``refused_for``
    seconds, then allows them again (both by SIGHUP): the door readings wait in the outbox,
    the other kinds flow, and every door reading lands once the ACL is fixed."""
    async with Pipe(folder, name="broker-refuses", broker_acl=ACL_OPEN) as pipe:
        await asyncio.sleep(4)
        await pipe.inject(
            "ACL denies door",
            lambda: pipe.set_broker_acl(acl_denying("door")),
            lambda: pipe.set_broker_acl(ACL_OPEN),
            down=refused_for,
        )
        await asyncio.sleep(3)
        return await pipe.finish("broker refuses a kind, then allows it")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str  # for --only
    run: Callable[[Path], Awaitable[ScenarioResult]]
    what: str
    #: Needs a board that resends unacknowledged reports and a gateway that acknowledges them.
    needs_retransmit: bool = False
    #: A known shortfall this scenario shows (it is measured, not tested); empty when none.
    known_issue: str = ""
    #: Mounts a filesystem (a tmpfs): runs only as root.
    needs_root: bool = False


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "broker-kill",
        broker_killed,
        "4 s of readings, Mosquitto SIGKILLed, restarted 2 s later, 3 s more",
    ),
    Scenario(
        "broker-kill-away",
        broker_killed_while_consumer_away,
        "3 s of readings, the consumer SIGKILLed; 3 s later (readings queued for it in the"
        " broker) Mosquitto SIGKILLed; both restarted 2 s later, 3 s more",
    ),
    Scenario(
        "broker-down",
        broker_down_60s,
        "3 s of readings, Mosquitto stopped for 60 s while the board goes on, restarted, 3 s more",
    ),
    Scenario(
        "influxd-restart",
        influxd_restarted,
        "4 s of readings, InfluxDB stopped for 5 s and started again, 3 s more",
    ),
    Scenario(
        "consumer-kill",
        consumer_killed,
        "4 s of readings, the consumer SIGKILLed, restarted 3 s later, 3 s more",
    ),
    Scenario(
        "serial-unplug",
        serial_unplugged,
        "4 s of readings, the board's pty closed for 3 s (link gone) and reopened, 3 s more;"
        " the board keeps quiet around the unplug (it cannot resend)",
    ),
    Scenario(
        "serial-unplug-resend",
        serial_unplugged_board_resends,
        "as serial-unplug, the board talking throughout and resending what was not acknowledged",
        needs_retransmit=True,
    ),
    Scenario(
        "gateway-kill",
        gateway_killed_repeatedly,
        "3 s of readings, then 10 times: a seeded random 0.2-2.5 s, gateway SIGKILLed, restarted"
        " 0-1 s later (not waiting for it to catch up); 3 s more",
        needs_retransmit=True,
    ),
    Scenario(
        "gateway-kill-uncommitted",
        gateway_killed_before_commit,
        "commits every 2 s; 10 times: the gateway SIGKILLed after the first commit of its"
        " (re)start and before the second, with readings published and not stored, restarted"
        " 0-0.5 s later",
        needs_retransmit=True,
    ),
    Scenario(
        "gateway-kill-resend-2s",
        gateway_killed_board_resending_slowly,
        "as gateway-kill, the board resending after 2 s instead of 0.5 s",
        needs_retransmit=True,
    ),
    Scenario(
        "board-first",
        board_before_gateway,
        "the board powered up and talking (resending after 0.5 s) 5 s before the gateway"
        " starts with a fresh state folder; 3 s more",
        needs_retransmit=True,
    ),
    Scenario(
        "sd-full",
        sd_card_full_60s,
        "3 s of readings; the gateway's state folder (a 4 MB tmpfs) filled to the last byte for"
        " 60 s, then freed; 3 s more",
        needs_root=True,
    ),
    Scenario(
        "db-locked",
        database_locked_30s,
        "3 s of readings; another process holds BEGIN EXCLUSIVE on the gateway's outbox for"
        " 30 s, then lets go; 3 s more",
    ),
    Scenario(
        "broker-refuses",
        broker_refuses_a_kind,
        "4 s of readings; Mosquitto's ACL denies the gateway's door topics (PUBACK 0x87) for"
        " 10 s, then allows them again (each a SIGHUP reload); 3 s more",
    ),
)
