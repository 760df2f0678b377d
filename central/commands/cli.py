"""``qihe command SITE/GATEWAY DEVICE identify|ping|reboot|interval [SECONDS] --config FILE``.

Prints what became of the command and its round trip, Chinese first. Exit codes: 0 the board
did it; 1 the gateway answered otherwise (refused by the board, expired, unknown board, no
answer from the board, ...); 3 no reply from the gateway within the timeout; 4 the broker
refused the command or could not be reached; 2 a bad config or bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from qihe.contract import COMMAND_NAMES

__all__ = ["add_parsers"]

#: IDENTIFY's default, as the protocol names it (``docs/protocol.md``).
IDENTIFY_DEFAULT_S = 10


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``command``; it sets ``handler`` to a function(args) -> exit code."""
    parser = sub.add_parser(
        "command",
        help="send a sensor board a command (identify, ping, reboot, interval) and wait for it",
        description=(
            "Publish a command to one board through its gateway (operator role only) and "
            "print the reply with its round-trip time."
        ),
    )
    parser.add_argument("target", metavar="SITE/GATEWAY", help="e.g. qibin-taoyuan/gw1")
    parser.add_argument("device", help="the board, as the gateway's serial port names it")
    parser.add_argument("command", choices=COMMAND_NAMES)
    parser.add_argument(
        "seconds",
        nargs="?",
        type=int,
        help=f"identify: blink this long (1-255, default {IDENTIFY_DEFAULT_S}); "
        "interval: the new report interval (required)",
    )
    parser.add_argument("--config", required=True, type=Path, help="command YAML config")
    parser.add_argument("--timeout", type=float, help="seconds to wait for the reply")
    parser.add_argument("--expires", type=float, help="seconds until the command expires")
    parser.add_argument("--by", help="who sends it (default: the config's operator, or you)")
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from central.commands.config import load_command_config
    from central.commands.sender import (
        RESULT_TEXT,
        BrokerUnavailableError,
        CommandError,
        CommandRefusedError,
        CommandTarget,
        build_command,
        send_command,
    )
    from central.operator import operator_name

    config = load_command_config(args.config)
    changes: dict[str, timedelta] = {}
    for option in ("timeout", "expires"):
        value = getattr(args, option)
        if value is not None:
            if not value > 0:
                print(f"qihe: --{option} 必须大于 0 must be more than 0 seconds", file=sys.stderr)
                return 2
            changes[option] = timedelta(seconds=value)
    config = config.model_copy(update=changes)  # --expires over an hour: the contract refuses
    seconds = args.seconds
    if args.command == "identify" and seconds is None:
        seconds = IDENTIFY_DEFAULT_S
    try:
        target = CommandTarget.parse(args.target, args.device)
        by = operator_name(args.by, config.operator)
        command = build_command(config, args.command, seconds, by=by)
        outcome = asyncio.run(send_command(config, target, command))
    except (CommandRefusedError, BrokerUnavailableError) as exc:
        print(f"qihe: {exc}", file=sys.stderr)
        return 4
    except CommandError as exc:
        print(f"qihe: {exc}", file=sys.stderr)
        return 2
    what = command.command + ("" if command.seconds is None else f" {command.seconds}")
    line = f"{target} {what}: {RESULT_TEXT[outcome.result]}"
    if outcome.reply is not None and outcome.reply.detail:
        line += f" ({outcome.reply.detail})"
    if outcome.round_trip_ms is not None:
        line += f"; 往返 round trip {outcome.round_trip_ms:.0f} ms"
    print(line)
    if outcome.result == "ok":
        return 0
    return 3 if outcome.result == "no_reply" else 1
