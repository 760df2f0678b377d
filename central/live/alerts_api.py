"""The operator page's orders to the alert engine (``docs/live.md``, "Acknowledging alerts"):
operators only, behind the operator token.

- ``POST /api/v1/alerts/{site}/{alert}/ack`` ``{"note": "…"}``: acknowledge a firing alert;
- ``POST /api/v1/silences`` ``{"site", "rule", "duration", "note"}``: silence a rule at a
  site (``duration`` in seconds or ISO 8601, at most 30 days);
- ``DELETE /api/v1/silences/{site}/{id}``: end a silence early;
- ``GET /api/v1/silences[?site=]``: the active silences, as the engine holds them.

An order is published on ``{prefix}/v1/_alerts_ctl/{site}`` with the operator account of the
live config's ``commands:`` section (the live role may not give orders) and answered with 202:
the engine carries it out at its next evaluation, and its answer reaches the page as every
alert does (the alert republished ``acknowledged``) or in the silences list. Without that
account the orders answer 503. The :class:`AlertDesk` keeps one connection for both: it
publishes the orders and follows the engine's retained silences.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

import aiomqtt
from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.params import Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from central.alerts.config import Rules
from central.broker import MqttConfig
from central.commands.config import CommandConfig
from central.listen import listen
from qihe.clock import Clock, utc_now
from qihe.contract import (
    ID_PATTERN,
    MAX_SILENCE,
    AlertAck,
    AlertSilence,
    AlertUnsilence,
    PayloadError,
    TopicError,
    TopicTree,
    encode_payload,
    parse_site_silences,
)
from qihe.mqtt import PublishRefusedError, reason_label

__all__ = ["AlertDesk", "alerts_router"]

log = logging.getLogger(__name__)

_Id = Annotated[str, Path(pattern=ID_PATTERN)]
_Note = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")]
_Person = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class DeskError(RuntimeError):
    """An order could not be given (no operator account, broker away, or refused)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


class AlertDesk:
    """One MQTT connection for the page's orders, and the sites' silences it follows."""

    def __init__(self, live_mqtt: MqttConfig, commands: CommandConfig | None) -> None:
        #: The operator account when configured; else the live account, to read silences.
        self._mqtt = commands.mqtt if commands is not None else live_mqtt
        self.operator = commands.operator if commands is not None else None
        self.can_order = commands is not None
        self.tree = TopicTree(self._mqtt.topic_prefix)
        self._client: aiomqtt.Client | None = None
        self._silences: dict[str, tuple[AlertSilence, ...]] = {}

    async def run(self) -> None:
        """Until cancelled: follow the silences, keep a client to publish with."""
        await listen(
            self._mqtt,
            [self.tree.silences_filter()],
            self._take,
            name="live-alert-desk",
            on_connected=self._connected,
            on_lost=self._lost,
        )

    def _connected(self, client: aiomqtt.Client) -> None:
        self._client = client

    def _lost(self) -> None:
        self._client = None

    def _take(self, topic: str, body: bytes, _retained: bool) -> None:
        try:
            site = self.tree.parse_site_level(topic, "_silences")
            held = parse_site_silences(body).silences if body else ()
        except (TopicError, PayloadError) as exc:
            log.warning("live: 无法读取静默 unreadable silences on %s: %s", topic, exc)
            return
        if held:
            self._silences[site] = held
        else:
            self._silences.pop(site, None)

    def silences(self, site: str | None = None) -> list[AlertSilence]:
        sites = [site] if site is not None else sorted(self._silences)
        return [s for name in sites for s in self._silences.get(name, ())]

    async def order(self, order: AlertAck | AlertSilence | AlertUnsilence) -> None:
        if not self.can_order:
            raise DeskError(503, "未配置操作员账号 no operator account (commands: in the config)")
        client = self._client
        if client is None:
            raise DeskError(503, "代理暂不可用 the broker is not reachable; try again")
        topic = self.tree.alert_control(order.site)
        try:
            await client.publish(topic, encode_payload(order), qos=1)
        except PublishRefusedError as exc:
            log.error("live: 代理拒绝了告警指令 the broker refused an alert order on %s: %s",
                      topic, reason_label(exc.reason_code, exc.reason_name))  # fmt: skip
            raise DeskError(502, "代理拒绝了指令 the broker refused the order") from None
        except aiomqtt.MqttError as exc:
            raise DeskError(503, f"代理暂不可用 the broker is not reachable: {exc}") from None
        log.info("live: 告警指令已发送 alert order sent: %s %s by %s",
                 order.action, order.site, order.by)  # fmt: skip


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: _Note = ""
    #: Who (shown with the acknowledgement); the config's operator by default.
    by: _Person | None = None


class SilenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: Annotated[str, StringConstraints(pattern=ID_PATTERN)]
    rule: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]
    #: Seconds or ISO 8601 (``PT2H``), at most 30 days.
    duration: Annotated[timedelta, Field(gt=timedelta(0), le=MAX_SILENCE)]
    note: _Note = ""
    by: _Person | None = None


class Sent(BaseModel):
    status: str = "sent"
    #: Chinese first: what the operator reads.
    text: str


class SilenceView(BaseModel):
    """A silence as the engine holds it (``AlertSilence`` without its wire fields)."""

    id: str
    site: str
    rule: str
    until: datetime
    by: str
    note: str
    at: datetime


class Silences(BaseModel):
    #: The rules one may silence, for the page's form.
    rules: tuple[str, ...]
    #: Whether this service may give orders (it has an operator account).
    can_order: bool
    silences: tuple[SilenceView, ...]


def alerts_router(
    desk: AlertDesk, operator: Depends, known_site: Callable[[str], bool], *, clock: Clock = utc_now
) -> APIRouter:
    """The alert-order routes; ``operator`` asks for the operator token."""
    router = APIRouter(tags=["operator"], dependencies=[operator])
    rules = tuple(Rules.model_fields)
    answers: dict[int | str, dict[str, Any]] = {
        404: {"description": "no such site"},
        502: {"description": "the broker refused the order (account not an operator)"},
        503: {"description": "no operator account configured, or the broker unavailable"},
    }

    def by(given: str | None) -> str:
        return given or desk.operator or "operator"

    async def give(order: AlertAck | AlertSilence | AlertUnsilence, text: str) -> Sent:
        if not known_site(order.site):
            raise HTTPException(404, "no such site")
        try:
            await desk.order(order)
        except DeskError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        return Sent(text=text)

    @router.post(
        "/api/v1/alerts/{site}/{alert}/ack", status_code=202, response_model=Sent,
        responses=answers,
    )  # fmt: skip
    async def acknowledge(site: _Id, alert: _Id, request: AckRequest) -> Sent:
        """Acknowledge a firing alert: it is not sent again until it resolves."""
        order = AlertAck(site=site, alert=alert, by=by(request.by), note=request.note, at=clock())
        return await give(order, "确认已发送 acknowledgement sent")

    @router.post("/api/v1/silences", status_code=202, response_model=Sent, responses=answers)
    async def silence(request: SilenceRequest) -> Sent:
        """Silence one rule at one site for a while (no notifications; still shown)."""
        if request.rule not in rules:
            raise HTTPException(422, f"unknown rule {request.rule!r}")
        now = clock()
        order = AlertSilence(
            id=secrets.token_hex(6), site=request.site, rule=request.rule, by=by(request.by),
            note=request.note, at=now, until=now + request.duration,
        )  # fmt: skip
        return await give(order, f"静默已发送 silence sent [{order.id}]")

    @router.delete(
        "/api/v1/silences/{site}/{silence_id}", status_code=202, response_model=Sent,
        responses=answers,
    )  # fmt: skip
    async def unsilence(site: _Id, silence_id: _Id) -> Sent:
        """End a silence early."""
        order = AlertUnsilence(id=silence_id, site=site, by=by(None), at=clock())
        return await give(order, "解除静默已发送 unsilence sent")

    @router.get("/api/v1/silences", response_model=Silences)
    async def list_silences(
        site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    ) -> Silences:
        """The active silences, as the alert engine holds them (retained on MQTT)."""
        held = tuple(
            SilenceView.model_validate(s.model_dump(exclude={"schema_version", "action"}))
            for s in desk.silences(site)
        )
        return Silences(rules=rules, can_order=desk.can_order, silences=held)

    return router
