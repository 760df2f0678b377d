"""``qihe stats FIGURE``: the usage statistics from InfluxDB, as a table, CSV or JSON.

::

    qihe stats visitors --config config/stats.yaml --district 山城区 \\
        --from 2026-11-01 --to 2026-11-30 --by week --format csv --out visitors.csv

Dates are local days of the directory's zone: ``--from`` is the first day, ``--to`` the last day
(included). ``YYYY-MM-DDTHH:MM`` gives an exact local moment instead (``--to`` then excluded).
Exit codes: 0 done, 1 InfluxDB failed (unreachable, refused, an InfluxQL error), 2 bad input
(config, dates, sites). Every failure is one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path

from central.errors import InfluxError
from central.sites import SiteDirectory, load_with_directory
from central.usage import figures
from central.usage.client import InfluxQLClient, ReadingsSource, StatsInfluxConfig, UsageError
from central.usage.formats import render_csv, render_json, render_table
from central.usage.table import Table
from qihe.configtypes import StrictModel

__all__ = ["failed", "load_stats_setup", "main", "table_for"]


class StatsConfig(StrictModel):
    """``config/stats.yaml``: where the readings are, and the site directory."""

    #: The site directory (names, districts, opening hours, seats), relative to this file.
    sites: Path
    influx: StatsInfluxConfig


def load_stats_setup(path: str | Path) -> tuple[StatsConfig, SiteDirectory]:
    """The stats config and the directory it names; raise ``ConfigError`` (no network)."""
    return load_with_directory(path, StatsConfig)


class _InputError(UsageError, ValueError):
    pass


def _moment(text: str, zone: tzinfo, option: str, *, last_day: bool) -> datetime:
    """A date means its local midnight (``--to``: the midnight after it, the day included)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day + timedelta(days=1 if last_day else 0), time(0), zone)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _InputError(
            f"{option} {text!r} is not a date (YYYY-MM-DD) or local time (YYYY-MM-DDTHH:MM)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def table_for(
    args: argparse.Namespace,
    directory: SiteDirectory,
    client: ReadingsSource,
    *,
    now: datetime | None = None,
) -> Table:
    """The Table the command line ``args`` ask for (no printing), up to ``now`` (the wall
    clock when None)."""
    zone = directory.zone
    sites = figures.sites_in(directory, args.site, args.district)
    figure = figures.FIGURES[args.figure]
    end = _moment(args.to, zone, "--to", last_day=True)
    if args.figure == "typical":
        if args.weeks < 1:
            raise _InputError(f"--weeks {args.weeks}: must be at least 1")
        ask = figures.Ask(weeks=args.weeks)
        return figures.compute(figure, client, directory, sites, end, end, ask, now=now)
    start = _moment(args.from_, zone, "--from", last_day=False)
    if end <= start:
        raise _InputError(f"--from {args.from_} is after --to {args.to}")
    co2_ppm = getattr(args, "co2_threshold", figures.Ask().co2_ppm)
    if not 0 < co2_ppm < 100_000:
        raise _InputError(f"--co2-threshold {co2_ppm:g}: must be above 0 and below 100000 ppm")
    ask = figures.Ask(
        by=getattr(args, "by", None), per=getattr(args, "per", "site"), co2_ppm=co2_ppm
    )
    return figures.compute(figure, client, directory, sites, start, end, ask, now=now)


def failed(exc: InfluxError | UsageError) -> int:
    """Say what failed in one line on stderr; the exit code: 1 when InfluxDB failed, 2 for bad
    input."""
    print(f"qihe stats: {exc}", file=sys.stderr)
    return 1 if isinstance(exc, InfluxError) else 2


def main(args: argparse.Namespace) -> int:
    """Run ``qihe stats FIGURE`` as parsed into ``args``; return the exit code."""
    config, directory = load_stats_setup(args.config)
    try:
        with InfluxQLClient(config.influx) as client:
            table = table_for(args, directory, client)
        _emit(table, args.format, args.out)
    except (InfluxError, UsageError) as exc:  # InfluxError is an OSError too: caught first
        return failed(exc)
    except OSError as exc:
        print(f"qihe stats: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _emit(table: Table, fmt: str, out: Path | None) -> None:
    """Write ``table`` as ``fmt`` to ``out`` (stdout when None); notes go to stderr unless the
    format has room for them (the terminal table shows them under it)."""
    renderers: dict[str, Callable[[Table], bytes]] = {
        "table": lambda t: render_table(t).encode("utf-8"),
        "csv": render_csv,
        "json": lambda t: render_json(t).encode("utf-8"),
    }
    data = renderers[fmt](table)
    if out is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        out.write_bytes(data)
        print(f"已写入 wrote {out} ({len(table.rows)} rows)", file=sys.stderr)
    if fmt != "table":
        for note in table.notes:
            print(f"注 note: {note}", file=sys.stderr)
