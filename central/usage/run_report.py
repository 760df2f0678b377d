"""``qihe stats report``: the monthly report of a district, with charts, as one HTML file.

:func:`main` computes every figure for the district and the month in ``args`` and hands
:func:`run_report` a ``compute(name) -> Table`` callback, so drawing and writing the report does
not depend on how figures are queried (tests give it tables of their own).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path

from central.errors import InfluxError
from central.usage import figures
from central.usage.charts import (
    ChartData,
    ChartError,
    chart_filename,
    daily_visitors,
    hourly_profile,
    utilisation_by_site,
)
from central.usage.client import InfluxQLClient, UsageError
from central.usage.report import write_monthly_report
from central.usage.run_figures import failed, load_stats_setup
from central.usage.table import Table

__all__ = ["FIGURES", "main", "run_report"]

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
_TABLES = ("utilisation", "peaks", "stays", "visitors", "occupancy", "attendance", "doors")


def main(args: argparse.Namespace) -> int:
    """Run ``qihe stats report`` as parsed into ``args``: every figure for the district and the
    whole month, then :func:`run_report` draws and writes it. Returns the exit code."""
    config, directory = load_stats_setup(args.config)
    zone = directory.zone
    month = args.month
    start = datetime.combine(month, time(0), zone)
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    end = datetime.combine(following, time(0), zone)
    if args.district_en is None:
        args.district_en = next(
            (s.district_en for s in directory.sites if s.district == args.district), None
        )
    try:
        sites = figures.sites_in(directory, [], args.district)
        with InfluxQLClient(config.influx) as client:

            def compute_one(name: str) -> Table:
                ask = figures.Ask(by="day" if name == "visitors" else None)
                figure = figures.FIGURES[name]
                return figures.compute(figure, client, directory, sites, start, end, ask)

            return run_report(args, compute_one)
    except (InfluxError, UsageError) as exc:
        return failed(exc)


def run_report(args: argparse.Namespace, compute: Callable[[str], Table]) -> int:
    """Compute :data:`FIGURES`, draw the charts, write ``report.html``; print one progress
    line per step on stderr (``[3/21] 图表 charts: daily visitors``) and the report's path
    on stdout. Returns the exit code."""
    district: str = args.district
    month: date = args.month
    out_dir: Path = args.out
    print(f"qihe stats report: {district} {month:%Y-%m} -> {out_dir}", file=sys.stderr)
    tables: dict[str, Table] = {}
    tables["typical"] = compute("typical")
    sites = list(dict.fromkeys(str(s) for s in tables["typical"].values("site") if s is not None))

    n_charts = 2 + len(sites)
    total = len(FIGURES) + n_charts + (len(_TABLES) + n_charts + 1)
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
            tables={name: tables[name] for name in _TABLES},
            charts=charts,
            out_dir=out_dir,
            progress=lambda name, _done, _total: step(name),
        )
    except (ChartError, OSError) as exc:
        print(f"qihe: report not written: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
