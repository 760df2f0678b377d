"""``qihe stats-setup --config FILE [--dry-run] [--backfill-from DATE]``: downsampling on 1.x.

Creates (or brings back to the plan) the retention policies and continuous queries of
:mod:`central.usage.downsample.plan`, and optionally computes the rollups of past days. Idempotent:
a second run reports every item "unchanged" and sends no statement that changes anything.

Every ``qihe`` command builds all parsers, so this module imports nothing heavy: the plan, its
config model and the HTTP client load when ``stats-setup`` runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from central.influx.admin import InfluxAdmin

__all__ = ["add_parsers", "stats_setup"]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``stats-setup``."""
    setup = sub.add_parser(
        "stats-setup",
        help="InfluxDB 1.x retention policies and continuous queries for the statistics",
        description=(
            "Create or update the retention policies (raw 90d, hourly 2y, daily forever) and the "
            "continuous queries that downsample every measurement; idempotent. "
            "See docs/downsampling.md."
        ),
    )
    setup.add_argument("--config", required=True, type=Path, help="statistics YAML config")
    setup.add_argument(
        "--dry-run", action="store_true", help="print the statements, change nothing"
    )
    setup.add_argument(
        "--backfill-from",
        type=_local_date,
        metavar="DATE",
        help="also compute the rollups of every local day from DATE (YYYY-MM-DD) until now",
    )
    setup.set_defaults(handler=stats_setup)


def _local_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _utc_now() -> datetime:
    return datetime.now(UTC)


def stats_setup(args: argparse.Namespace, *, clock: Callable[[], datetime] = _utc_now) -> int:
    """Run ``stats-setup`` as parsed into ``args``; ``clock`` says when "now" is (the last
    complete hour a backfill reaches, and which dates lie in the future)."""
    from central.errors import InfluxError
    from central.influx.admin import InfluxAdmin
    from central.usage.downsample.apply import DownsampleConfig, DownsampleError
    from central.usage.downsample.plan import LOCAL_TZ
    from qihe.configfile import ConfigError, load_config_file

    try:
        config = load_config_file(args.config, DownsampleConfig)
    except ConfigError as exc:
        # One line: "FILE: invalid configuration: influx.url: Field required; ..."
        head, *problems = str(exc).splitlines()
        rest = "; ".join(p.strip() for p in problems)
        raise ConfigError(f"{head}: {rest}" if rest else head) from None
    influx = config.influx
    now = clock()
    if args.backfill_from is not None and args.backfill_from > now.astimezone(LOCAL_TZ).date():
        print(
            f"qihe: stats-setup: --backfill-from {args.backfill_from} is in the future",
            file=sys.stderr,
        )
        return 2
    try:
        with InfluxAdmin(influx) as admin:
            return _run(admin, influx.database, args, now)
    except (InfluxError, DownsampleError) as exc:
        print(f"qihe: stats-setup: {exc}", file=sys.stderr)
        return 1


def _run(admin: InfluxAdmin, database: str, args: argparse.Namespace, now: datetime) -> int:
    from central.usage.downsample.apply import apply, check_server, plan_changes, read_state
    from central.usage.downsample.backfill import backfill
    from central.usage.downsample.plan import LOCAL_TZ, RAW

    version = check_server(admin)
    changes = plan_changes(read_state(admin, database), database)
    todo = [c for c in changes if c.outcome != "unchanged"]
    if args.dry_run:
        print(f"-- dry run against InfluxDB {version} at {admin.url}, database {database}")
        print("-- nothing is changed; these statements would run:")
        for change in todo:
            print(f"-- {change.line()}")
            # A retention policy created with its database has no statement of its own.
            for statement in change.statements:
                print(f"{statement};")
    else:
        print(f"InfluxDB {version} at {admin.url}, database {database}:")
        for change in changes:  # one at a time, so a refusal shows what was done before it
            apply(admin, [change])
            print(f"  {change.line()}", flush=True)
    unchanged = len(changes) - len(todo)
    verb = "to change" if args.dry_run else "changed"
    print(f"降采样设置 / downsampling: {len(todo)} {verb}, {unchanged} unchanged")
    if args.backfill_from is not None:
        kept = RAW.duration
        if kept is not None and args.backfill_from < (now - kept).astimezone(LOCAL_TZ).date():
            print(
                f"note: {RAW.name} keeps {kept.days} days; days before that have no raw points "
                "and keep the rollups they have"
            )
        if args.dry_run:
            print("-- backfill statements:")
        written = backfill(
            None if args.dry_run else admin, database, args.backfill_from, now, progress=print
        )
        if not args.dry_run:
            print(f"回填完成 / backfill done: {written} points written")
    return 0
