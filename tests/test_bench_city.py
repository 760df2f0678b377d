"""The city benchmark's pure parts (bench/city/): payloads, the stress ladder, lag and latency.
No servers; the benchmark itself runs with `python -m bench.city`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.city.ladder import Step, climb, holds, shared_rates
from bench.city.measure import EventTap, Sample, Sampler, Span, lag_growth
from bench.city.payload import seat_payload, utc
from bench.city.sites import GATEWAY, layout, periodic_per_gateway
from qihe.contract import SeatReading, encode_payload

ROOT = Path(__file__).resolve().parents[1]


# Payloads and the city's shape -----------------------------------------------------------


@given(
    us=st.integers(min_value=0, max_value=4_102_444_800_000_000),  # up to 2100
    seq=st.integers(min_value=0, max_value=0xFFFF),
    occupied=st.booleans(),
    n=st.integers(min_value=1, max_value=999),
    board=st.sampled_from("ab"),
    seat=st.integers(min_value=1, max_value=64),
)
def test_the_fast_seat_payload_is_the_contracts_byte_for_byte(
    us: int, seq: int, occupied: bool, n: int, board: str, seat: int
) -> None:
    site, device = f"site-{n:03d}", f"s{n:03d}-{board}"
    sensor = f"{device}.{seat}"
    model = SeatReading(
        site=site,
        gateway=GATEWAY,
        device=device,
        sensor=sensor,
        ts=utc(us),
        seq=seq,
        occupied=occupied,
    )

    assert seat_payload(site, device, sensor, us, seq, occupied) == encode_payload(model)


def test_eighty_seats_are_two_boards_of_forty_and_ids_are_zero_padded() -> None:
    sites = layout(400, 80)

    assert len(sites) == 400
    assert sites[0].id == "site-001"
    assert sites[0].devices == (("s001-a", 40), ("s001-b", 40))
    assert sites[-1].id == "site-400"
    assert periodic_per_gateway(sites[0]) == 6  # two heartbeats, two link reports, outbox, system


# The stress ladder ---------------------------------------------------------------------------


def _span(offered: float, *, holds: bool = True, drained: bool = True) -> Span:
    return Span(
        phase="one consumer",
        label="stress",
        offered=offered,
        seconds=8.0,
        published=offered,
        consumed=offered,
        lag_max=10,
        lag_max_s=0.5,
        lag_end_s=0.1,
        backlog_end=0,
        behind_s=0.0,
        drained_s=0.3 if drained else None,
        changes=0,
        e2e_samples=0,
        e2e_lost=0,
        p50=None,
        p99=None,
        max=None,
        resyncs=0,
        cpu={},
        machine_busy=0.0,
        lag_growth=0.0,
        live_lag_max=0,
        live_lag_max_s=0.0,
        live_lag_growth=0.0,
        holds=holds,
    )


def test_a_step_holds_when_taken_stored_within_lag_and_drained() -> None:
    assert holds(_span(2000), max_lag=5.0)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"published": 1899.0}, "the broker took less than 95 % of the offered rate"),
        ({"lag_growth": 201.0}, "the backlog grew by more than 10 % of the rate"),
        ({"lag_max_s": 5.1}, "the lag went over --max-lag"),
        ({"drained_s": None}, "it did not drain after the step"),
    ],
)
def test_a_step_does_not_hold(change: dict[str, Any], why: str) -> None:
    assert not holds(replace(_span(2000), **change), max_lag=5.0), why


def _capacity(limit: float, *, stuck_from: float = float("inf")) -> tuple[list[float], Step]:
    """A fake step: holds up to ``limit`` msg/s, does not drain from ``stuck_from`` on."""
    tried: list[float] = []

    async def step(rate: float) -> Span:
        tried.append(rate)
        return _span(rate, holds=rate <= limit, drained=rate < stuck_from)

    return tried, step


@pytest.mark.parametrize(
    ("limit", "stuck_from", "tried"),
    [
        (3000, float("inf"), [500, 2000, 4000, 3000]),  # up, then halfway back
        (10_000, float("inf"), [500, 2000, 4000, 8000]),  # every step held
        (200, float("inf"), [500, 250, 125, 187.5]),  # halved until one held, then halfway
        (100, float("inf"), [500, 250, 125]),  # halved twice at most
        (3000, 2000, [500, 2000]),  # a step that did not drain ends the ladder
    ],
)
async def test_the_ladder_climbs_until_a_rate_fails_then_searches(
    limit: float, stuck_from: float, tried: list[float]
) -> None:
    steps, step = _capacity(limit, stuck_from=stuck_from)

    spans = await climb(step, [500, 2000, 4000, 8000], search=True)

    assert steps == tried
    assert [s.offered for s in spans] == tried


async def test_without_search_the_ladder_stops_at_the_first_rate_that_fails() -> None:
    steps, step = _capacity(3000)

    await climb(step, [500, 2000, 4000, 8000], search=False)

    assert steps == [500, 2000, 4000]


def test_two_consumers_try_the_best_rate_one_held_and_the_next_it_failed() -> None:
    one = [_span(500), _span(2000), _span(4000, holds=False), _span(3000)]
    none_held = [_span(500, holds=False), _span(250, holds=False), _span(125, holds=False)]

    assert shared_rates(one) == [3000, 4000]
    assert shared_rates(none_held) == [125]
    assert shared_rates([_span(500), _span(2000)]) == [2000]


# Lag -------------------------------------------------------------------------------------


def _sampler(points: list[tuple[float, int, int]]) -> Sampler:
    sampler = Sampler([])
    for t, published, consumed in points:
        sampler.record(Sample(t=t, published=published, consumed=consumed, live=0, queued=0))
    return sampler


def test_lag_is_what_was_published_and_not_stored_and_how_old_the_oldest_is() -> None:
    sampler = _sampler([(0.0, 0, 0), (1.0, 100, 50), (2.0, 200, 150), (3.0, 300, 300)])

    # At t=2, messages 151–200 wait; number 151 was published at about t=1.51.
    behind, age = sampler.lag(2)

    assert behind == 50
    assert age == pytest.approx(0.49)
    assert sampler.lag(3) == (0, 0.0)


def test_a_backlog_older_than_the_first_sample_is_aged_from_it() -> None:
    sampler = _sampler([(10.0, 100, 0), (11.0, 150, 0)])

    assert sampler.lag(1) == (150, 1.0)


def test_lag_growth_is_the_least_squares_slope_of_the_backlog() -> None:
    assert lag_growth([(0.0, 0), (1.0, 10), (2.0, 20), (3.0, 30)]) == pytest.approx(10.0)
    assert lag_growth([(0.0, 5), (1.0, 7), (2.0, 5), (3.0, 7)]) == pytest.approx(0.4)
    assert lag_growth([(0.0, 0), (1.0, 100)]) == 0.0  # too few points to tell


# End-to-end latency ---------------------------------------------------------------------------


def _event(kind: str, doc: object) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(doc)}\n\n".encode()


def _seat(site: str, seat: str, state: str, since: float | None) -> bytes:
    stamp = None if since is None else datetime.fromtimestamp(since, UTC).isoformat()
    return _event("seat", {"site": site, "seat": {"id": seat, "state": state, "since": stamp}})


async def test_each_seat_event_is_matched_to_its_change_by_since() -> None:
    now = time.time()
    first, second, late = now - 0.25, now - 0.1, now - 0.05
    frame = _seat("site-001", "s001-a.2", "free", second)
    chunks = [
        _event("ready", {}),
        _seat("site-001", "s001-a.1", "occupied", first),
        frame[:20],  # a frame may arrive in pieces
        frame[20:],
        _seat("site-002", "s002-a.1", "unknown", None),  # no change to match
        _event("resync", {}),
        _seat("site-002", "s002-b.3", "occupied", late),
    ]

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/events"
        return httpx.Response(200, content=body())

    tap = EventTap()
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(handler), base_url="http://live"
    ) as http:
        await tap.run(http)
    arrived = time.time()

    assert tap.ready.is_set()
    assert tap.resyncs == 1
    assert [t0 for t0, _ in tap.samples] == pytest.approx([first, second, late], abs=1e-6)
    assert tap.known == {
        ("site-001", "s001-a.1"),
        ("site-001", "s001-a.2"),
        ("site-002", "s002-b.3"),
    }
    # The changes made in the window (not the late one), in ms, sorted.
    latencies = tap.latencies(first - 0.01, (second + late) / 2)
    assert len(latencies) == 2
    assert latencies == sorted(latencies)
    assert min(latencies) >= 99
    assert max(latencies) >= 249
    assert max(latencies) <= (arrived - first) * 1000 + 1


# The generator's process -----------------------------------------------------------------------


def test_the_generator_worker_imports_no_http_client_harness_or_central_code() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, bench.city.generator\nprint(json.dumps(sorted(sys.modules)))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(json.loads(done.stdout))

    heavy = {"httpx", "yaml", "bench.harness", "central", "devstack", "bench.city.stack"}
    assert not {m for m in loaded if m in heavy or m.split(".")[0] in heavy}
