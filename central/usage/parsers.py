"""``qihe stats ...``: the statistics commands' options (argparse only).

Every ``qihe`` command, the gateway's included, builds all parsers, so this module imports
nothing heavy: the figures, the InfluxQL client and matplotlib load when a statistics command
actually runs (:mod:`central.usage.cli`, :mod:`central.usage.report_cli`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from central.usage.report_cli import extend_parsers

__all__ = ["GRANULARITIES", "add_parsers"]

GRANULARITIES = ("hour", "day", "week", "month")


def _main(args: argparse.Namespace) -> int:
    from central.usage.cli import main

    return main(args)


def _report(args: argparse.Namespace) -> int:
    from central.usage.cli import report_main

    return report_main(args)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``qihe stats FIGURE ...``: one subcommand per figure, sharing the options below.

    ``report`` (the monthly report of a district) comes from :mod:`central.usage.report_cli`.
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
        parser.set_defaults(handler=_main)
        return parser

    def by(parser: argparse.ArgumentParser, default: str) -> None:
        parser.add_argument(
            "--by", choices=GRANULARITIES, default=default, help=f"period (default {default})"
        )

    by(figure("visitors", "visitors per period (entrance counters, across resets)", span), "day")
    by(figure("occupancy", "people inside and occupied seats per period", span), "hour")
    util = figure("utilisation", "seat utilisation within opening hours", span)
    util.add_argument("--per", choices=("site", "seat"), default="site")
    util.add_argument("--by", choices=GRANULARITIES, help="also split by period")
    figure("peaks", "peak hour and busiest weekday", span)
    figure("stays", "seat visits: count, average and median stay", span)
    by(figure("doors", "door openings per period", span), "day")
    figure("attendance", "daily attendance of day-care centres", span)
    typ = figure("typical", "typical busy times per weekday and hour (P25/P50/P75)")
    typ.add_argument(
        "--to",
        required=True,
        metavar="DATE",
        help="last local day of the weeks looked at, included",
    )
    typ.add_argument("--weeks", type=int, default=4, help="weeks looked back (default 4)")
    extend_parsers(figures_sub, handler=_report)
