"""``qihe consumer run|check --config FILE``: the central consumer's subcommands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qihe.configfile import load_config_file

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``consumer``; each action sets ``handler`` to a function(args) -> exit code."""
    consumer = sub.add_parser(
        "consumer",
        help="central consumer: MQTT readings into InfluxDB",
        description="Consume readings and gateway status from MQTT into InfluxDB.",
    )
    actions = consumer.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="run until SIGTERM/SIGINT")
    run.add_argument("--config", required=True, type=Path, help="consumer YAML config")
    run.set_defaults(handler=_run)
    check = actions.add_parser("check", help="validate a config file and exit")
    check.add_argument("--config", required=True, type=Path, help="consumer YAML config")
    check.set_defaults(handler=_check)


# The consumer's modules (httpx, paho) load only for its own commands: every
# ``qihe`` command, the gateway's included, builds this parser.


def _run(args: argparse.Namespace) -> int:
    from central.consumer.config import ConsumerConfig
    from central.consumer.service import Consumer
    from central.errors import ConsumerStartError

    config = load_config_file(args.config, ConsumerConfig)
    try:
        return Consumer(config).run_forever()
    except ConsumerStartError as exc:
        print(f"qihe: {exc}", file=sys.stderr)
        return 1


def _check(args: argparse.Namespace) -> int:
    from central.consumer.config import ConsumerConfig

    config = load_config_file(args.config, ConsumerConfig)
    print(f"{args.config}: 配置有效 / config OK (api {config.influx.api}, {config.influx.url})")
    return 0
