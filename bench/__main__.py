"""The benchmark suite: every scenario, one after another, and one table of their figures.

    python -m bench                  # or: qihe bench
    python -m bench --only consumer_rate city --runs 5
    python -m bench --out bench-results --profile

Each scenario is ``bench/<name>.py`` (or a package ``bench/<name>/``), run as its own
process (``python -m bench.<name>``) so one's threads, memory and children never weigh on
the next; it starts its own broker,
InfluxDB and emulators, and writes its rows (``bench/harness.py``) as JSON. The table gives
each figure (the median of its runs), its natural limit measured in the same run, the ratio,
and the target the figure is held to. Results, logs and profiles go under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import Row, kill_leftovers, machine, read_rows

__all__ = ["SCENARIOS", "main", "markdown_table"]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    #: Longest it may take with three runs (seconds); together about 16 minutes at most.
    budget_s: int
    profiles: bool = False


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("gateway_path", "网关实时路径与积压 gateway live path and backlog drain", 200, True),
    Scenario("site_load", "一个站点的网关负载与端到端延迟 gateway at a site, end to end", 240),
    Scenario("consumer_rate", "入库 consumer into InfluxDB", 170, True),
    Scenario("city", "全市规模 city scale", 260),
    Scenario("modbus_polling", "Modbus 轮询 8 台设备 polling 8 devices at 1 s", 100),
)
_BY_NAME = {s.name: s for s in SCENARIOS}


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}" if abs(value) >= 0.1 else f"{value:.3g}"


def _verdict(row: Row) -> str:
    met = row.met
    if met is None:
        return "–" if row.target is None else "?"
    return f"{row.target} ✓" if met else f"{row.target} ✗"


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| scenario | figure | median | runs | limit (same run) | ratio | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        limit = f"{_fmt(row.limit)} {row.unit} ({row.limit_label})" if row.limit else "–"
        ratio = "–" if row.ratio is None else f"{row.ratio:.2f}"
        runs = ", ".join(_fmt(r) for r in row.runs) if row.runs else "–"
        lines.append(
            f"| {row.scenario} | {row.metric} | {_fmt(row.value)} {row.unit} | {runs} "
            f"| {limit} | {ratio} | {_verdict(row)} |"
        )
    return "\n".join(lines)


def _run_one(scenario: Scenario, args: argparse.Namespace, out: Path) -> tuple[list[Row], str]:
    """Run one scenario's process; its rows, or none and what went wrong."""
    result = out / f"{scenario.name}.json"
    argv = [
        sys.executable,
        "-m",
        f"bench.{scenario.name}",
        "--runs",
        str(args.runs),
        "--json",
        str(result),
        "--keep",
        str(out / scenario.name),
    ]
    if args.profile and scenario.profiles:
        argv += ["--profile", str(out / "profiles" / scenario.name)]
    # More runs take longer; the budget is for three.
    timeout = scenario.budget_s * max(1.0, args.runs / 3) * 2
    try:
        completed = subprocess.run(argv, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return [], f"did not finish within {timeout:.0f} s"
    finally:
        kill_leftovers()
    if completed.returncode != 0:
        return [], f"exited with code {completed.returncode}"
    try:
        return read_rows(result), ""
    except (OSError, ValueError, KeyError) as exc:
        return [], f"wrote no readable results ({exc})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qihe bench",
        description="Run the benchmark suite (bench/) and print one table of its figures.",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=sorted(_BY_NAME),
        metavar="NAME",
        help=f"run only these scenarios ({', '.join(_BY_NAME)})",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median taken)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        help="results, logs and profiles go here (default: bench-results/)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile the gateway and consumer hot paths"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.runs < 1:
        print("qihe bench: --runs must be at least 1", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out: Path = args.out / stamp
    out.mkdir(parents=True, exist_ok=True)
    chosen = [_BY_NAME[n] for n in args.only] if args.only else list(SCENARIOS)
    rows: list[Row] = []
    failures: list[str] = []
    began = time.monotonic()
    for scenario in chosen:
        print(f"\n▶ {scenario.title} (bench.{scenario.name}) …", file=sys.stderr, flush=True)
        started = time.monotonic()
        got, problem = _run_one(scenario, args, out)
        took = time.monotonic() - started
        if problem:
            failures.append(f"{scenario.name}: {problem} (logs under {out / scenario.name})")
            print(f"✗ {scenario.name} {problem}", file=sys.stderr, flush=True)
        else:
            print(f"✓ {scenario.name} in {took:.0f} s", file=sys.stderr, flush=True)
        rows.extend(got)
    total = time.monotonic() - began
    info = machine()
    table = markdown_table(rows)
    header = (
        f"Machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
        f"Mosquitto {info['mosquitto']}, InfluxDB {info['influxdb']}; {info['date']}; "
        f"{args.runs} runs per figure; the suite took {total / 60:.1f} min."
    )
    (out / "results.md").write_text(f"{header}\n\n{table}\n", encoding="utf-8")
    (out / "results.json").write_text(
        json.dumps(
            {
                "machine": info,
                "runs": args.runs,
                "seconds": total,
                "rows": [r.to_json() for r in rows],
            },
            ensure_ascii=False,
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"\n{header}\n\n{table}\n")
    for row in rows:
        if row.note:
            print(f"- {row.scenario}, {row.metric}: {row.note}")
    print(f"\nresults: {out / 'results.md'}, {out / 'results.json'}")
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
