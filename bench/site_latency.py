"""Scenario 5 of ``bench/site_load.py``: a seat change's way to the live page and InfluxDB.

At real speed with the sample's own intervals, seats flip at ``--latency-rate`` per second
(Poisson, seeded). Per change, from one monotonic clock in the bench: t0 when the board
sends it, the seat event's arrival on an ``/api/v1/events`` stream, and the first InfluxQL
poll (every ``--poll-ms`` while changes are pending, one query for all of them) that
returns the point. The broker :class:`~bench.site_stack.Tap` times the gateway's
publication, which splits the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.harness import Row, Target, median, percentile
from bench.site_stack import SITE, Central, Phase
from bench.site_traffic import BOARD_SEATS, SEATS, board_state, seat_sensor
from central.live.client import read_events

__all__ = [
    "LATENCY",
    "Change",
    "LatencyProbe",
    "LatencyWindow",
    "fmt_ms",
    "latency_details",
    "latency_rows",
    "measure_latency",
]

LATENCY = "end to end, one site"
#: A change counts for the InfluxDB figure only if its point's time is at most this much
#: before t0 (one host, one clock; the gateway stamps a reading when it reads the frame).
STAMP_SLACK_NS = 50_000_000


@dataclass(slots=True)
class Change:
    sensor: str
    occupied: bool
    t0: float  # monotonic, when the board sent it
    t0_ns: int  # wall clock, to find its point
    t_live: float | None = None
    t_influx: float | None = None
    t_broker: float | None = None


@dataclass(frozen=True, slots=True)
class LatencyWindow:
    changes: int
    lost_live: int
    lost_influx: int
    live_p50: float | None
    live_p99: float | None
    live_max: float | None
    influx_p50: float | None
    influx_p99: float | None
    influx_max: float | None
    board_to_broker_p50: float | None
    broker_to_live_p50: float | None
    broker_to_influx_p50: float | None
    influx_polls: int
    #: Every change's latency (ms), in the order made; lost ones left out.
    live_ms: list[float]
    influx_ms: list[float]


def _ms(values: list[float]) -> tuple[float | None, float | None, float | None]:
    values = sorted(values)
    if not values:
        return None, None, None
    return percentile(values, 50), percentile(values, 99), values[-1]


def fmt_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


class LatencyProbe:
    """Flips seats and waits for each change on the live stream and in InfluxDB."""

    def __init__(self, central: Central, phase: Phase, args: Any) -> None:
        self.central = central
        self.phase = phase
        self.args = args
        self.rng = random.Random(args.seed + 1)
        self.seats, _ = board_state(phase.boards)
        self.live: dict[str, Change] = {}  # waiting for their seat event, by sensor
        self.influx: dict[str, Change] = {}  # waiting for their point, by sensor
        self.settled = asyncio.Event()  # set while nothing is waiting
        self.settled.set()
        self.polls = 0

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind != "seat" or data.get("site") != SITE:
            return
        seat = data["seat"]
        change = self.live.get(seat["id"])
        if change is not None and seat["state"] == ("occupied" if change.occupied else "free"):
            change.t_live = time.monotonic()
            del self.live[seat["id"]]
            self._check_settled()

    async def poll_influx(self) -> None:
        while True:
            await asyncio.sleep(self.args.poll_ms / 1000)
            if not self.influx:
                continue
            since = min(c.t0_ns for c in self.influx.values()) - STAMP_SLACK_NS
            rows = await self.central.influx_rows(
                f"SELECT occupied, sensor FROM seat WHERE site = '{SITE}' AND time >= {since}"
            )
            now = time.monotonic()
            self.polls += 1
            for stamp, occupied, sensor in rows:
                change = self.influx.get(sensor)
                if (
                    change is not None
                    and bool(occupied) == change.occupied
                    and stamp >= change.t0_ns - STAMP_SLACK_NS
                ):
                    change.t_influx = now
                    del self.influx[sensor]
            self._check_settled()

    def _check_settled(self) -> None:
        if not self.live and not self.influx:
            self.settled.set()

    def _flip(self) -> Change | None:
        free = [i for i in range(SEATS) if seat_sensor(i) not in self.live | self.influx]
        if not free:
            return None
        i = self.rng.choice(free)
        self.seats[i] = not self.seats[i]
        board, n = divmod(i, BOARD_SEATS)
        change = Change(seat_sensor(i), self.seats[i], time.monotonic(), time.time_ns())
        self.phase.boards[board].set_seat(n + 1, self.seats[i])
        self.live[change.sensor] = self.influx[change.sensor] = change
        self.settled.clear()
        return change

    async def window(self, duration: float) -> LatencyWindow:
        loop = asyncio.get_running_loop()
        changes: list[Change] = []
        polls = self.polls
        start = due = loop.time()
        while True:
            due += self.rng.expovariate(self.args.latency_rate)
            if due - start >= duration:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            change = self._flip()
            if change is not None:
                changes.append(change)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.args.lost_after):
                await self.settled.wait()
        # What has not come is lost; its seat may flip again.
        self.live.clear()
        self.influx.clear()
        self.settled.set()
        self.central.check_alive()
        return self._figures(changes, self.polls - polls)

    def _figures(self, changes: list[Change], polls: int) -> LatencyWindow:
        lost_after = self.args.lost_after
        live, influx, to_broker, to_live, to_influx = [], [], [], [], []
        for c in changes:
            c.t_broker = self.central.tap.published(c.sensor, c.occupied, c.t0)
            if c.t_live is not None and c.t_live - c.t0 <= lost_after:
                live.append((c.t_live - c.t0) * 1000)
                if c.t_broker is not None:
                    to_live.append((c.t_live - c.t_broker) * 1000)
            if c.t_influx is not None and c.t_influx - c.t0 <= lost_after:
                influx.append((c.t_influx - c.t0) * 1000)
                if c.t_broker is not None:
                    to_influx.append((c.t_influx - c.t_broker) * 1000)
            if c.t_broker is not None:
                to_broker.append((c.t_broker - c.t0) * 1000)
        live_ms, influx_ms = _ms(live), _ms(influx)
        return LatencyWindow(
            changes=len(changes),
            lost_live=len(changes) - len(live),
            lost_influx=len(changes) - len(influx),
            live_p50=live_ms[0],
            live_p99=live_ms[1],
            live_max=live_ms[2],
            influx_p50=influx_ms[0],
            influx_p99=influx_ms[1],
            influx_max=influx_ms[2],
            board_to_broker_p50=_ms(to_broker)[0],
            broker_to_live_p50=_ms(to_live)[0],
            broker_to_influx_p50=_ms(to_influx)[0],
            influx_polls=polls,
            live_ms=live,
            influx_ms=influx,
        )


async def measure_latency(central: Central, phase: Phase, args: Any) -> list[LatencyWindow]:
    """``args.runs`` windows of ``args.latency_seconds / args.runs`` seconds each."""
    probe = LatencyProbe(central, phase, args)
    ready = asyncio.Event()

    async def listen() -> None:
        async for event in read_events(central.live_http, "/api/v1/events", site=SITE):
            if event.kind == "ready":
                ready.set()
            probe.on_event(event.kind, event.data)

    tasks = [
        asyncio.create_task(listen(), name="event-stream"),
        asyncio.create_task(probe.poll_influx(), name="influx-poll"),
    ]
    try:
        async with asyncio.timeout(10):
            await ready.wait()
        await asyncio.sleep(2.0)  # past the power-up burst
        windows = []
        for run in range(args.runs):
            window = await probe.window(args.latency_seconds / args.runs)
            windows.append(window)
            print(
                f"  latency window {run + 1}/{args.runs}: {window.changes} changes; "
                f"live p50 {fmt_ms(window.live_p50)} p99 {fmt_ms(window.live_p99)} "
                f"(lost {window.lost_live}); InfluxDB p50 {fmt_ms(window.influx_p50)} "
                f"p99 {fmt_ms(window.influx_p99)} (lost {window.lost_influx})",
                file=sys.stderr,
                flush=True,
            )
            for task in tasks:
                if task.done():
                    task.result()
                    raise RuntimeError(f"{task.get_name()} ended")
        return windows
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# Figures -----------------------------------------------------------------------------------


def latency_rows(windows: Sequence[LatencyWindow], lost_after: float) -> list[Row]:
    out = []
    changes = sum(w.changes for w in windows)
    for where, key in (("live page event", "live"), ("InfluxDB point", "influx")):
        lost = sum(getattr(w, f"lost_{key}") for w in windows)
        for label in ("p50", "p99", "max"):
            values = [v for w in windows if (v := getattr(w, f"{key}_{label}")) is not None]
            pooled = [v for w in windows for v in getattr(w, f"{key}_ms")]
            if label == "max":
                value, note = max(values, default=None), "the largest of all windows"
            else:
                value = median(values)
                note = f"of all {len(pooled)} changes together: {fmt_ms(_ms(pooled)[1])}"
            if label == "p50":
                note = (
                    f"{changes} changes in {len(windows)} windows, {lost} lost "
                    f"(none within {lost_after:g} s); all together: {fmt_ms(_ms(pooled)[0])}"
                )
            out.append(
                Row(
                    LATENCY,
                    f"seat change → {where}, {label}",
                    value,
                    "ms",
                    target=_TARGETS.get((key, label)),
                    runs=values,
                    note=note,
                )
            )
    return out


#: What issue 17 asks of a seat change at one site, the gateway in the path, default config.
_TARGETS = {
    ("live", "p50"): Target("value", "<=", 30),
    ("live", "p99"): Target("value", "<=", 100),
    ("influx", "p99"): Target("value", "<=", 250),
}


def latency_details(windows: Sequence[LatencyWindow]) -> str:
    """Where the time goes, one line."""

    def split(attr: str) -> str:
        return fmt_ms(median([getattr(x, attr) for x in windows]))

    return (
        f"where the time goes (p50): board → broker {split('board_to_broker_p50')} "
        f"(published before the outbox commit), broker → live page "
        f"{split('broker_to_live_p50')}, broker → InfluxDB {split('broker_to_influx_p50')}; "
        f"{sum(x.influx_polls for x in windows)} InfluxDB polls"
    )
