"""``qihe alerts --config FILE``: the maintenance-alert engine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from qihe.configfile import load_config_file

if TYPE_CHECKING:  # loaded by the command itself: every ``qihe`` command builds this parser
    from central.alerts.config import AlertsConfig
    from central.sites import SiteDirectory

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alerts = sub.add_parser(
        "alerts",
        help="maintenance alerts: rules over the live MQTT state, sent to MQTT, robots, webhooks",
        description="Evaluate the alert rules and deliver alerts to their routes.",
    )
    alerts.add_argument("--config", required=True, type=Path, help="alerts YAML config")
    alerts.add_argument("--check", action="store_true", help="validate the config and exit")
    alerts.set_defaults(handler=_main)


def _main(args: argparse.Namespace) -> int:
    from central.alerts.config import AlertsConfig
    from central.sites import load_directory

    config = load_config_file(args.config, AlertsConfig)
    directory = load_directory(args.config, config.sites)
    if args.check:
        enabled = [
            name for name in type(config.rules).model_fields if getattr(config.rules, name).enabled
        ]
        print(
            f"{args.config}: 配置有效 / config OK ({len(enabled)} rules, "
            f"{len(config.routes)} routes, {len(config.silences)} silences, "
            f"{len(directory.sites)} sites)"
        )
        return 0
    return asyncio.run(_serve(config, directory))


async def _serve(config: AlertsConfig, directory: SiteDirectory) -> int:
    from central.alerts.engine import AlertEngine

    engine = AlertEngine(config, directory)
    task = asyncio.create_task(engine.run(), name="alerts")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    print("告警服务已停止 / alert engine stopped", file=sys.stderr)
    return 0
