"""Commands from the operator to the boards of this gateway (``docs/mqtt.md``, "Commands").

The gateway listens on its own ``cmd/+`` (through the publisher's connection), takes one
command at a time, and answers each on ``cmd_reply/{device}``:

- a payload the contract refuses is logged, and answered ``invalid`` when it has a usable id;
- an id executed before is answered ``duplicate`` and not executed again: executed ids are
  kept (bounded, until they expire) in ``{state_dir}/commands-seen.json``, written *before*
  the board is told, so a QoS 1 redelivery after a restart is not executed twice;
- a command that arrives at or after its ``expires_at`` (by the gateway's clock) is answered
  ``expired`` and never reaches the board;
- otherwise it goes to the serial port configured for that board, and the board's ACK or
  NACK (or its silence) is the reply.

Every command is logged with who sent it, what it was and what became of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol

from edge.publisher import MessageHandler
from edge.sources.serial import BoardCommand
from firmware_bridge.errors import SerialLinkError
from firmware_bridge.messages import (
    Ack,
    Identify,
    Nack,
    NackReason,
    Ping,
    Reboot,
    SetReportInterval,
)
from qihe.clock import Clock, utc_now
from qihe.contract import (
    ID_PATTERN,
    Command,
    CommandReply,
    PayloadError,
    RefusedKind,
    ReplyResult,
    TopicError,
    TopicTree,
    encode_payload,
    parse_command,
)
from qihe.once import Once

__all__ = ["SEEN_FILE", "CommandHandler", "SeenCommands"]

log = logging.getLogger(__name__)

#: Where executed command ids are kept (in ``state_dir``).
SEEN_FILE = "commands-seen.json"
#: Executed ids remembered at most (each only until its command expires).
SEEN_MAX = 256
#: Commands waiting to be handled at most; more are dropped (logged; the sender times out).
QUEUE_MAX = 32
#: A command payload is a few hundred bytes; a larger one is refused unread.
PAYLOAD_MAX = 4096
#: How often a board is asked, and how long each time, before the reply is ``timeout``.
ATTEMPTS = 3
ATTEMPT_WAIT_S = 1.0

_ID = re.compile(ID_PATTERN)


class Board(Protocol):
    """A board's serial port, as commands need it (:class:`edge.sources.serial.SerialSource`)."""

    async def command(
        self, message: BoardCommand, *, attempts: int, wait: float
    ) -> Ack | Nack | None: ...


class Listener(Protocol):
    """The gateway's broker connection (:class:`edge.publisher.MqttPublisher`)."""

    def listen(self, topic_filter: str, handler: MessageHandler) -> None: ...

    async def send(
        self, topic: str, payload: bytes, *, kind: RefusedKind, retain: bool = False
    ) -> bool: ...


class SeenCommands:
    """Ids of executed commands, each kept until its command expires; at most ``limit``.

    The file is small JSON (``{"id": "expires_at", ...}``), replaced whole and synced: it is
    written once per executed command, rare enough for an SD card.
    """

    def __init__(self, path: Path, *, limit: int = SEEN_MAX) -> None:
        self.path = path
        self._limit = limit
        self._ids: dict[str, datetime] = {}

    def __contains__(self, command_id: str) -> bool:
        return command_id in self._ids

    def load(self, now: datetime) -> None:
        """Read the file (blocking I/O: call off the loop); a missing one is empty, a bad one
        is logged and set aside (it only guards against repeats)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            ids = {
                str(key): datetime.fromisoformat(value)
                for key, value in data.items()
                if _ID.fullmatch(str(key))
            }
        except FileNotFoundError:
            return
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            log.warning(
                "已执行命令记录无法读取，从空开始 cannot read the executed commands %s: %s; "
                "starting empty",
                self.path,
                exc,
            )
            return
        self._ids = {key: at for key, at in ids.items() if at.tzinfo is not None and at > now}

    def remember(self, command_id: str, expires_at: datetime, now: datetime) -> None:
        """Add an id and write the file (blocking I/O: call off the loop)."""
        kept = sorted(
            ((key, at) for key, at in self._ids.items() if at > now), key=lambda item: item[1]
        )
        kept = kept[-(self._limit - 1) :] if self._limit > 1 else []
        self._ids = dict(kept) | {command_id: expires_at}
        text = json.dumps({key: at.isoformat() for key, at in self._ids.items()})
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


def board_message(command: Command) -> BoardCommand:
    """The serial protocol's message for a command (the contract checked ``seconds``)."""
    match command.command:
        case "ping":
            return Ping()
        case "reboot":
            return Reboot()
        case "identify":
            assert command.seconds is not None
            return Identify(command.seconds)
        case "interval":
            assert command.seconds is not None
            return SetReportInterval(command.seconds)


class CommandHandler:
    """Takes this gateway's commands from ``link`` and carries them to ``boards`` (by the
    device name of their port). Register before the link runs; :meth:`run` until cancelled."""

    name = "commands"

    def __init__(
        self,
        link: Listener,
        boards: Mapping[str, Board],
        *,
        site: str,
        gateway: str,
        topics: TopicTree,
        state_dir: Path,
        clock: Clock = utc_now,
        attempts: int = ATTEMPTS,
        attempt_wait: float = ATTEMPT_WAIT_S,
    ) -> None:
        self._link = link
        self._boards = dict(boards)
        self._site, self._gateway = site, gateway
        self._topics = topics
        self._clock = clock
        self._attempts, self._wait = attempts, attempt_wait
        self.seen = SeenCommands(state_dir / SEEN_FILE)
        self._queue: asyncio.Queue[tuple[str, bytes, datetime]] = asyncio.Queue(QUEUE_MAX)
        self._full = Once()
        self._loaded = False
        #: Commands handled, by result (for tests and health).
        self.results: dict[str, int] = {}
        self.dropped = 0
        link.listen(topics.command_filter(site, gateway), self._on_message)

    def _on_message(self, topic: str, payload: bytes) -> None:
        """On the loop, from the broker connection: queue it, never block."""
        try:
            self._queue.put_nowait((topic, payload, self._clock()))
        except asyncio.QueueFull:
            self.dropped += 1
            if self._full.first():
                log.warning(
                    "命令太多，丢弃 too many commands waiting (%d): dropped %s; "
                    "the sender will time out",
                    QUEUE_MAX,
                    topic,
                )
            return
        self._full.reset()

    async def run(self) -> None:
        if not self._loaded:
            await asyncio.to_thread(self.seen.load, self._clock())
            self._loaded = True
        while True:
            topic, payload, received_at = await self._queue.get()
            await self._handle(topic, payload, received_at)

    async def _handle(self, topic: str, payload: bytes, received_at: datetime) -> None:
        try:
            device = self._topics.parse_command(topic, self._site, self._gateway)
        except TopicError as exc:
            log.warning("命令主题无效 command topic refused: %s", exc)
            return
        try:
            if len(payload) > PAYLOAD_MAX:
                raise PayloadError(f"payload: {len(payload)} bytes, more than {PAYLOAD_MAX}")
            command = parse_command(payload)
        except PayloadError as exc:
            log.warning("命令无效，未执行 invalid command on %s, not executed: %s", topic, exc)
            command_id = _salvaged_id(payload)
            if command_id is not None:
                await self._reply(device, command_id, "invalid", str(exc), received_at)
            return
        result, detail = await self._decide(device, command, received_at)
        what = command.command + (f" {command.seconds}" if command.seconds is not None else "")
        log.info(
            "命令 command %s (%s) 发给 to %s 由 by %s: %s%s",
            command.id,
            what,
            device,
            command.by,
            result,
            f" ({detail})" if detail else "",
        )
        self.results[result] = self.results.get(result, 0) + 1
        await self._reply(device, command.id, result, detail, received_at)

    async def _decide(
        self, device: str, command: Command, received_at: datetime
    ) -> tuple[ReplyResult, str | None]:
        if command.id in self.seen:
            return "duplicate", "已执行过，不再执行 executed before, not again"
        if received_at >= command.expires_at:
            return "expired", f"已于 expired at {command.expires_at.isoformat()}"
        board = self._boards.get(device)
        if board is None:
            return "unknown_device", f"本网关没有此板 no board {device} at this gateway"
        await asyncio.to_thread(self.seen.remember, command.id, command.expires_at, self._clock())
        try:
            answer = await board.command(
                board_message(command), attempts=self._attempts, wait=self._wait
            )
        except SerialLinkError as exc:
            return "unreachable", f"串口未打开 serial port not open: {exc}"
        if answer is None:
            return "timeout", f"板子未应答 no answer from the board ({self._attempts} tries)"
        if isinstance(answer, Ack):
            return "ok", None
        if answer.reason is NackReason.BUSY:
            return "busy", "板子忙 board busy: BUSY"
        return "nack", f"板子拒绝 board refused: {answer.reason.name}"

    async def _reply(
        self,
        device: str,
        command_id: str,
        result: ReplyResult,
        detail: str | None,
        received_at: datetime,
    ) -> None:
        reply = CommandReply(
            id=command_id,
            device=device,
            result=result,
            detail=_one_line(detail),
            received_at=received_at,
            done_at=self._clock(),
        )
        topic = self._topics.command_reply(self._site, self._gateway, device)
        if not await self._link.send(topic, encode_payload(reply), kind="cmd_reply"):
            log.warning("命令回复未能发出 could not send the reply to command %s", command_id)


def _salvaged_id(payload: bytes) -> str | None:
    """The id of a refused command, when it has a usable one (to answer ``invalid``)."""
    if len(payload) > PAYLOAD_MAX:
        return None
    with contextlib.suppress(ValueError, RecursionError):
        data = json.loads(payload)
        if isinstance(data, dict):
            value = data.get("id")
            if isinstance(value, str) and _ID.fullmatch(value):
                return value
    return None


def _one_line(detail: str | None) -> str | None:
    """A detail as the contract takes it: one line, at most 200 characters."""
    if not detail:
        return None
    flat = re.sub(r"[\x00-\x1f\x7f]+", " ", detail).strip()
    return flat[:200] or None
