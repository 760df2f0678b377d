"""``qihe alerts --config FILE``: the maintenance-alert engine."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from qihe.running import run_until_signalled

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
    from central.sites import load_with_directory

    config, directory = load_with_directory(args.config, AlertsConfig)
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
    return await run_until_signalled(
        engine.run(), name="alerts", stopped="告警服务已停止 / alert engine stopped"
    )
