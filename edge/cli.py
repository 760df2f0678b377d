"""``qihe gateway run|check|doctor --config FILE``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from edge.config import GatewayConfig, load_gateway_config
from qihe.running import run_until_signalled

__all__ = ["add_parsers"]


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    more: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] | None = None,
) -> None:
    """Register ``qihe gateway``; ``more`` adds actions of the centre's (``push-config``)."""
    gateway = sub.add_parser("gateway", help="the site gateway (runs on the Raspberry Pi)")
    gsub = gateway.add_subparsers(dest="gateway_command", required=True, metavar="ACTION")
    run = gsub.add_parser("run", help="read sensors and publish them to MQTT")
    run.add_argument("--config", required=True, help="gateway YAML config")
    run.set_defaults(handler=_run)
    check = gsub.add_parser("check", help="validate a config without running")
    check.add_argument("--config", required=True, help="gateway YAML config")
    check.set_defaults(handler=_check)
    doctor = gsub.add_parser(
        "doctor", help="check a site on the spot: config, ports, pins, broker, clock, disk"
    )
    doctor.add_argument("--config", required=True, help="gateway YAML config")
    doctor.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for a board or the broker"
    )
    doctor.set_defaults(handler=_doctor)
    if more is not None:
        more(gsub)


def _check(args: argparse.Namespace) -> int:
    config = load_gateway_config(args.config)
    print(f"配置有效 / config OK: {args.config}")
    _describe(config)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from edge.doctor import run_doctor

    return run_doctor(args.config, timeout=args.timeout)


def _describe(config: GatewayConfig) -> None:
    print(f"  site {config.site}, gateway {config.gateway}")
    print(f"  broker {config.broker.host}:{config.broker.port} (tls {config.broker.tls})")
    for port in config.serial:
        print(f"  serial {port.path} @ {port.baudrate} → device {port.device}")
    for pin in config.gpio:
        print(f"  gpio {pin.pin} → {pin.kind} {pin.sensor}")
    for bus in config.modbus.ports if config.modbus else ():
        for unit in bus.devices:
            where = f"{bus.path} @ {bus.baudrate} unit {unit.unit}"
            print(f"  modbus {where} → {unit.profile} {unit.sensor}")
    if config.zigbee is not None:
        zigbee = config.zigbee
        print(f"  zigbee2mqtt {zigbee.broker.host}:{zigbee.broker.port} {zigbee.base_topic}/…")
        for device in zigbee.devices:
            print(f"  zigbee {device.friendly_name!r} → {device.sensor}")


def _run(args: argparse.Namespace) -> int:
    from qihe.metrics import MetricsError

    load_gateway_config(args.config)  # a bad file: one clear line before anything starts
    try:
        return asyncio.run(_serve(args.config))
    except MetricsError as exc:
        print(f"qihe: {exc}", file=sys.stderr)
        return 1


async def _serve(path: str) -> int:
    from edge.supervisor import ConfigSupervisor

    # The gateway of the local file, or of a config pushed since (docs/remote-config.md).
    supervisor = ConfigSupervisor(path)
    return await run_until_signalled(
        supervisor.run(), name="gateway", stopped="网关已停止 / gateway stopped"
    )
