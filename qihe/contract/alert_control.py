"""Operators' decisions about alerts, on the wire (``docs/mqtt.md``, "Alert control").

An operator (the live page, its API, ``qihe alerts ack|silence``) publishes one of these on
``{prefix}/v1/_alerts_ctl/{site}`` (QoS 1, not retained; only the operator role may write
it); the alert engine takes it, keeps it in its state folder, and answers with what it now
holds: the alert republished with ``acknowledged``, and the site's active silences retained on
``{prefix}/v1/_silences/{site}``.

- :class:`AlertAck`: acknowledge one firing alert, with a note. It is not sent again (no
  repeats) and resolves as usual; a new firing after it resolved is a new alert.
- :class:`AlertSilence`: no notifications for one rule at one site until ``until``. The
  sender chooses its ``id`` (a repeated message is the same silence) and turns a duration
  into ``until`` on its own clock.
- :class:`AlertUnsilence`: end a silence early.

The models are as strict as the readings (``docs/mqtt.md``, "Types, and what is refused").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from qihe.contract.payloads import Ident, UtcDatetime, _refusal, _WireModel

__all__ = [
    "MAX_SILENCE",
    "Acknowledgement",
    "AlertAck",
    "AlertSilence",
    "AlertUnsilence",
    "SiteSilences",
    "parse_alert_control",
    "parse_site_silences",
]

#: The longest silence an operator may set: a forgotten one must not hide a site for good.
MAX_SILENCE = timedelta(days=30)

#: Who did it, as people read it (``王工 wang``): one line, any script.
Person = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
]
#: Why, as people read it: one line, any script, may be empty.
Note = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")]
#: A rule's name (``device_fault``); the engine checks that it knows the rule.
RuleName = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]


class Acknowledgement(BaseModel):
    """Who acknowledged an alert, when, and why: carried by the alert once acknowledged."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    by: Person
    note: Note = ""
    at: UtcDatetime


class AlertAck(_WireModel):
    action: Literal["ack"] = "ack"
    site: Ident
    #: The alert's id, as on its topic (``device_fault-e1bf4e691537``).
    alert: Ident
    by: Person
    note: Note = ""
    at: UtcDatetime

    def acknowledgement(self) -> Acknowledgement:
        return Acknowledgement(by=self.by, note=self.note, at=self.at)


class AlertSilence(_WireModel):
    action: Literal["silence"] = "silence"
    #: Chosen by the sender; the same id again is the same silence (QoS 1 may repeat).
    id: Ident
    site: Ident
    rule: RuleName
    until: UtcDatetime
    by: Person
    note: Note = ""
    at: UtcDatetime

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.until <= self.at:
            raise ValueError("until must be after at")
        if self.until - self.at > MAX_SILENCE:
            raise ValueError(f"a silence lasts at most {MAX_SILENCE.days} days")
        return self

    def covers(self, site: str, rule: str, now: datetime) -> bool:
        return self.site == site and self.rule == rule and now < self.until


class AlertUnsilence(_WireModel):
    action: Literal["unsilence"] = "unsilence"
    id: Ident
    site: Ident
    by: Person
    at: UtcDatetime


AlertControl = Annotated[AlertAck | AlertSilence | AlertUnsilence, Field(discriminator="action")]
_CONTROL: TypeAdapter[AlertAck | AlertSilence | AlertUnsilence] = TypeAdapter(AlertControl)


class SiteSilences(_WireModel):
    """The active silences of one site, retained by the engine (cleared when none is left)."""

    site: Ident
    silences: tuple[AlertSilence, ...]


def parse_alert_control(payload: bytes | str) -> AlertAck | AlertSilence | AlertUnsilence:
    """Validate a control message; raise :class:`~qihe.contract.PayloadError` naming what is
    wrong."""
    try:
        return _CONTROL.validate_json(payload)
    except ValidationError as exc:
        raise _refusal(exc) from exc


def parse_site_silences(payload: bytes | str) -> SiteSilences:
    try:
        return SiteSilences.model_validate_json(payload)
    except ValidationError as exc:
        raise _refusal(exc) from exc
