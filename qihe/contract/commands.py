"""Commands to sensor boards and their replies (``docs/mqtt.md``, "Commands").

An operator publishes a :class:`Command` at QoS 1 on ``{prefix}/v1/{site}/{gateway}/cmd/{device}``;
the gateway carries it to the board over serial (PING, IDENTIFY, REBOOT, SET_REPORT_INTERVAL,
``docs/protocol.md`` section 7) and publishes one :class:`CommandReply` on
``.../cmd_reply/{device}``. Every command has an id (a repeated id is executed once) and an
expiry (a command that reaches the gateway after it is not executed). Strict like every
payload of the contract: a value of the wrong JSON type, an unknown field or a missing one is
refused with :class:`~qihe.contract.errors.PayloadError` naming the field.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, ValidationError, model_validator

from qihe.contract.payloads import NOT_NULL, Ident, UtcDatetime, _refusal, _WireModel

__all__ = [
    "COMMAND_NAMES",
    "MAX_COMMAND_LIFETIME",
    "REPLY_RESULTS",
    "Command",
    "CommandName",
    "CommandReply",
    "ReplyResult",
    "parse_command",
    "parse_command_reply",
]

CommandName = Literal["identify", "ping", "reboot", "interval"]
COMMAND_NAMES: tuple[CommandName, ...] = ("identify", "ping", "reboot", "interval")

#: What became of a command (``docs/mqtt.md`` lists the meaning of each).
ReplyResult = Literal[
    "ok", "nack", "busy", "expired", "duplicate", "unknown_device", "unreachable", "timeout",
    "invalid",
]  # fmt: skip
REPLY_RESULTS: tuple[ReplyResult, ...] = (
    "ok", "nack", "busy", "expired", "duplicate", "unknown_device", "unreachable", "timeout",
    "invalid",
)  # fmt: skip

#: The longest a command may live: one that waited longer is no operator's intent any more.
MAX_COMMAND_LIFETIME = timedelta(hours=1)

#: IDENTIFY carries a u8 of seconds, SET_REPORT_INTERVAL a u16 (``docs/protocol.md`` section 6).
_SECONDS_RANGE: dict[str, tuple[int, int]] = {"identify": (1, 255), "interval": (1, 65535)}

#: Free text for people: one line, no control characters, bounded.
Detail = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class Command(_WireModel):
    """One command to one board; the board is the topic's ``{device}`` level."""

    id: Ident
    command: CommandName
    #: Blink for this long (``identify``, 1-255) or report this often (``interval``, 1-65535).
    seconds: Annotated[Annotated[int, Field(ge=1, le=65535)] | None, NOT_NULL] = None
    issued_at: UtcDatetime
    expires_at: UtcDatetime
    #: Who sent it (the operator's account), for the gateway's log.
    by: Ident

    @model_validator(mode="after")
    def _coherent(self) -> Command:
        bounds = _SECONDS_RANGE.get(self.command)
        if bounds is None and self.seconds is not None:
            raise ValueError(f"{self.command} takes no seconds")
        if bounds is not None:
            low, high = bounds
            if self.seconds is None:
                raise ValueError(f"{self.command} needs seconds ({low}-{high})")
            if not low <= self.seconds <= high:
                raise ValueError(f"{self.command} takes {low}-{high} seconds, not {self.seconds}")
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        if self.expires_at - self.issued_at > MAX_COMMAND_LIFETIME:
            raise ValueError("a command lives at most one hour (expires_at - issued_at)")
        return self


class CommandReply(_WireModel):
    """What the gateway did with a command, and when."""

    id: Ident
    device: Ident
    result: ReplyResult
    detail: Annotated[Detail | None, NOT_NULL] = None
    #: When the gateway took the command from the broker, and when it was done with it.
    received_at: UtcDatetime
    done_at: UtcDatetime


def parse_command(payload: bytes | str) -> Command:
    """Validate a command payload; raise :class:`PayloadError` naming what is wrong."""
    try:
        return Command.model_validate_json(payload)
    except ValidationError as exc:
        raise _refusal(exc) from exc


def parse_command_reply(payload: bytes | str) -> CommandReply:
    """Validate a command reply; raise :class:`PayloadError` naming what is wrong."""
    try:
        return CommandReply.model_validate_json(payload)
    except ValidationError as exc:
        raise _refusal(exc) from exc
