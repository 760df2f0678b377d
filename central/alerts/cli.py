"""``qihe alerts --config FILE``: the maintenance-alert engine."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from qihe.running import run_until_signalled

if TYPE_CHECKING:  # loaded by the command itself: every ``qihe`` command imports this module
    from central.alerts.config import AlertsConfig
    from central.sites import SiteDirectory

__all__ = ["run_alerts"]


def run_alerts(args: argparse.Namespace) -> int:
    """``qihe alerts --config FILE [--check]`` (its parser: :mod:`central.service_cli`)."""
    from central.alerts.config import AlertsConfig
    from central.sites import load_with_directory

    config, directory = load_with_directory(args.config, AlertsConfig)
    if args.check:
        print(
            f"{args.config}: 配置有效 / config OK ({len(config.rules.enabled())} rules, "
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
