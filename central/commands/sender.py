"""Send one command to one board and wait for its reply (``docs/mqtt.md``, "Commands").

One short MQTT 5 connection per command, with the operator account of the config: subscribe
to the board's ``cmd_reply`` topic first, then publish the command at QoS 1, then wait for the
reply with the command's id. The round trip is measured here, from the publish to the reply,
on the monotonic clock. A broker that refuses the publish (PUBACK 0x87: the account is not an
operator) raises :class:`CommandRefusedError`; no reply within the timeout is the outcome
``no_reply`` (the gateway is offline, or its ACL lacks ``cmd_reply``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import aiomqtt
from pydantic import ValidationError

from central.commands.config import CommandConfig
from central.errors import CentralError
from qihe.clock import Clock, utc_now
from qihe.contract import (
    Command,
    CommandName,
    CommandReply,
    ContractError,
    ReplyResult,
    TopicError,
    TopicTree,
    encode_payload,
    parse_command_reply,
)
from qihe.mqtt import PublishRefusedError, connect, reason_label

__all__ = [
    "RESULT_TEXT",
    "BrokerUnavailableError",
    "CommandError",
    "CommandOutcome",
    "CommandRefusedError",
    "CommandTarget",
    "Outcome",
    "build_command",
    "send_command",
]

log = logging.getLogger(__name__)

#: What a sender may learn: the gateway's reply, or that none came in time.
Outcome = ReplyResult | Literal["no_reply"]

#: Each outcome for people, Chinese first.
RESULT_TEXT: dict[Outcome, str] = {
    "ok": "成功 ok",
    "nack": "板子拒绝 refused by the board",
    "busy": "板子忙 board busy",
    "expired": "已过期，未执行 expired, not executed",
    "duplicate": "重复，未再执行 duplicate, not executed again",
    "unknown_device": "网关没有此板 no such board at the gateway",
    "unreachable": "板子串口未连接 board's serial port not open",
    "timeout": "板子未应答 no answer from the board",
    "invalid": "命令无效 invalid command",
    "no_reply": "网关未回复 no reply from the gateway",
}


class CommandError(CentralError):
    """A command could not be sent: bad target or arguments, or no broker."""


class CommandRefusedError(CommandError, PermissionError):
    """The broker refused the command (its account is not an operator)."""


class BrokerUnavailableError(CommandError, ConnectionError):
    """The broker could not be reached, or the connection was lost before the reply."""


@dataclass(frozen=True, slots=True)
class CommandTarget:
    site: str
    gateway: str
    device: str

    @classmethod
    def parse(cls, where: str, device: str) -> CommandTarget:
        """From ``SITE/GATEWAY`` and a device; ids are checked when the topic is built."""
        site, slash, gateway = where.partition("/")
        if not slash or not site or not gateway:
            raise CommandError(
                f"目标应为 SITE/GATEWAY the target must be SITE/GATEWAY, not {where!r}"
            )
        return cls(site, gateway, device)

    def __str__(self) -> str:
        return f"{self.site}/{self.gateway}/{self.device}"


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    command: Command
    target: CommandTarget
    #: The gateway's reply; None when none came within the timeout.
    reply: CommandReply | None
    #: From the publish to the reply, seconds (None without a reply).
    round_trip_s: float | None

    @property
    def result(self) -> Outcome:
        return "no_reply" if self.reply is None else self.reply.result

    @property
    def round_trip_ms(self) -> float | None:
        return None if self.round_trip_s is None else self.round_trip_s * 1000


def build_command(
    config: CommandConfig,
    command: CommandName,
    seconds: int | None,
    *,
    by: str,
    clock: Clock = utc_now,
) -> Command:
    """A new command with a fresh id, issued now and expiring after ``config.expires``."""
    now = clock()
    try:
        return Command(
            id=secrets.token_hex(8),
            command=command,
            seconds=seconds,
            issued_at=now,
            expires_at=now + config.expires,
            by=by,
        )
    except ValidationError as exc:
        reason = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise CommandError(f"命令无效 invalid command: {reason}") from None


async def send_command(
    config: CommandConfig, target: CommandTarget, command: Command
) -> CommandOutcome:
    """Publish ``command`` to ``target`` and wait ``config.timeout`` for its reply."""
    tree = TopicTree(config.mqtt.topic_prefix)
    try:
        topic = tree.command(target.site, target.gateway, target.device)
        reply_topic = tree.command_reply(target.site, target.gateway, target.device)
    except TopicError as exc:
        raise CommandError(str(exc)) from None
    mqtt = config.mqtt
    try:
        async with connect(mqtt, identifier=f"{mqtt.client_id}-{secrets.token_hex(3)}") as client:
            await client.subscribe(reply_topic, qos=1)
            started = time.monotonic()
            try:
                await client.publish(topic, encode_payload(command), qos=1)
            except PublishRefusedError as exc:
                raise CommandRefusedError(
                    f"代理拒绝了命令 the broker refused the command on {topic}: "
                    f"{reason_label(exc.reason_code, exc.reason_name)}; "
                    "只有操作员账号可以发送命令 only an operator account may send commands"
                ) from None
            reply, round_trip = await _await_reply(client, command.id, started, config)
    except aiomqtt.MqttError as exc:
        raise BrokerUnavailableError(
            f"代理不可用 broker {mqtt.host}:{mqtt.port} unavailable: {exc}"
        ) from None
    outcome = CommandOutcome(command, target, reply, round_trip)
    log.info(
        "命令 command %s (%s%s) 发给 to %s 由 by %s: %s%s",
        command.id,
        command.command,
        "" if command.seconds is None else f" {command.seconds}",
        target,
        command.by,
        outcome.result,
        "" if round_trip is None else f", 往返 round trip {round_trip * 1000:.0f} ms",
    )
    return outcome


async def _await_reply(
    client: aiomqtt.Client, command_id: str, started: float, config: CommandConfig
) -> tuple[CommandReply | None, float | None]:
    try:
        async with asyncio.timeout(config.timeout.total_seconds()):
            async for message in client.messages:
                payload = message.payload
                if not isinstance(payload, bytes | bytearray):
                    continue
                try:
                    reply = parse_command_reply(bytes(payload))
                except ContractError as exc:
                    log.warning("命令回复无效 invalid reply on %s: %s", message.topic, exc)
                    continue
                if reply.id == command_id:  # others' replies to the same board pass by
                    return reply, time.monotonic() - started
    except TimeoutError:
        pass
    return None, None
