"""One site's gateway under a busy afternoon's traffic, and a seat change's way to the page
and into InfluxDB (issue scenarios 3 and 5).

    .venv/bin/python -m bench.site_load --runs 3 --json out.json --keep DIR   # ~4 minutes
    .venv/bin/python -m bench.site_load --speed 1 --minutes 10                # real time

**The stack** (``bench/site_stack.py``): a private Mosquitto and InfluxDB, ``qihe consumer
run`` and ``qihe live`` as children with the sample configs' settings, and the gateway in a
process of its own (``python -m bench.site_worker``: what ``qihe gateway run`` does and
imports, plus gpiozero's MockFactory for its GPIO door), so the figures read from
``/proc/<pid>`` are the gateway's. Its config is ``config/gateway-taoyuan.yaml`` with the
site's ports, except ``clock.require_sync`` (this machine's clock is not NTP-disciplined)
and the clock scaling below; a notify socket stands in for systemd's watchdog.

**The site** (``bench/site_traffic.py``): 120 seats on four boards of 30 (``board-a`` …
``board-d``, emulated on ptys in this process); ``board-a`` also has the entrance counter
and the main door, boards b–d have seats only (HELLO lists their 30 seats, their heartbeats
come alone); a back door on GPIO 17 (as in the sample config). One 120-seat
:class:`BookHouseModel` plays the house (visitors through the entrance, students taking and
leaving seats) on scripted boards; it is fast-forwarded from opening to ``--start`` on a
weekday first, so the afternoon starts with the seats the morning left. Staff open the back
door ``--back-door-per-hour`` times an hour (spaced about evenly), for 5–30 s.

**Load (scenario 3)**: every clock runs ``--speed`` S times faster: the boards' simulated
time (heartbeats stay every 60 simulated seconds), the crowd, and the gateway's own periods
(``outbox.commit_interval``, ``link_report_interval``, ``clock.poll``, the MQTT keepalive,
the watchdog), so ``--minutes`` of emulated time take minutes/S real minutes with all the
work S times denser. CPU % of one core is then CPU seconds ÷ emulated seconds (the figure
at real time; ``--speed 1`` checks that), disk bytes likewise per emulated hour. The raw
CPU s ÷ wall s is reported too. The measured time is split into ``--runs`` windows
(medians; disk bytes over the whole time, as SQLite's checkpoints come in lumps); the peak
resident memory (VmHWM) is read once, at the end. Not scaled: the watchdog's loop-lag tick
(at most 1 s, however short the watchdog) and the 50 ms GPIO debounce.

**Latency (scenario 5**, ``bench/site_latency.py``): a second phase at real speed with the
sample's own intervals (the gateway restarts; the boards keep their sequence numbers, as
boards do when only the gateway restarts). Seats flip at ``--latency-rate`` per second;
each change is timed to its seat event on the live page's stream and to its point in
InfluxDB, split at the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from datetime import time as daytime
from pathlib import Path
from typing import Any

from bench.harness import (
    INTERRUPTED,
    ProcFigures,
    Row,
    Target,
    machine,
    median,
    proc_figures,
    run_in_folder,
    write_rows,
)
from bench.site_latency import LatencyWindow, latency_details, latency_rows, measure_latency
from bench.site_stack import Central, Phase, central_stack, gateway_phase
from bench.site_traffic import (
    BOARDS,
    ENTRANCE_BOARD,
    SEATS,
    TZ,
    Crowd,
    board_state,
    describe,
    device,
    house_at,
    make_boards,
)

__all__ = ["main"]

LOAD = "gateway at a site"


# Scenario 3: load ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadWindow:
    wall_s: float
    emulated_s: float
    cpu_s: float
    cpu_pct: float  # of one core, per emulated second
    cpu_pct_raw: float  # CPU s ÷ wall s at this speed
    disk_mb_per_hour: float  # write_bytes per emulated hour, MB (10^6 bytes)
    readings_per_hour: float
    frames_per_hour: float
    commits_per_hour: float  # outbox transactions (each one fsynced)
    #: Per emulated hour: what the site did and what the gateway published, by kind.
    traffic_per_hour: dict[str, float]
    published_per_hour: dict[str, float]


@dataclass(slots=True)
class LoadResult:
    windows: list[LoadWindow] = field(default_factory=list)
    vm_hwm_mb: float = 0.0
    vm_rss_mb: float = 0.0
    lost_frames: int = 0
    watchdog_pings: int = 0

    def overall(self, per_hour: Callable[[LoadWindow], float]) -> float:
        """A per-hour figure over the whole measured time, not a median of windows."""
        emulated = sum(w.emulated_s for w in self.windows)
        return sum(per_hour(w) * w.emulated_s for w in self.windows) / emulated


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: float  # monotonic
    proc: ProcFigures
    gateway: dict[str, int]  # the worker's own counters
    published: Counter[str]
    traffic: dict[str, int]

    @classmethod
    async def take(cls, central: Central, phase: Phase, crowd: Crowd) -> Snapshot:
        gateway = await phase.gateway.stats()
        return cls(
            time.monotonic(),
            proc_figures(phase.gateway.pid),
            gateway,
            central.tap.kinds(),
            asdict(crowd.traffic),
        )


async def measure_load(central: Central, phase: Phase, crowd: Crowd, args: Any) -> LoadResult:
    result = LoadResult()
    window_s = args.minutes * 60 / args.speed / args.runs
    # Let the power-up burst (HELLO, every seat) and the first commits pass.
    await asyncio.sleep(max(2.0, 5.0 / args.speed))
    before = await Snapshot.take(central, phase, crowd)
    for run in range(args.runs):
        await asyncio.sleep(window_s)
        central.check_alive()
        after = await Snapshot.take(central, phase, crowd)
        wall = after.at - before.at
        emulated = wall * args.speed
        hour = 3600 / emulated
        cpu = after.proc.cpu_s - before.proc.cpu_s
        window = LoadWindow(
            wall_s=wall,
            emulated_s=emulated,
            cpu_s=cpu,
            cpu_pct=cpu / emulated * 100,
            cpu_pct_raw=cpu / wall * 100,
            disk_mb_per_hour=(after.proc.write_bytes - before.proc.write_bytes) * hour / 1e6,
            readings_per_hour=(after.gateway["readings"] - before.gateway["readings"]) * hour,
            frames_per_hour=(after.gateway["frames"] - before.gateway["frames"]) * hour,
            commits_per_hour=(after.gateway["commits"] - before.gateway["commits"]) * hour,
            traffic_per_hour={k: (v - before.traffic[k]) * hour for k, v in after.traffic.items()},
            published_per_hour={
                k: (v - before.published[k]) * hour for k, v in after.published.items()
            },
        )
        result.windows.append(window)
        print(
            f"  load window {run + 1}/{args.runs}: {emulated / 60:.1f} emulated min in "
            f"{wall:.0f} s, CPU {window.cpu_pct:.2f} % of a core "
            f"({window.cpu_pct_raw:.2f} % raw), {window.disk_mb_per_hour:.2f} MB/h written, "
            f"{window.readings_per_hour:,.0f} readings/h",
            file=sys.stderr,
            flush=True,
        )
        before = after
    final = proc_figures(phase.gateway.pid)
    result.vm_hwm_mb = final.vm_hwm_bytes / 1e6
    result.vm_rss_mb = final.vm_rss_bytes / 1e6
    result.lost_frames = before.gateway["lost"]
    result.watchdog_pings = before.gateway["watchdog_pings"]
    return result


# Running ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Results:
    load: LoadResult | None = None
    latency: list[LatencyWindow] = field(default_factory=list)
    start: str = ""


async def run_all(args: argparse.Namespace, folder: Path) -> Results:
    results = Results()
    start = datetime.combine(args.date, args.start, TZ)
    results.start = start.isoformat()
    house = house_at(start, args.seed)
    seats = list(house.state().seats)
    first_seq = [0] * len(BOARDS)
    print(
        f"the house at {start:%a %Y-%m-%d %H:%M} ({start.tzname()}): "
        f"{sum(seats)} of {SEATS} seats taken",
        file=sys.stderr,
    )
    async with central_stack(folder) as central:
        if args.minutes > 0:
            print(
                f"load: {args.minutes:g} emulated minutes at {args.speed:g}× "
                f"({args.minutes * 60 / args.speed:.0f} s) …",
                file=sys.stderr,
                flush=True,
            )
            boards = make_boards(args.speed, start, seats, first_seq)
            async with gateway_phase(central, "load", args.speed, boards) as phase:
                crowd = Crowd(
                    house,
                    boards,
                    phase.gateway,
                    speed=args.speed,
                    back_door_per_hour=args.back_door_per_hour,
                    rng=random.Random(args.seed),
                )
                playing = asyncio.create_task(crowd.run(), name="crowd")
                try:
                    results.load = await measure_load(central, phase, crowd, args)
                finally:
                    playing.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await playing
            seats, first_seq = board_state(boards)
        if args.latency_seconds > 0:
            print(
                f"latency: {args.latency_seconds:g} s at real speed, "
                f"{args.latency_rate:g} changes/s …",
                file=sys.stderr,
                flush=True,
            )
            boards = make_boards(1.0, start, seats, first_seq)
            async with gateway_phase(central, "latency", 1.0, boards) as phase:
                results.latency = await measure_latency(central, phase, args)
    return results


# Figures -----------------------------------------------------------------------------------


def rows(results: Results, args: argparse.Namespace) -> list[Row]:
    out: list[Row] = []
    if results.load is not None:
        w = results.load.windows
        cpu = [x.cpu_pct for x in w]
        raw = [x.cpu_pct_raw for x in w]
        site = (
            f"{describe()}; {args.minutes:g} emulated minutes from {args.start:%H:%M} "
            f"on {args.date:%a %Y-%m-%d}"
        )
        out += [
            Row(
                LOAD,
                "gateway CPU, % of one core",
                median(cpu),
                "%",
                target=Target("value", "<=", 2),
                runs=cpu,
                note=f"CPU s ÷ emulated s, clocks ×{args.speed:g}; {site}",
            ),
            Row(
                LOAD,
                f"gateway CPU s ÷ wall s at ×{args.speed:g}",
                median(raw),
                "%",
                runs=raw,
                note="the raw figure: all the work of S emulated seconds in one real second",
            ),
            Row(
                LOAD,
                "gateway peak resident memory (VmHWM)",
                results.load.vm_hwm_mb,
                "MB",
                target=Target("value", "<=", 60),
                runs=[results.load.vm_hwm_mb],
                note=f"VmRSS at the end {results.load.vm_rss_mb:.1f} MB; MB = 10^6 bytes",
            ),
            Row(
                LOAD,
                "gateway disk writes (write_bytes)",
                results.load.overall(lambda x: x.disk_mb_per_hour),
                "MB/h",
                runs=[x.disk_mb_per_hour for x in w],
                note=(
                    "bytes the gateway sent to the block layer per emulated hour, over the "
                    "whole time (not a median: SQLite's WAL checkpoints come in lumps)"
                ),
            ),
            Row(
                LOAD,
                "gateway disk writes per reading",
                _per_reading_kb(results.load.overall(lambda x: x.disk_mb_per_hour), w),
                "KB/reading",
                # Before readings were published ahead of their commit (issue 17): 6.32 MB/h
                # for 990 readings/h at commit 80a6451; the SD card is to see no more.
                target=Target("value", "<=", 6.4),
                note="write_bytes per emulated hour ÷ readings per emulated hour; KB = 10^3 B",
            ),
            Row(
                LOAD,
                "readings handled",
                median([x.readings_per_hour for x in w]),
                "readings/h",
                runs=[x.readings_per_hour for x in w],
                note=_traffic_note(w),
            ),
        ]
    if results.latency:
        out += latency_rows(results.latency, args.lost_after)
    return out


def _per_reading_kb(mb_per_hour: float | None, windows: Sequence[LoadWindow]) -> float | None:
    readings = median([w.readings_per_hour for w in windows])
    if mb_per_hour is None or not readings:
        return None
    return mb_per_hour * 1000 / readings


def _traffic_note(windows: Sequence[LoadWindow]) -> str:
    traffic = {
        k: median([w.traffic_per_hour[k] for w in windows]) or 0
        for k in windows[0].traffic_per_hour
    }
    entrance = device(ENTRANCE_BOARD)
    return (
        f"per emulated hour: {traffic['seat_changes']:.0f} seat changes over {len(BOARDS)} "
        f"boards, {traffic['entered'] + traffic['left']:.0f} passages at {entrance}'s counter "
        f"(its main door opens with them), {traffic['back_door_openings']:.0f} back-door "
        f"openings (GPIO); {median([w.frames_per_hour for w in windows]):,.0f} frames from "
        f"the boards (heartbeats from all {len(BOARDS)}, counter totals from {entrance} alone)"
    )


def table(table_rows: Sequence[Row]) -> str:
    lines = ["| scenario | figure | median | runs | target |", "|---|---|---:|---|---|"]
    for row in table_rows:
        value = "–" if row.value is None else f"{row.value:,.2f} {row.unit}"
        runs = ", ".join(f"{r:,.2f}" for r in row.runs)
        target = ""
        if row.target is not None:
            target = f"{row.target} {'met' if row.met else 'NOT met'}"
        lines.append(f"| {row.scenario} | {row.metric} | {value} | {runs} | {target} |")
    return "\n".join(lines)


def details(results: Results) -> str:
    lines = []
    if results.load is not None:
        w = results.load.windows
        kinds = sorted({k for x in w for k in x.published_per_hour})
        published = ", ".join(
            f"{k} {median([x.published_per_hour.get(k, 0.0) for x in w]):,.0f}" for k in kinds
        )
        lines.append(f"published per emulated hour (broker side): {published}")
        commits = results.load.overall(lambda x: x.commits_per_hour)
        written = results.load.overall(lambda x: x.disk_mb_per_hour)
        if commits:
            lines.append(
                f"outbox: {commits:,.0f} commits per emulated hour, "
                f"{written * 1e6 / commits / 1024:,.1f} KiB written per commit"
            )
        lines.append(
            f"lost frames {results.load.lost_frames}, watchdog pings {results.load.watchdog_pings}"
        )
    if results.latency:
        lines.append(latency_details(results.latency))
    return "\n".join(lines)


# The command ---------------------------------------------------------------------------------


def _time(text: str) -> daytime:
    return datetime.strptime(text, "%H:%M").time()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.site_load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=3, help="windows per phase (medians)")
    parser.add_argument("--speed", type=float, default=4.0, help="clock scale of the load phase")
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="emulated minutes measured (0: no load phase)"
    )
    parser.add_argument("--start", type=_time, default=_time("15:00"), help="local time, HH:MM")
    parser.add_argument(
        "--date",
        type=date.fromisoformat,
        default=date(2025, 11, 26),
        help="the emulated day (a Wednesday; weekends are 1.4× busier)",
    )
    parser.add_argument("--back-door-per-hour", type=float, default=6.0)
    parser.add_argument(
        "--latency-seconds", type=float, default=60.0, help="real seconds (0: no latency phase)"
    )
    parser.add_argument("--latency-rate", type=float, default=1.5, help="seat changes per second")
    parser.add_argument("--poll-ms", type=float, default=20.0, help="InfluxDB poll interval")
    parser.add_argument("--lost-after", type=float, default=10.0, help="seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep logs and state under DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.runs < 1 or args.speed <= 0:
        print("--runs must be at least 1 and --speed positive", file=sys.stderr)
        return 2
    info = machine()
    command = " ".join(["python -m bench.site_load", *(argv or sys.argv[1:])])
    began = time.monotonic()
    try:
        results = run_in_folder(
            lambda folder: run_all(args, folder), args.keep, prefix="qihe-site-"
        )
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    table_rows = rows(results, args)
    print(
        f"\nRun {info['date']}: {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
        f"Mosquitto {info['mosquitto']}, InfluxDB {info['influxdb']}; "
        f"took {time.monotonic() - began:.0f} s\n"
    )
    print(table(table_rows))
    print()
    for row in table_rows:
        if row.note:
            print(f"- {row.metric}: {row.note}")
    print(details(results))
    if args.json is not None:
        write_rows(
            args.json,
            table_rows,
            command=command,
            start=results.start,
            load=None
            if results.load is None
            else {
                "vm_hwm_mb": results.load.vm_hwm_mb,
                "vm_rss_mb": results.load.vm_rss_mb,
                "lost_frames": results.load.lost_frames,
                "watchdog_pings": results.load.watchdog_pings,
                "windows": [asdict(w) for w in results.load.windows],
            },
            latency=[asdict(w) for w in results.latency],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
