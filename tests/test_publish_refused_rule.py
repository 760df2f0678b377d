"""The ``publish_refused`` alert rule: a gateway whose publishes the broker refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from central.alerts.config import AlertsConfig
from central.alerts.rules import Condition, Context, evaluate
from central.facts import FactStore
from qihe.contract import GatewayStatus, OutboxReading, PublishRefusal
from tests.alert_harness import SITE, directory

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def outbox(at: datetime, *, held: int = 0, **refused: int) -> OutboxReading:
    """An outbox report; ``refused`` as ``door_135=7`` (kind, reason code, count)."""
    refusals = []
    for key, count in refused.items():
        kind, code = key.rsplit("_", 1)
        refusals.append(PublishRefusal(kind=kind, reason=int(code), count=count))  # type: ignore[arg-type]
    return OutboxReading(
        site=SITE, gateway="gw1", device="gateway", sensor="gw1", ts=at, queued=held,
        dropped_periodic=0, dropped_state=0, dropped_clock=0, refused=sum(refused.values()),
        refused_held=held, refusals=tuple(refusals),
    )  # fmt: skip


def conditions(*reports: OutboxReading, **rules: Any) -> list[Condition]:
    facts = FactStore()
    now = reports[-1].ts
    facts.apply(
        GatewayStatus(site=SITE, gateway="gw1", state="online", session=1, ts=now),
        now,
        retained=False,
    )
    for report in reports:
        facts.apply(report, report.ts, retained=False)
    config = AlertsConfig.model_validate({"sites": "unused.yaml", "rules": rules})
    ctx = Context(
        rules=config.rules,
        directory=directory(),
        facts=facts,
        now=now,
        listening_since=T0,
        active=frozenset(),
    )
    return [c for c in evaluate(ctx) if c.rule == "publish_refused"]


def test_refusals_since_the_previous_report_fire_naming_kind_and_reason() -> None:
    [condition] = conditions(
        outbox(T0, held=0),
        outbox(T0 + timedelta(minutes=1), held=7, door_135=7),
    )
    assert condition.summary_zh == (
        "网关 gw1 的发布被 MQTT 代理拒绝：door 0x87 未授权 ×7；7 条读数在发件箱中等待重试"
    )
    assert condition.summary_en == (
        "gateway gw1: the broker refused publishes: door 0x87 Not authorized ×7; 7 readings held"
    )
    assert condition.value == 7.0
    assert condition.labels == {"site": SITE, "gateway": "gw1"}


def test_only_the_refusals_that_grew_are_named() -> None:
    [condition] = conditions(
        outbox(T0, door_135=7),
        outbox(T0 + timedelta(minutes=1), door_135=7, backlog_151=1),
    )
    assert "backlog 0x97 Quota exceeded ×1" in condition.summary_en
    assert "door" not in condition.summary_en


def test_readings_still_held_keep_it_firing_without_new_refusals() -> None:
    [condition] = conditions(
        outbox(T0, held=3, door_135=3),
        outbox(T0 + timedelta(minutes=1), held=3, door_135=3),
    )
    assert "door 0x87 Not authorized ×3; 3 readings held" in condition.summary_en


def test_old_refusals_with_nothing_held_and_nothing_new_are_quiet() -> None:
    assert (
        conditions(
            outbox(T0, door_135=7),
            outbox(T0 + timedelta(minutes=1), door_135=7),
        )
        == []
    )


def test_a_gateway_restart_counts_its_refusals_anew() -> None:
    [condition] = conditions(
        outbox(T0, door_135=7),
        outbox(T0 + timedelta(minutes=1), door_135=2),
    )
    assert "door 0x87 Not authorized ×2" in condition.summary_en


def test_the_rule_can_be_switched_off() -> None:
    assert (
        conditions(
            outbox(T0),
            outbox(T0 + timedelta(minutes=1), held=7, door_135=7),
            publish_refused={"enabled": False},
        )
        == []
    )
