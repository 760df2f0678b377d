"""The city benchmark's command line: ``python -m bench.city`` (see the package's notes)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import bench.city
from bench.city.ladder import shared_rates
from bench.city.payload import check_seat_payload
from bench.city.phases import City
from bench.city.report import Results, initial_line, print_report, rows, write_json
from bench.city.stack import SAVES, cancel, raise_open_files
from bench.harness import INTERRUPTED, machine, run_in_folder

__all__ = ["main", "run_city"]


async def run_city(args: argparse.Namespace, folder: Path) -> Results:
    """One run: the stack started under ``folder``, every phase in turn, all stopped after."""
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
        city.stack.tasks.append(sampler)
        exits.push_async_callback(cancel, sampler)
        results.initial = await city.initial_state()
        print(f"initial state: {initial_line(results.initial)}", file=sys.stderr, flush=True)

        city_rate = city.stack.seats * args.changes_per_seat_hour / 3600 + city.periodic_rate
        for run in range(args.runs):
            await city.measure("one consumer", f"city {run + 1}", city_rate, args.window)
        results.memory_city = city.stack.memory()
        rates = [float(r) for r in args.stress_rates.split(",") if r.strip()]
        one = await city.ladder("one consumer", rates, search=True)

        results.check_one = await city.switch_to_shared(exits)
        await city.ladder("two consumers", shared_rates(one) or rates[:1], search=False)
        results.shared = await city.shared_check()
        results.memory_end = city.stack.memory()
        results.spans = city.spans
        await cancel(sampler)  # before the consumers it asks are stopped
    results.seconds = time.monotonic() - began
    return results


def _title() -> str:
    return (bench.city.__doc__ or "").splitlines()[0]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.city", description=_title())
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
        choices=tuple(SAVES),
        default="second",
        help="broker snapshots: every second, after every change as deploy/mosquitto does, "
        "or only when it stops",
    )
    parser.add_argument(
        "--nodelay",
        action="store_true",
        help="TCP_NODELAY in the broker (set_tcp_nodelay) and on the emulated gateways",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep logs and state under DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print its figures (and write them to ``--json``)."""
    args = _parser().parse_args(argv)
    check_seat_payload()
    raise_open_files(4 * args.gateways + 1024)
    info = machine()
    command = " ".join(["python -m bench.city", *(argv or sys.argv[1:])])
    if args.keep is not None:
        for old in ("mosquitto", "influxd"):
            if (args.keep / old).exists():
                raise SystemExit(f"{args.keep / old} exists: --keep needs a fresh folder")
    try:
        results = run_in_folder(
            lambda folder: run_city(args, folder), args.keep, prefix="qihe-city-"
        )
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    table_rows = rows(results, args)
    print_report(results, table_rows, args, info)
    if args.json is not None:
        write_json(args.json, results, table_rows, command)
    return 0
