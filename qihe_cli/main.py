"""The ``qihe`` command. Each part registers its own subcommands from one explicit list."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from qihe.configfile import ConfigError

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


def _registrars() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    # Imported here so `qihe --help` stays fast and one part's import error names itself.
    from central.commands.cli import add_parsers as command_parsers
    from central.consumer.cli import add_parsers as central_parsers
    from central.fleet_cli import add_parsers as fleet_parsers
    from central.poster_cli import add_parsers as poster_parsers
    from central.provision_cli import add_parsers as provision_parsers
    from central.service_cli import add_parsers as service_parsers
    from central.usage.downsample.cli import add_parsers as downsample_parsers
    from central.usage.parsers import add_parsers as usage_parsers
    from firmware_bridge.emulator.cli import add_parsers as emulator_parsers
    from qihe_cli.bench import add_parsers as bench_parsers
    from qihe_cli.demo import add_parsers as demo_parsers

    return [
        _gateway_parsers,
        central_parsers,
        service_parsers,
        downsample_parsers,
        usage_parsers,
        emulator_parsers,
        demo_parsers,
        provision_parsers,
        fleet_parsers,
        command_parsers,
        poster_parsers,
        bench_parsers,
    ]


def _gateway_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``qihe gateway``, with the centre's ``push-config`` checking a config with the
    gateway's own models (``central`` may not import them; this command may)."""
    from functools import partial

    from central.push_config import add_parsers as push_config_parsers
    from edge.cli import add_parsers as edge_parsers
    from edge.remote_config import check_document

    check = partial(check_document, environ=None)  # ${VAR}s are the site's: kept as written
    edge_parsers(sub, more=lambda actions: push_config_parsers(actions, validate=check))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qihe",
        description="qihe-edge: sensing for community facilities",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _registrars():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Per-request lines from HTTP clients would drown what operators need to see.
    for noisy in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"qihe: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
