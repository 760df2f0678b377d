"""``qihe gateway push-config SITE/GATEWAY FILE``: push a gateway config, await its answer.

The file is checked here first, with the models of ``qihe gateway check`` (``validate``, given
by the ``qihe`` command, which may import the gateway's models: ``central`` may not) and the
same refusal of secret values the gateway applies; then it is published retained at QoS 1 on
the gateway's ``config`` topic (docs/remote-config.md), and the gateway's retained status is
watched until its config report answers this push: applied, rejected (with the gateway's
one-line error) or rolled back. A gateway that is offline gets the retained push when it
comes back; the command then ends after ``--wait`` seconds without an answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import yaml
from pydantic import BaseModel, ConfigDict

from central.broker import MqttConfig
from central.operator import operator_name
from qihe.clock import Clock, utc_now
from qihe.configfile import ConfigError, load_config_file, secret_keys
from qihe.contract import (
    ID_PATTERN,
    MAX_PUSH_BYTES,
    ConfigPush,
    ConfigReport,
    ContractError,
    TopicTree,
    config_hash,
    encode_payload,
    parse_status,
    short_hash,
)
from qihe.mqtt import PublishRefusedError, connect

__all__ = ["PushOutcome", "Validate", "add_parsers", "prepare_document", "push_config"]

log = logging.getLogger(__name__)

#: Checks a config document as the gateway will (raise ValueError with one line).
Validate = Callable[[Mapping[str, Any]], object]

_ID = re.compile(ID_PATTERN)
#: Exit codes: applied, refused or rolled back, no answer in time.
_APPLIED, _NOT_APPLIED, _NO_ANSWER = 0, 1, 3
_FINAL = ("applied", "rejected", "rolled_back")


class _OperatorFile(BaseModel):
    """Any central config with an ``mqtt`` section (the live service's, the alert engine's)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    mqtt: MqttConfig


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """What the gateway answered (``report`` None: no answer within the wait)."""

    push: ConfigPush
    hash: str  # short
    report: ConfigReport | None


def prepare_document(path: Path, *, version: str | None, validate: Validate) -> dict[str, Any]:
    """The config document of ``path``, labelled ``version``, checked as the gateway will check
    it; raise :class:`ConfigError` (one line) if it cannot be pushed."""
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.safe_load(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    found = secret_keys(document)
    if found:
        raise ConfigError(
            f"{path}: 推送的配置不能含有密钥 a pushed config carries no secrets: "
            f"{', '.join(found)} (write ${{QIHE_...}} and keep the value in the site's "
            "environment file)"
        )
    if version is not None:
        document["version"] = version
    try:
        validate(document)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        size = len(json.dumps(document, ensure_ascii=False).encode())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot be sent as JSON: {exc}") from None
    if size > MAX_PUSH_BYTES // 2:  # room for the push's own fields; a config is kilobytes
        raise ConfigError(f"{path}: {size} bytes, too large to push")
    return document


async def push_config(
    mqtt: MqttConfig,
    site: str,
    gateway: str,
    document: dict[str, Any],
    *,
    wait: float,
    by: str,
    clock: Clock = utc_now,
    progress: Callable[[ConfigReport], None] = lambda report: None,
) -> PushOutcome:
    """Publish ``document`` to ``site/gateway`` and wait up to ``wait`` seconds for the answer.

    ``progress`` hears a report of this push that is not final yet (``applying``). Raise
    :class:`aiomqtt.MqttError` when the broker cannot be reached, :class:`PublishRefusedError`
    when it refuses the push (this user may not push configs).
    """
    tree = TopicTree(mqtt.topic_prefix)
    push = ConfigPush(
        id=secrets.token_hex(8),
        site=site,
        gateway=gateway,
        issued_at=clock(),
        by=by,
        config=document,
    )
    status_topic = tree.status(site, gateway)
    digest = short_hash(config_hash(document))
    identifier = f"qihe-push-{secrets.token_hex(4)}"
    async with connect(mqtt, identifier=identifier) as client:
        await client.subscribe(status_topic, qos=1)
        await client.publish(tree.config(site, gateway), encode_payload(push), qos=1, retain=True)
        if wait <= 0:
            return PushOutcome(push, digest, None)
        said: set[str] = set()
        try:
            async with asyncio.timeout(wait):
                async for message in client.messages:
                    if not isinstance(message.payload, bytes):
                        continue
                    try:
                        report = parse_status(message.payload).config
                    except ContractError:
                        continue
                    if report is None or report.push != push.id:
                        continue
                    if report.state in _FINAL:
                        return PushOutcome(push, digest, report)
                    if report.state not in said:
                        said.add(report.state)
                        progress(report)
        except TimeoutError:
            pass
    return PushOutcome(push, digest, None)


# The command ---------------------------------------------------------------------------------


def add_parsers(
    gateway_actions: argparse._SubParsersAction[argparse.ArgumentParser], *, validate: Validate
) -> None:
    """Register ``push-config`` in the ``qihe gateway`` group."""
    push = gateway_actions.add_parser(
        "push-config",
        help="push a config to a gateway over MQTT and wait for its answer (operator)",
        description="Check FILE as `qihe gateway check` does, refuse it if it holds a secret, "
        "publish it (retained) to the gateway, and wait until the gateway reports it applied, "
        "rejected or rolled back. Exit 0 applied, 1 rejected or rolled back, 2 not pushed, "
        "3 no answer in time.",
    )
    push.add_argument("target", metavar="SITE/GATEWAY", help="e.g. qibin-taoyuan/gw1")
    push.add_argument("file", type=Path, metavar="FILE", help="the gateway YAML config to push")
    push.add_argument(
        "--config",
        required=True,
        type=Path,
        help="a central config whose mqtt section reaches the broker as an operator",
    )
    push.add_argument("--version", help="label the config (its `version:`), e.g. 2026-11-28a")
    push.add_argument(
        "--wait",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds to wait for the answer (default 300; longer than the gateway's "
        "rollback_after); 0: publish only",
    )
    push.add_argument("--by", help="who pushes (default: the MQTT user, else the login name)")
    push.set_defaults(handler=lambda args: _push(args, validate))


def _push(args: argparse.Namespace, validate: Validate) -> int:
    site, _, gateway = str(args.target).partition("/")
    if not (_ID.fullmatch(site) and _ID.fullmatch(gateway)):
        raise ConfigError(f"{args.target!r}: expected SITE/GATEWAY, two ids like qibin-taoyuan/gw1")
    if args.version is not None and not _ID.fullmatch(args.version):
        raise ConfigError(f"--version {args.version!r}: expected an id like 2026-11-28a")
    mqtt = load_config_file(args.config, _OperatorFile).mqtt
    document = prepare_document(args.file, version=args.version, validate=validate)
    by = operator_name(args.by, mqtt.username)
    digest = short_hash(config_hash(document))
    print(f"配置有效，正在推送 config OK, pushing {digest} to {site}/{gateway}")
    try:
        outcome = asyncio.run(
            push_config(mqtt, site, gateway, document, wait=args.wait, by=by, progress=_progress)
        )
    except PublishRefusedError as exc:
        print(
            f"代理拒绝了推送 the broker refused the push: {exc} (an operator user?)",
            file=sys.stderr,
        )
        return 2
    except aiomqtt.MqttError as exc:
        print(
            f"无法连接代理 cannot reach the broker {mqtt.host}:{mqtt.port}: {exc}", file=sys.stderr
        )
        return 2
    return _say(outcome, args.wait)


def _progress(report: ConfigReport) -> None:
    if report.state == "applying":
        print("网关正在应用，等待其连上代理 applying: waiting for the gateway to reach the broker")


def _say(outcome: PushOutcome, wait: float) -> int:
    report = outcome.report
    if report is None:
        if wait <= 0:
            print(
                f"已推送 pushed {outcome.hash} (id {outcome.push.id}); not waiting for the answer"
            )
            return _APPLIED
        print(
            f"未在 {wait:g} 秒内得到答复 no answer within {wait:g}s: the gateway may be offline; "
            "the push stays retained and is applied when it connects",
            file=sys.stderr,
        )
        return _NO_ANSWER
    label = f" ({report.version})" if report.version else ""
    if report.state == "applied":
        print(f"配置已应用 config applied: the gateway runs {report.hash}{label}")
        return _APPLIED
    if report.state == "rejected":
        print(f"配置被拒绝 config rejected: {report.error}", file=sys.stderr)
    else:
        print(
            f"配置已回滚 config rolled back to {report.hash}{label}: {report.error}",
            file=sys.stderr,
        )
    return _NOT_APPLIED
