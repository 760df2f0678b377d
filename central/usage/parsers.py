"""``qihe stats ...``: the options of the statistics commands (argparse only).

Every ``qihe`` command, the gateway's included, builds all parsers, so this module imports
nothing heavy: the figures, the InfluxQL client and matplotlib load when a statistics command
actually runs (:mod:`central.usage.run_figures` for ``qihe stats FIGURE``,
:mod:`central.usage.run_report` for ``qihe stats report``).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

__all__ = ["add_parsers", "add_report_parser", "parse_month"]

_GRANULARITIES = ("hour", "day", "week", "month")
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")


def _figure(args: argparse.Namespace) -> int:
    from central.usage.run_figures import main

    return main(args)


def _report(args: argparse.Namespace) -> int:
    from central.usage.run_report import main

    return main(args)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``qihe stats FIGURE ...``: one subcommand per figure, sharing the options below.

    ``report`` (the monthly report of a district) is :func:`add_report_parser`.
    """
    stats = sub.add_parser(
        "stats",
        help="usage statistics: visitors, occupancy, seat utilisation, peaks ...",
        description="Usage statistics of the sites, computed from the readings in InfluxDB.",
    )
    figures_sub = stats.add_subparsers(dest="figure", required=True, metavar="FIGURE")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", required=True, type=Path, help="stats YAML config")
    common.add_argument(
        "--site",
        action="append",
        default=[],
        metavar="ID",
        help="a site id (repeat for more); default: every site",
    )
    common.add_argument("--district", metavar="NAME", help="only sites of this district")
    common.add_argument("--format", choices=("table", "csv", "json"), default="table")
    common.add_argument("--out", type=Path, metavar="PATH", help="write here instead of stdout")

    span = argparse.ArgumentParser(add_help=False)
    span.add_argument(
        "--from",
        dest="from_",
        required=True,
        metavar="DATE",
        help="first local day YYYY-MM-DD (or a local time YYYY-MM-DDTHH:MM)",
    )
    span.add_argument(
        "--to",
        required=True,
        metavar="DATE",
        help="last local day YYYY-MM-DD, included (or a local time, excluded)",
    )

    def figure(
        name: str, help_text: str, *parents: argparse.ArgumentParser
    ) -> argparse.ArgumentParser:
        parser = figures_sub.add_parser(
            name, help=help_text, description=help_text, parents=[common, *parents]
        )
        parser.set_defaults(handler=_figure)
        return parser

    def by(parser: argparse.ArgumentParser, default: str) -> None:
        parser.add_argument(
            "--by", choices=_GRANULARITIES, default=default, help=f"period (default {default})"
        )

    by(figure("visitors", "visitors per period (entrance counters, across resets)", span), "day")
    by(figure("occupancy", "people inside and occupied seats per period", span), "hour")
    util = figure("utilisation", "seat utilisation within opening hours", span)
    util.add_argument("--per", choices=("site", "seat"), default="site")
    util.add_argument("--by", choices=_GRANULARITIES, help="also split by period")
    figure("peaks", "peak hour and busiest weekday", span)
    figure("stays", "seat visits: count, average and median stay", span)
    by(figure("held", "seats away (暂离) and held while empty (占座) per period", span), "day")
    by(figure("doors", "door openings per period", span), "day")
    figure("attendance", "daily attendance of day-care centres", span)
    air = figure("air", "indoor air: CO₂ (mean, peak, minutes over a level), temperature", span)
    by(air, "hour")
    air.add_argument(
        "--co2-threshold",
        type=float,
        default=1000.0,
        metavar="PPM",
        help="count the minutes with CO₂ above this (default 1000 ppm)",
    )
    typ = figure("typical", "typical busy times per weekday and hour (P25/P50/P75)")
    typ.add_argument(
        "--to",
        required=True,
        metavar="DATE",
        help="last local day of the weeks looked at, included",
    )
    typ.add_argument("--weeks", type=int, default=4, help="weeks looked back (default 4)")
    add_report_parser(figures_sub, handler=_report)


def parse_month(text: str) -> date:
    """``2026-11`` -> ``date(2026, 11, 1)``; an argparse type (bad input is one clear line)."""
    match = _MONTH.match(text.strip())
    if match and 1 <= int(match[2]) <= 12:
        return date(int(match[1]), int(match[2]), 1)
    raise argparse.ArgumentTypeError(f"{text!r} is not a month: use YYYY-MM, e.g. 2026-11")


def add_report_parser(
    stats_subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    handler: Callable[[argparse.Namespace], int] | None = None,
) -> None:
    """Add ``report`` to the ``qihe stats`` actions; ``handler(args) -> exit code`` runs it
    (:func:`central.usage.run_report.main` in the command; tests only parse)."""
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
