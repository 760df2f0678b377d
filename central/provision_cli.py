"""``qihe provision gateway SITE GATEWAY`` and ``qihe provision service NAME --role ROLE``.

Both write the user's password (hashed) and ACL block, then print the config snippet
with the new password on stdout — the only place it is ever shown — and what to do
next on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from qihe.contract import DEFAULT_PREFIX

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``provision``; each action sets ``handler`` to a function(args) -> exit code."""
    provision = sub.add_parser(
        "provision",
        help="MQTT users: a gateway's or a service's password and ACL entry",
        description=(
            "Create or rotate an MQTT user in Mosquitto's password file and ACL file, "
            "and print its config snippet. Reload Mosquitto afterwards "
            "(systemctl reload mosquitto)."
        ),
    )
    actions = provision.add_subparsers(dest="action", required=True, metavar="ACTION")

    gateway = actions.add_parser(
        "gateway",
        help="a gateway: may publish only as SITE/GATEWAY and read only its own commands",
    )
    gateway.add_argument("site", help="site id, e.g. qibin-taoyuan")
    gateway.add_argument("gateway", help="gateway id, e.g. gw1")
    _common(gateway)
    gateway.set_defaults(handler=_gateway)

    service = actions.add_parser("service", help="a central service: consumer, live, alerts")
    service.add_argument("name", help="the username, e.g. qihe-central")
    service.add_argument(
        "--role", required=True, choices=("consumer", "live", "alerts", "operator")
    )
    service.add_argument(
        "--client-id",
        help="consumer only: its MQTT client id, which names its dead-letter topic "
        "(default: the name)",
    )
    _common(service)
    service.set_defaults(handler=_service)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-file", required=True, type=Path, help="Mosquitto password_file")
    parser.add_argument("--acl-file", required=True, type=Path, help="Mosquitto acl_file")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic prefix (default: qihe)")
    parser.add_argument("--broker-host", default="localhost", help="for the printed snippet")
    parser.add_argument("--broker-port", type=int, default=8883, help="for the printed snippet")
    parser.add_argument("--ca-file", type=Path, help="CA certificate path on the client")


def _connection(args: argparse.Namespace, username: str, password: str) -> dict[str, Any]:
    snippet: dict[str, Any] = {"host": args.broker_host, "port": args.broker_port, "tls": True}
    if args.ca_file is not None:
        snippet["ca_file"] = str(args.ca_file)
    snippet |= {"username": username, "password": password, "topic_prefix": args.prefix}
    return snippet


def _emit(section: str, snippet: dict[str, Any], username: str) -> None:
    sys.stdout.write(yaml.safe_dump({section: snippet}, sort_keys=False, allow_unicode=True))
    print(
        f"qihe: provisioned {username!r}. The password above is shown once and stored only "
        "hashed; provisioning again rotates it. Reload Mosquitto to apply "
        "(systemctl reload mosquitto).",
        file=sys.stderr,
    )


def _gateway(args: argparse.Namespace) -> int:
    from central.provision import ProvisionError, gateway_acl, provision

    try:
        acl = gateway_acl(args.site, args.gateway, prefix=args.prefix)
        creds = provision(acl, password_file=args.password_file, acl_file=args.acl_file)
    except ProvisionError as exc:
        print(f"qihe: {exc}", file=sys.stderr)
        return 2
    _emit("broker", _connection(args, creds.username, creds.password), creds.username)
    return 0


def _service(args: argparse.Namespace) -> int:
    from central.provision import ProvisionError, provision, service_acl

    if args.client_id is not None and args.role != "consumer":
        print("qihe: --client-id is for the consumer role only", file=sys.stderr)
        return 2
    try:
        acl = service_acl(args.name, args.role, prefix=args.prefix, client_id=args.client_id)
        creds = provision(acl, password_file=args.password_file, acl_file=args.acl_file)
    except ProvisionError as exc:
        print(f"qihe: {exc}", file=sys.stderr)
        return 2
    snippet = _connection(args, creds.username, creds.password)
    if args.role == "consumer":
        snippet["client_id"] = args.client_id or args.name
    _emit("mqtt", snippet, creds.username)
    return 0
