"""``qihe bench``: run the benchmark suite of a source checkout (``bench/``, not installed).

The benchmarks start their own broker, InfluxDB and emulators and need the repository's
``bench/`` folder beside the installed packages (an editable install, as ``./dev.sh`` makes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["add_parsers", "checkout_root"]


def checkout_root() -> Path | None:
    """The source checkout this ``qihe`` runs from, if it has the benchmarks."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "bench" / "__main__.py").is_file() else None


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser(
        "bench",
        help="run the benchmark suite and print its table (from a source checkout)",
        description="Run the benchmark suite (bench/): every scenario starts its own broker, "
        "InfluxDB and emulators. Arguments after `bench` go to `python -m bench` "
        "(--only NAME…, --runs N, --out DIR, --profile; see `qihe bench -- --help`).",
        prefix_chars="+",  # every option belongs to the suite, not to this parser
    )
    bench.add_argument("suite_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    bench.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    root = checkout_root()
    if root is None:
        print(
            "qihe bench: the benchmarks live in the source repository (bench/); "
            "run it from a clone installed with ./dev.sh",
            file=sys.stderr,
        )
        return 2
    suite_args = [a for a in args.suite_args if a != "--"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", "bench", *suite_args], cwd=root, env=env, check=False
    ).returncode
