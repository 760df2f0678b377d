"""Alerts as they leave the engine: on MQTT (retained), to webhooks and robots, in the log.

An :class:`Alert` is one instance of a rule for one thing (a gateway, a board, a seat, a door),
identified by its ``id`` (a stable slug of rule and labels, so the same fault is the same alert
across restarts). A :class:`Notification` is what one route sends at once: the alerts of one
site (its group) that fired, are still firing (a repeat) or resolved.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, ConfigDict, Field

from qihe.configtypes import StrictModel
from qihe.contract import Acknowledgement

__all__ = [
    "Alert",
    "Notification",
    "Severity",
    "alert_id",
]

Severity = Literal["critical", "warning", "info"]
AlertState = Literal["firing", "resolved"]


def alert_id(rule: str, labels: dict[str, str]) -> str:
    """A topic-safe, stable id: the rule and a short hash of the labels that identify it."""
    key = "|".join(f"{k}={labels[k]}" for k in sorted(labels))
    digest = hashlib.sha256(f"{rule}|{key}".encode()).hexdigest()[:12]
    return f"{rule}-{digest}"


class Alert(StrictModel):
    schema_version: Literal[1] = Field(default=1, alias="schema")
    id: str
    rule: str
    severity: Severity
    state: AlertState
    site: str
    #: Human names from the site directory (Chinese first), for people reading the message.
    site_name: str
    gateway: str | None = None
    device: str | None = None
    sensor: str | None = None
    #: What identifies the alert besides the rule (site, gateway, device, sensor, code...).
    labels: dict[str, str]
    summary_zh: str
    summary_en: str
    #: The measured value that made it fire, when it has one (volts, percent, errors/min...).
    value: float | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    #: When the last notification about it was handed to the routes (repeat interval, and no
    #: duplicate after a restart of the engine).
    notified_at: AwareDatetime | None = None
    #: A maintenance window covers it: shown on MQTT, not sent to people.
    silenced: bool = False
    #: An alert that explains it is firing (its gateway is down): shown, not sent.
    inhibited_by: str | None = None
    #: An operator acknowledged it (who, when, why): not sent again until it resolves.
    acknowledged: Acknowledgement | None = None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Notification(StrictModel):
    """One message of one route: a site's alerts that changed (or are repeated)."""

    site: str
    site_name: str
    #: ``firing`` when any alert in it fires (new or repeated), else ``resolved``.
    status: AlertState
    firing: tuple[Alert, ...] = ()
    resolved: tuple[Alert, ...] = ()
    created_at: datetime

    @property
    def alerts(self) -> tuple[Alert, ...]:
        return self.firing + self.resolved
