"""``qihe stats report``: the monthly report of a district, with charts, as one HTML file.

This module adds the subcommand and runs it; it does not compute figures. The stats command
hands :func:`run_report` a ``compute(name) -> Table`` callback for the district and month in
``args``, so the report does not depend on how figures are queried.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib loads only when a report is written, not with every command
    from central.usage.charts import ChartData
    from central.usage.table import Table

__all__ = ["FIGURES", "REPORT_TABLES", "extend_parsers", "parse_month", "run_report"]

#: What ``compute`` is asked for, in this order, for the district and month of the command.
#: ``typical`` comes first: its sites decide how many charts there are, so every progress line
#: can show the true total. ``visitors`` must be by day and ``utilisation`` per site.
FIGURES = (
    "typical",
    "visitors",
    "utilisation",
    "occupancy",
    "peaks",
    "stays",
    "doors",
    "attendance",
)
#: Figures printed as tables in the report, in this order. ``typical`` (24 × 7 rows a site) is
#: shown by the hourly charts instead.
REPORT_TABLES = ("utilisation", "peaks", "stays", "visitors", "occupancy", "attendance", "doors")

_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")


def parse_month(text: str) -> date:
    """``2026-11`` -> ``date(2026, 11, 1)``; an argparse type (bad input is one clear line)."""
    match = _MONTH.match(text.strip())
    if match and 1 <= int(match[2]) <= 12:
        return date(int(match[1]), int(match[2]), 1)
    raise argparse.ArgumentTypeError(f"{text!r} is not a month: use YYYY-MM, e.g. 2026-11")


def extend_parsers(
    stats_subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    handler: Callable[[argparse.Namespace], int] | None = None,
) -> argparse.ArgumentParser:
    """Add ``report`` to the ``qihe stats`` actions and return its parser.

    ``handler(args) -> exit code`` is set as the action's ``handler`` when given; it should
    build a ``compute`` for ``args`` and return ``run_report(args, compute)``.
    """
    report = stats_subparsers.add_parser(
        "report",
        help="monthly HTML report of a district, with charts",
        description="Write a district's monthly usage report (report.html and its charts).",
    )
    report.add_argument("--config", required=True, type=Path, help="statistics YAML config")
    report.add_argument("--district", required=True, help="district as in the site directory")
    report.add_argument(
        "--district-en", default=None, help="English name for the title (default: --district)"
    )
    report.add_argument("--month", required=True, type=parse_month, help="month, YYYY-MM")
    report.add_argument("--out", required=True, type=Path, help="folder for report.html")
    if handler is not None:
        report.set_defaults(handler=handler)
    return report


def run_report(args: argparse.Namespace, compute: Callable[[str], Table]) -> int:
    """Compute :data:`FIGURES`, draw the charts, write ``report.html``; print one progress
    line per step on stderr (``[3/21] 图表 charts: daily visitors``) and the report's path
    on stdout. Returns the exit code."""
    from central.usage.charts import (
        ChartError,
        chart_filename,
        daily_visitors,
        hourly_profile,
        utilisation_by_site,
    )
    from central.usage.report import write_monthly_report

    district: str = args.district
    month: date = args.month
    out_dir: Path = args.out
    print(f"qihe stats report: {district} {month:%Y-%m} -> {out_dir}", file=sys.stderr)
    tables: dict[str, Table] = {}
    tables["typical"] = compute("typical")
    sites = list(dict.fromkeys(str(s) for s in tables["typical"].values("site") if s is not None))

    n_charts = 2 + len(sites)
    total = len(FIGURES) + n_charts + (len(REPORT_TABLES) + n_charts + 1)
    done = 0

    def step(name: str) -> None:
        nonlocal done
        done += 1
        print(f"[{done}/{total}] {name}", file=sys.stderr, flush=True)

    step("统计 figures: typical")
    for name in FIGURES[1:]:
        tables[name] = compute(name)
        step(f"统计 figures: {name}")

    try:
        charts: list[ChartData] = []
        charts.append(daily_visitors(tables["visitors"], out_dir / "daily-visitors.png"))
        step("图表 charts: daily visitors")
        charts.append(utilisation_by_site(tables["utilisation"], out_dir / "utilisation.png"))
        step("图表 charts: utilisation")
        for site in sites:
            path = out_dir / chart_filename(f"hourly-{site}")
            charts.append(hourly_profile(tables["typical"], path, site=site))
            step(f"图表 charts: hourly profile {site}")
        path = write_monthly_report(
            district=district,
            district_en=getattr(args, "district_en", None),
            month=month,
            tables={name: tables[name] for name in REPORT_TABLES},
            charts=charts,
            out_dir=out_dir,
            progress=lambda name, _done, _total: step(name),
        )
    except (ChartError, OSError) as exc:
        print(f"qihe: report not written: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
