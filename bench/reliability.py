"""Run the fault scenarios and print the table of docs/reliability.md.

    .venv/bin/python -m bench.reliability                 # every scenario (about 4 minutes)
    .venv/bin/python -m bench.reliability --only broker-kill --only consumer-kill

Each scenario starts its own Mosquitto, InfluxDB, gateway, consumer and scripted
board (``tests/fault_harness.py``), injects its fault, and compares what the board
produced with what InfluxDB holds, reading by reading. The same scenarios run as
``tests/test_faults.py``. Exit status 1 if a reading was lost, duplicated or
reordered in a scenario that has no known issue.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from firmware_bridge.emulator import EmulatorConfig
from tests.fault_harness import SCENARIOS, Scenario, ScenarioResult, markdown_table

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=[s.name for s in SCENARIOS],
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(s.name for s in SCENARIOS)}",
    )
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep each scenario's folder (logs) under DIR"
    )
    return parser


async def _run(
    names: Sequence[str] | None, keep: Path | None
) -> list[tuple[Scenario, ScenarioResult]]:
    results = []
    can_resend = "retransmit_after" in EmulatorConfig.model_fields
    for scenario in SCENARIOS:
        if names and scenario.name not in names:
            continue
        if scenario.needs_retransmit and not can_resend:
            print(f"skipping {scenario.name}: this emulator cannot resend", file=sys.stderr)
            continue
        if scenario.needs_root and os.geteuid() != 0:
            print(f"skipping {scenario.name}: mounting its tmpfs needs root", file=sys.stderr)
            continue
        print(f"running {scenario.name}: {scenario.what}", file=sys.stderr, flush=True)
        if keep is not None:
            result = await scenario.run(keep / scenario.name)
        else:
            with tempfile.TemporaryDirectory(prefix=f"qihe-{scenario.name}-") as folder:
                result = await scenario.run(Path(folder))
        print(f"  {result!r}", file=sys.stderr, flush=True)
        if scenario.known_issue:
            print(f"  known issue: {scenario.known_issue}", file=sys.stderr, flush=True)
        results.append((scenario, result))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    results = asyncio.run(_run(args.only, args.keep))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Run {when} on {platform.node()}: {os.cpu_count()} cores, {platform.platform()}\n")
    print(markdown_table([result for _, result in results]))
    exact = all(
        result.accounted and not result.broker_errors
        for scenario, result in results
        if not scenario.known_issue
    )
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
