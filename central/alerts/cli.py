"""``qihe alerts --config FILE``: the maintenance-alert engine; and operators' orders to it:

    qihe alerts ack SITE ALERT --note TEXT --config ops.yaml
    qihe alerts silence SITE RULE --for 2h --note TEXT --config ops.yaml
    qihe alerts unsilence SITE ID --config ops.yaml
    qihe alerts silences [SITE] --config ops.yaml

The orders take the operator file of ``qihe command`` (``central/commands/config.py``: an
account with the broker's operator role, and who the operator is). Exit codes: 0 done (the
engine showed it), 1 not confirmed by the engine in time, 2 bad arguments or config, 4 the
broker refused the order or could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from qihe.running import run_until_signalled

if TYPE_CHECKING:  # loaded by the command itself: every ``qihe`` command imports this module
    from central.alerts.config import AlertsConfig
    from central.sites import SiteDirectory
    from qihe.contract import SiteSilences

__all__ = ["add_actions", "run_alerts"]

#: Seconds to wait for the engine to show an order carried out.
CONFIRM_TIMEOUT_S = 5.0


def run_alerts(args: argparse.Namespace) -> int:
    """``qihe alerts --config FILE [--check]`` (its parser: :mod:`central.service_cli`)."""
    if args.config is None:
        print("qihe alerts: 需要 --config / --config FILE is required", file=sys.stderr)
        return 2
    config, directory = _load(args.config)
    if args.check:
        print(
            f"{args.config}: 配置有效 / config OK ({len(config.rules.enabled())} rules, "
            f"{len(config.routes)} routes, {len(config.silences)} silences, "
            f"{len(directory.sites)} sites)"
        )
        return 0
    from qihe.metrics import MetricsError

    try:
        return asyncio.run(_serve(args.config, config, directory))
    except MetricsError as exc:  # its metrics port is taken, or not this machine's
        print(f"qihe: {exc}", file=sys.stderr)
        return 1


def _load(path: Path) -> tuple[AlertsConfig, SiteDirectory]:
    """The config (``state_dir`` relative to the file) and its site directory."""
    from central.alerts.config import AlertsConfig
    from central.sites import load_with_directory

    config, directory = load_with_directory(path, AlertsConfig)
    if config.state_dir is not None and not config.state_dir.is_absolute():
        config = config.model_copy(update={"state_dir": path.parent / config.state_dir})
    return config, directory


async def _serve(path: Path, config: AlertsConfig, directory: SiteDirectory) -> int:
    from central.alerts.engine import AlertEngine
    from central.reload import ConfigReloader

    engine = AlertEngine(config, directory)
    reloader = ConfigReloader(
        "alerts", path, load=lambda: _load(path), apply=lambda new: engine.reload(*new)
    )
    try:
        return await run_until_signalled(
            engine.run(),
            name="alerts",
            stopped="告警服务已停止 / alert engine stopped",
            reload=reloader.trigger,
        )
    finally:
        await reloader.aclose()


# Operators' orders ---------------------------------------------------------------------


def add_actions(parser: argparse.ArgumentParser) -> None:
    """``ack``, ``silence``, ``unsilence``, ``silences`` under ``qihe alerts``."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    def action(name: str, summary: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=summary, description=summary)
        sub.add_argument(
            "--config", type=Path, default=argparse.SUPPRESS,
            help="operator YAML config (as for qihe command)",
        )  # fmt: skip
        sub.set_defaults(handler=run_action)
        return sub

    ack = action("ack", "acknowledge a firing alert: it is not sent again until it resolves")
    ack.add_argument("site")
    ack.add_argument("alert", help="the alert's id, e.g. device_fault-e1bf4e691537")
    silence = action("silence", "send no notifications of one rule at one site for a while")
    silence.add_argument("site")
    silence.add_argument("rule", help="e.g. door_open")
    silence.add_argument("--for", dest="duration", required=True, help="90, 45m, 2h, 3d, PT2H")
    unsilence = action("unsilence", "end a silence early")
    unsilence.add_argument("site")
    unsilence.add_argument("id", help="the silence's id (qihe alerts silences)")
    listing = action("silences", "list the active silences")
    listing.add_argument("site", nargs="?")
    for sub in (ack, silence):
        sub.add_argument("--note", default="", help="why (shown with it)")
    for sub in (ack, silence, unsilence):
        sub.add_argument("--by", help="who (default: the config's operator, or you)")


def run_action(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from central.alerts.ack_send import (
        ControlError,
        NoSuchSilenceError,
        parse_duration,
        read_silences,
        send_control,
    )
    from central.commands.config import load_command_config
    from central.operator import operator_name
    from qihe.contract import AlertAck, AlertSilence, AlertUnsilence

    if getattr(args, "config", None) is None:
        print("qihe alerts: 需要 --config / --config FILE is required", file=sys.stderr)
        return 2
    config = load_command_config(args.config)
    now = datetime.now(UTC)
    try:
        if args.action == "silences":
            return _print_silences(asyncio.run(read_silences(config.mqtt, args.site)))
        by = operator_name(args.by, config.operator)
        order: AlertAck | AlertSilence | AlertUnsilence
        if args.action == "ack":
            order = AlertAck(site=args.site, alert=args.alert, by=by, note=args.note, at=now)
        elif args.action == "silence":
            order = AlertSilence(
                id=secrets.token_hex(6), site=args.site, rule=args.rule, by=by,
                note=args.note, at=now, until=now + parse_duration(args.duration),
            )  # fmt: skip
        else:
            order = AlertUnsilence(id=args.id, site=args.site, by=by, at=now)
        confirmed = asyncio.run(send_control(config.mqtt, order, wait_s=CONFIRM_TIMEOUT_S))
    except (ValidationError, ValueError) as exc:
        print(f"qihe alerts {args.action}: {exc}", file=sys.stderr)
        return 2
    except NoSuchSilenceError as exc:
        print(f"qihe: {exc}", file=sys.stderr)
        return 1
    except ControlError as exc:  # refused by the broker, or not reachable
        print(f"qihe: {exc}", file=sys.stderr)
        return 4
    if not confirmed:
        print(
            f"已发送，告警服务 {CONFIRM_TIMEOUT_S:.0f} 秒内未确认 / sent; the alert engine did not "
            f"confirm within {CONFIRM_TIMEOUT_S:.0f} s (is it running?)",
            file=sys.stderr,
        )
        return 1
    if isinstance(order, AlertSilence):
        print(f"已静默 silenced {order.rule} at {order.site} until {order.until:%Y-%m-%d %H:%M}Z "
              f"[{order.id}]")  # fmt: skip
    elif isinstance(order, AlertAck):
        print(f"已确认 acknowledged {order.alert} at {order.site}")
    else:
        print(f"静默已解除 silence {order.id} ended at {order.site}")
    return 0


def _print_silences(found: list[SiteSilences]) -> int:
    rows = [s for site in found for s in site.silences]
    if not rows:
        print("没有生效的静默 / no active silences")
    for s in rows:
        note = f" · {s.note}" if s.note else ""
        print(f"{s.id}  {s.site}  {s.rule}  至 until {s.until:%Y-%m-%d %H:%M}Z  {s.by}{note}")
    return 0
