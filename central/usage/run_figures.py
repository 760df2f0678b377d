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
import csv
import io
import json
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from central.sites import SiteDirectory, SiteSpec, load_with_directory
from central.usage import figures
from central.usage.client import (
    InfluxQLClient,
    QueryError,
    ReadingsSource,
    StatsInfluxConfig,
    UsageError,
)
from central.usage.steps import Granularity
from central.usage.table import Table, Value

__all__ = [
    "StatsConfig",
    "StatsSetup",
    "compute",
    "emit",
    "load_stats_setup",
    "render_csv",
    "render_json",
    "render_table",
    "run_figure",
]


class StatsConfig(BaseModel):
    """``config/stats.yaml``: where the readings are, and the site directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The site directory (names, districts, opening hours, seats), relative to this file.
    sites: Path
    influx: StatsInfluxConfig


@dataclass(frozen=True, slots=True)
class StatsSetup:
    config: StatsConfig
    directory: SiteDirectory


def load_stats_setup(path: str | Path) -> StatsSetup:
    """The stats config and the directory it names; raise ``ConfigError`` (no network)."""
    return StatsSetup(*load_with_directory(path, StatsConfig))


# --- running --------------------------------------------------------------------------------


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


def run_figure(
    name: str,
    client: ReadingsSource,
    directory: SiteDirectory,
    sites: Sequence[SiteSpec],
    start: datetime,
    end: datetime,
    *,
    by: Granularity | None = None,
    per: Literal["site", "seat"] = "site",
    weeks: int = 4,
    now: datetime | None = None,
) -> Table:
    """Figure ``name`` for ``sites`` over ``[start, end)`` (``typical``: the ``weeks`` before
    ``end``). ``by`` is the period of visitors/occupancy/doors (their default when None) and
    the optional split of utilisation; the report calls this too. The range stops at ``now``
    (the wall clock when None)."""
    if name == "typical":
        return figures.typical(client, directory, sites, end, weeks, now=now)
    if name == "utilisation":
        return figures.utilisation(client, directory, sites, start, end, per, by=by, now=now)
    if name in ("visitors", "doors"):
        return figures.FIGURES[name](client, directory, sites, start, end, by or "day", now=now)
    if name == "occupancy":
        return figures.occupancy(client, directory, sites, start, end, by or "hour", now=now)
    if name not in figures.FIGURES:
        raise _InputError(f"unknown figure {name!r} (known: {', '.join(figures.FIGURES)})")
    return figures.FIGURES[name](client, directory, sites, start, end, now=now)


def compute(
    args: argparse.Namespace,
    setup: StatsSetup,
    client: ReadingsSource,
    *,
    now: datetime | None = None,
) -> Table:
    """The Table the command line ``args`` ask for (no printing), up to ``now`` (the wall
    clock when None)."""
    directory = setup.directory
    zone = directory.zone
    sites = figures.sites_in(directory, args.site, args.district)
    end = _moment(args.to, zone, "--to", last_day=True)
    if args.figure == "typical":
        if args.weeks < 1:
            raise _InputError(f"--weeks {args.weeks}: must be at least 1")
        return run_figure("typical", client, directory, sites, end, end, weeks=args.weeks, now=now)
    start = _moment(args.from_, zone, "--from", last_day=False)
    if end <= start:
        raise _InputError(f"--from {args.from_} is after --to {args.to}")
    return run_figure(
        args.figure,
        client,
        directory,
        sites,
        start,
        end,
        by=getattr(args, "by", None),
        per=getattr(args, "per", "site"),
        now=now,
    )


def main(args: argparse.Namespace) -> int:
    setup = load_stats_setup(args.config)
    try:
        with InfluxQLClient(setup.config.influx) as client:
            table = compute(args, setup, client)
        emit(table, args.format, args.out)
    except QueryError as exc:
        print(f"qihe stats: {exc}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"qihe stats: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"qihe stats: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def emit(table: Table, fmt: str, out: Path | None) -> None:
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


# --- rendering ------------------------------------------------------------------------------


def _width(text: str) -> int:
    """Terminal columns: East Asian wide and full-width characters take two."""
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in text
    )


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * (width - _width(text))
    return gap + text if right else text + gap


def _plain(value: Value) -> str:
    """CSV and JSON: ISO times in the value's own (local) zone, empty for no value."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _header(zh: str, en: str, unit: str) -> str:
    return f"{zh} {en}" + (f" ({unit})" if unit else "")


def render_csv(table: Table) -> bytes:
    """UTF-8 with a BOM (so Excel reads Chinese right), one header row "中文 English (unit)"."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_header(c.zh, c.en, c.unit) for c in table.columns)
    for row in table.rows:
        writer.writerow(_plain(row.get(c.key)) for c in table.columns)
    return b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")


def render_json(table: Table) -> str:
    """A list of row dicts keyed by column key; times ISO 8601 with their local offset."""
    rows = [
        {
            c.key: (v.isoformat() if isinstance(v := row.get(c.key), datetime) else v)
            for c in table.columns
        }
        for row in table.rows
    ]
    return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"


def render_table(table: Table) -> str:
    """An aligned terminal table: title, Chinese and English header lines, rows, notes."""
    dates_only = {
        c.key
        for c in table.columns
        if c.kind == "time"
        and all(isinstance(v, datetime) and v.time() == time(0) for v in table.values(c.key))
    }

    def cell(key: str, value: Value) -> str:
        if value is None:
            return "-"
        if isinstance(value, datetime):
            return f"{value:%Y-%m-%d}" if key in dates_only else f"{value:%Y-%m-%d %H:%M}"
        return str(value)

    heads_zh = [c.zh + (f" ({c.unit})" if c.unit else "") for c in table.columns]
    heads_en = [c.en for c in table.columns]
    body = [[cell(c.key, row.get(c.key)) for c in table.columns] for row in table.rows]
    widths = [
        max(_width(t) for t in (heads_zh[i], heads_en[i], *(r[i] for r in body)))
        for i in range(len(table.columns))
    ]
    right = [c.kind in ("int", "float", "percent") for c in table.columns]

    def line(texts: list[str], numeric: list[bool]) -> str:
        cells = (_pad(t, w, r) for t, w, r in zip(texts, widths, numeric, strict=True))
        return "  ".join(cells).rstrip()

    no_align = [False] * len(widths)
    lines = [f"{table.title_zh} {table.title_en}", line(heads_zh, right), line(heads_en, right)]
    lines.append(line(["-" * w for w in widths], no_align))
    lines += [line(r, right) for r in body]
    if not body:
        lines.append("(无数据 no rows)")
    lines += [f"注 note: {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def report_main(args: argparse.Namespace) -> int:
    """``qihe stats report``: every figure for the district and the whole month, then
    :func:`~central.usage.report_cli.run_report` draws and writes it."""
    from central.usage.report_cli import run_report

    setup = load_stats_setup(args.config)
    directory = setup.directory
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
        with InfluxQLClient(setup.config.influx) as client:

            def compute_one(name: str) -> Table:
                by: Granularity | None = "day" if name == "visitors" else None
                return run_figure(name, client, directory, sites, start, end, by=by)

            return run_report(args, compute_one)
    except QueryError as exc:
        print(f"qihe stats: {exc}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"qihe stats: {exc}", file=sys.stderr)
        return 2
