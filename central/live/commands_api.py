"""The operator page's commands to boards (``docs/commands.md``): operators only.

- ``GET /api/v1/commands`` says whether the service may send commands (the page shows its
  buttons only then);
- ``POST /api/v1/commands/{site}/{gateway}/{device}`` with ``{"command": "identify",
  "seconds": 10}`` sends one and answers with what became of it and the round trip.

The service publishes with the operator account of its optional ``commands:`` section (the
live role's own account may not publish commands); without it the endpoint answers 503
"未配置 not configured". Each command opens its own short MQTT connection: they are rare, and
a few at once at most (more wait for none: 429).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.params import Depends
from pydantic import BaseModel, ConfigDict, Field

from central.commands.config import CommandConfig
from central.commands.sender import (
    RESULT_TEXT,
    BrokerUnavailableError,
    CommandError,
    CommandRefusedError,
    CommandTarget,
    Outcome,
    build_command,
    send_command,
)
from qihe.clock import Clock, utc_now
from qihe.contract import ID_PATTERN, CommandName

__all__ = ["commands_router"]

log = logging.getLogger(__name__)

#: Commands in flight at once from the page, at most.
MOST_AT_ONCE = 4

_Id = Annotated[str, Path(pattern=ID_PATTERN)]


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    command: CommandName
    seconds: Annotated[int, Field(ge=1, le=65535)] | None = None


class CommandAnswer(BaseModel):
    id: str
    site: str
    gateway: str
    device: str
    command: CommandName
    seconds: int | None
    by: str
    result: Outcome
    #: The result for people, Chinese first.
    text: str
    detail: str | None
    round_trip_ms: float | None


class CommandsEnabled(BaseModel):
    enabled: bool


def commands_router(
    config: CommandConfig | None,
    operator: Depends,
    known_site: Callable[[str], bool],
    *,
    clock: Clock = utc_now,
) -> APIRouter:
    """The command routes; ``operator`` asks for the operator token, ``known_site`` tells a
    site of the directory."""
    router = APIRouter(tags=["operator"], dependencies=[operator])
    slots = asyncio.Semaphore(MOST_AT_ONCE)

    @router.get("/api/v1/commands", response_model=CommandsEnabled)
    async def enabled() -> CommandsEnabled:
        """Whether this service may send commands to boards."""
        return CommandsEnabled(enabled=config is not None)

    @router.post(
        "/api/v1/commands/{site}/{gateway}/{device}",
        response_model=CommandAnswer,
        responses={
            404: {"description": "no such site"},
            422: {"description": "a command the contract refuses"},
            429: {"description": "too many commands at once"},
            502: {"description": "the broker refused the command (account not an operator)"},
            503: {"description": "commands not configured, or the broker unavailable"},
        },
    )
    async def send(site: _Id, gateway: _Id, device: _Id, request: CommandRequest) -> CommandAnswer:
        """Send one command to one board and wait for the gateway's reply."""
        if config is None:
            raise HTTPException(503, "命令未配置 commands not configured")
        if not known_site(site):
            raise HTTPException(404, "no such site")
        if slots.locked():
            raise HTTPException(429, "命令太多，请稍候 too many commands at once; try again")
        by = config.operator or "operator"
        async with slots:
            try:
                command = build_command(
                    config, request.command, request.seconds, by=by, clock=clock
                )
                outcome = await send_command(config, CommandTarget(site, gateway, device), command)
            except CommandRefusedError as exc:
                log.error("运营页面命令被代理拒绝 operator page command refused: %s", exc)
                raise HTTPException(502, str(exc)) from None
            except BrokerUnavailableError as exc:
                raise HTTPException(503, str(exc)) from None
            except CommandError as exc:
                raise HTTPException(422, str(exc)) from None
        reply = outcome.reply
        return CommandAnswer(
            id=command.id,
            site=site,
            gateway=gateway,
            device=device,
            command=command.command,
            seconds=command.seconds,
            by=by,
            result=outcome.result,
            text=RESULT_TEXT[outcome.result],
            detail=None if reply is None else reply.detail,
            round_trip_ms=outcome.round_trip_ms,
        )

    return router
