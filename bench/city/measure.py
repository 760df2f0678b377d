"""What the city measures: samples of every counter, lag, end-to-end latency, and one
stretch's figures (:class:`Span`)."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from bench.city.stack import Worker

__all__ = [
    "LAG_WARMUP_S",
    "SAMPLE_S",
    "EventTap",
    "Sample",
    "Sampler",
    "Span",
    "lag_growth",
    "machine_jiffies",
]

SAMPLE_S = 0.25
#: The consumer's first batch waits up to flush_interval (1 s): its backlog is judged after.
LAG_WARMUP_S = 1.5


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from ``/proc/stat``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    total = sum(fields[:8])  # guest time is already in user
    return total - idle, total


def lag_growth(points: Sequence[tuple[float, int]]) -> float:
    """The least-squares slope of (time, backlog) points, messages/s; 0 with fewer than 3."""
    if len(points) < 3:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_n = sum(n for _, n in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (n - mean_n) for t, n in points) / spread if spread else 0.0


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

    @property
    def published_total(self) -> int:
        """Messages PUBACKed to the gateways so far, before the current consumers included."""
        return self.published_base + max(self._published, default=0)

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
        self.record(sample)
        return sample

    def record(self, sample: Sample) -> None:
        """Keep a sample (with the most published so far, for :meth:`lag`)."""
        self.samples.append(sample)
        self._published.append(max(sample.published, self._published[-1] if self._published else 0))

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

    def growth(self, first: int, last: int, after: float, of: str = "consumed") -> float:
        """Messages/s by which the backlog (see :meth:`lag`) grew over samples ``first`` to
        ``last``, from ``after`` (monotonic) on."""
        return lag_growth(
            [
                (self.samples[i].t, self.lag(i, of)[0])
                for i in range(first, last + 1)
                if self.samples[i].t >= after
            ]
        )


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
