"""``qihe live`` and ``qihe alerts``: the central services that run from one config file.

Both take ``--config FILE`` and ``--check`` (validate the config, say what it holds, exit);
what each then does is its package's ``cli`` module. Only argparse here and there: every
``qihe`` command builds these parsers, so a service's own modules load when its command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``live`` and ``alerts``; each sets ``handler`` to a function(args) -> exit code."""
    from central.alerts.cli import add_actions, run_alerts
    from central.live.cli import run_live

    services = (
        (
            "live",
            "live seat availability: operator page, public summary, API",
            "Keep every site's present state from MQTT and serve it over HTTP.",
            "live service YAML config",
            run_live,
        ),
        (
            "alerts",
            "maintenance alerts: rules over the live MQTT state, sent to MQTT, robots, webhooks",
            "Evaluate the alert rules and deliver alerts to their routes.",
            "alerts YAML config",
            run_alerts,
        ),
    )
    for name, summary, description, config, handler in services:
        parser = sub.add_parser(name, help=summary, description=description)
        # ``qihe alerts ack|silence|...`` take their own --config (central/alerts/cli.py).
        parser.add_argument("--config", required=name != "alerts", type=Path, help=config)
        parser.add_argument("--check", action="store_true", help="validate the config and exit")
        parser.set_defaults(handler=handler)
        if name == "alerts":
            add_actions(parser)
