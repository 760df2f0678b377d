"""The city's phases on its running stack: the initial state, measured stretches at an
offered rate, draining, the stress ladder, and the switch to two consumers in one shared
subscription with its exactly-once check."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.city.ladder import climb, holds
from bench.city.measure import LAG_WARMUP_S, EventTap, Sampler, Span, machine_jiffies
from bench.city.report import span_line
from bench.city.sites import periodic_per_gateway
from bench.city.stack import START_TIMEOUT_S, CityStack, Worker, cancel, drop_session
from bench.harness import percentile, proc_figures

__all__ = ["DRAIN_TIMEOUT_S", "MEASURED_BY", "SHARED_GROUP", "City"]

SHARED_GROUP = "city"
DRAIN_TIMEOUT_S = 20.0
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


class City:
    """The running stack and what it measures."""

    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.stack = CityStack(args, folder)
        self.periodic_rate = (
            sum(periodic_per_gateway(s) for s in self.stack.sites) / args.report_interval
        )
        self.sampler = Sampler(self.stack.generators)
        self.tap = EventTap()
        self.spans: list[Span] = []
        self.notes: dict[str, Any] = {}
        self._next_poll = 0.0

    async def start(self, exits: contextlib.AsyncExitStack) -> None:
        """The services, one consumer, the event stream, then the (unconnected) generators."""
        stack = self.stack
        await stack.start_services(exits)
        assert stack.http is not None
        self.sampler.http = stack.http
        self.sampler.reset(
            await stack.start_consumers(exits, ["bench-consumer"], database="city", group=""), 0, 0
        )
        tap = asyncio.create_task(self.tap.run(stack.http), name="event-stream")
        stack.tasks.append(tap)
        exits.push_async_callback(cancel, tap)
        async with asyncio.timeout(10):
            await self.tap.ready.wait()
        await stack.start_generators(exits)

    async def _live_complete(self) -> bool:
        """Every seat known in the live service: seen on the event stream (asking the API
        would cost the service a refresh of every site per request), or after the stream
        had to resync, from ``/api/v1/sites`` every few seconds."""
        if len(self.tap.known) >= self.stack.seats:
            return True
        if not self.tap.resyncs or time.monotonic() < self._next_poll:
            return False
        self._next_poll = time.monotonic() + 5
        assert self.stack.http is not None
        listing = (await self.stack.http.get("/api/v1/sites")).json()["sites"]
        known = [
            s
            for s in listing
            if s["online"] and s["seats"]["free"] + s["seats"]["occupied"] == self.args.seats
        ]
        return len(known) == len(self.stack.sites)

    # Phases ---------------------------------------------------------------------------------

    async def initial_state(self) -> dict[str, float]:
        """Every gateway connects and publishes its status, boards and seats at once."""
        began = time.monotonic()
        await self.stack.ask_generators(cmd="start")
        marks: dict[str, float] = {}
        async with asyncio.timeout(START_TIMEOUT_S):
            while not {"connected", "published", "stored", "live"} <= marks.keys():
                await asyncio.sleep(0.5)
                self.stack.check_alive()
                stats = await self.stack.ask_generators(cmd="stats")
                sample = self.sampler.samples[-1] if self.sampler.samples else None
                now = time.monotonic() - began
                if "connected" not in marks and sum(s["connected"] for s in stats) == len(
                    self.stack.sites
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
        assert self.stack.live is not None
        marks["live_rss_mb"] = proc_figures(self.stack.live.pid).vm_rss_bytes / 1e6
        return marks

    async def measure(self, phase: str, label: str, offered: float, seconds: float) -> Span:
        """Offer ``offered`` messages/s for ``seconds``; then stop, drain and read the figures.
        A city-rate window starts once the live service has caught up."""
        seat_rate = max(0.0, offered - self.periodic_rate)
        if label.startswith("city"):
            await self.live_caught_up(within=30.0)
        cpu0, busy0, resyncs = self.stack.cpu_seconds(), machine_jiffies(), self.tap.resyncs
        first = len(self.sampler.samples)
        s0 = await self.sampler.take()
        replies = await asyncio.gather(
            *(
                g.request(cmd="rate", seat_rate=seat_rate * share)
                for g, share in zip(self.stack.generators, self.stack.seat_share, strict=True)
            )
        )
        wall_start = min(r["at"] for r in replies)
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            await asyncio.sleep(min(1.0, seconds - (time.monotonic() - began)))
            self.stack.check_alive()
        s1 = await self.sampler.take()
        last = len(self.sampler.samples) - 1
        cpu1, busy1 = self.stack.cpu_seconds(), machine_jiffies()
        replies = await self.stack.ask_generators(cmd="rate", seat_rate=0)
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
            lag_growth=self.sampler.growth(first, last, s0.t + LAG_WARMUP_S),
            live_lag_max=max(n for n, _ in live),
            live_lag_max_s=max(s for _, s in live),
            live_lag_growth=self.sampler.growth(first, last, s0.t + LAG_WARMUP_S, of="live"),
        )
        span.holds = holds(span, self.args.max_lag)
        self.spans.append(span)
        print(span_line(span), file=sys.stderr, flush=True)
        return span

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
            self.stack.check_alive()
        return None

    async def ladder(self, phase: str, rates: list[float], *, search: bool) -> list[Span]:
        """The stress ladder (:func:`bench.city.ladder.climb`), ``--step`` s a step."""
        return await climb(
            lambda rate: self.measure(phase, "stress", rate, self.args.step), rates, search=search
        )

    async def switch_to_shared(self, exits: contextlib.AsyncExitStack) -> dict[str, Any]:
        """Quiet the gateways, stop the one consumer (its session ended), start two sharing
        one group; wait out what the broker replays to them before anything is published."""
        await self.stack.ask_generators(cmd="periodic", on=False)
        await self.drain()
        check = await self.count_points("city", since=None)
        async with self.sampler.lock:
            published = self.sampler.published_total
            for worker in self.stack.consumers:
                await worker.close()
            await asyncio.to_thread(drop_session, self.stack.broker, "bench-consumer")
            began = time.monotonic()
            workers = await self.stack.start_consumers(
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
        await self.stack.ask_generators(cmd="periodic", on=True)
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
        stats = await self.stack.ask_generators(cmd="stats")
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
                self.stack.influx.rows,
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
        await self.stack.ask_generators(cmd="periodic", on=False)
        drained = await self.drain(within=2 * DRAIN_TIMEOUT_S)
        counts = await self.count_points("city_shared", since=self.notes["shared_start"])
        stats = await self.stack.ask_consumers(cmd="stats")
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
