"""Helpers for the tests of operators' acknowledgements and silences (ack, silence, reload)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt

from central.alerts.ack_control import AlertControls
from central.alerts.config import AlertsConfig, Rules
from central.alerts.lifecycle import AlertBook, Dispatcher
from central.alerts.model import Notification
from central.alerts.rules import Condition
from qihe.contract import (
    AlertAck,
    AlertSilence,
    FaultReading,
    GatewayStatus,
    TopicTree,
    encode_payload,
)
from tests.alert_harness import SITE

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
OTHER_SITE = "qibin-dongfang"
NAMES = {SITE: "淇河书屋·桃园站", OTHER_SITE: "淇河书屋·东方站"}
TREE = TopicTree("qihe")


def fault(site: str = SITE, sensor: str = "board-a.3") -> Condition:
    labels = {"site": site, "gateway": "gw1", "device": "board-a", "sensor": f"seat:{sensor}"}
    return Condition(
        "device_fault", "warning", site, {**labels, "code": "stuck"},
        f"座位传感器 {sensor} 报告故障：卡住", f"seat sensor {sensor} reports a fault: stuck",
        gateway="gw1", device="board-a", sensor=sensor,
    )  # fmt: skip


def door(site: str = SITE) -> Condition:
    return Condition(
        "door_open", "warning", site, {"site": site, "gateway": "gw1", "sensor": "door:front"},
        "门 front 已打开 12 分钟", "door front open for 12 min", gateway="gw1", sensor="front",
    )  # fmt: skip


class Run:
    """A book, a dispatcher and the operators' decisions stepped through time on a clock."""

    def __init__(self, state_dir: Path | None = None, **extra: object) -> None:
        self.config = AlertsConfig.model_validate(
            {"sites": "sites.yaml", "group_wait": 0, "group_interval": 0,
             "repeat_interval": 3600, **extra}
        )  # fmt: skip
        self.now = T0
        self.controls = AlertControls(TREE, Rules.model_fields, state_dir, clock=lambda: self.now)
        self.book = AlertBook(self.config, UTC, NAMES, self.controls)
        self.dispatcher = Dispatcher(self.config)
        self.sent: list[Notification] = []

    def order(self, body: bytes | str, *, site: str = SITE, retained: bool = False) -> None:
        raw = body.encode() if isinstance(body, str) else body
        self.controls.take(TREE.alert_control(site), raw, retained)

    def at(self, seconds: float, *conditions: Condition) -> list[Notification]:
        self.now = T0 + timedelta(seconds=seconds)
        self.controls.apply_pending({a.id: a for a in self.book.firing}, self.now)
        self.controls.expire(self.now)
        step = self.book.step(conditions, self.now)
        self.controls.resolved(step.resolved)
        self.dispatcher.resolved(step.resolved)
        due = self.dispatcher.due(self.book.firing, self.now)
        for notification in due:
            self.book.notified(notification.firing, self.now)
        self.sent.extend(due)
        return due


def ack(alert_id: str, *, site: str = SITE, at: datetime = T0, note: str = "已派人") -> bytes:
    return encode_payload(AlertAck(site=site, alert=alert_id, by="王工", note=note, at=at))


def silence(
    rule: str, minutes: float, *, site: str = SITE, at: datetime = T0, silence_id: str = "s1"
) -> bytes:
    return encode_payload(
        AlertSilence(
            id=silence_id, site=site, rule=rule, by="王工", note="换门磁 replacing the contact",
            at=at, until=at + timedelta(minutes=minutes),
        )
    )  # fmt: skip


def raise_fault(
    client: mqtt.Client,
    prefix: str,
    *,
    seat: int = 3,
    active: bool = True,
    site: str = SITE,
    device: str = "taoyuan-a",
) -> None:
    """A gateway online at ``site`` and a board's stuck-seat FAULT (device_fault)."""
    tree = TopicTree(prefix)
    now = datetime.now(UTC)
    status = GatewayStatus(site=site, gateway="gw1", state="online", session=1, ts=now)
    client.publish(tree.status(site, "gw1"), encode_payload(status), qos=1, retain=True)
    reading = FaultReading(
        site=site, gateway="gw1", device=device, sensor=f"{device}.seat.{seat}", ts=now,
        code="stuck", active=active, target_kind="seat", target=f"{device}.{seat}",
    )  # fmt: skip
    client.publish(
        tree.reading(site, "gw1", "fault", reading.sensor),
        encode_payload(reading),
        qos=1,
        retain=True,
    ).wait_for_publish(5)
