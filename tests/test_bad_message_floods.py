"""A flood of bad messages on varying topics gives the live service and the alert engine a few
log lines each, against a real Mosquitto: the first of each problem, then one summary per minute.
Their clocks are injected; the minute passes by moving the clock, not by waiting."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest

from devstack import MosquittoProcess
from qihe.contract import TopicTree
from tests.alert_harness import alerts_config, engine_running
from tests.clocks import RunningClock
from tests.mqtt_helpers import wait_until
from tests.test_live_service import live_config, serving
from tests.test_refusal_log import bad_message

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)
FLOOD = 150
ALERTS = 20


def lines(caplog: pytest.LogCaptureFixture, who: str) -> list[str]:
    messages = [r.getMessage() for r in caplog.records]
    return [m for m in messages if m.startswith(f"{who}: ") and "拒收" in m]


def bad_alerts(publisher: mqtt.Client, tree: TopicTree, *, retain: bool) -> None:
    """20 alerts that are no alerts, each on its own topic."""
    for i in range(ALERTS):
        alert = tree.alert("qibin-taoyuan", f"seat-stuck-{i}")
        publisher.publish(alert, b'{"id": 1}', qos=1, retain=retain).wait_for_publish(5)


async def flood(publisher: mqtt.Client, tree: TopicTree) -> None:
    """150 bad messages of three problems, each on its own topic; then one of another problem,
    whose log line says those before it were taken."""
    for i in range(FLOOD):
        topic, payload = bad_message(i)
        publisher.publish(topic.replace("qihe/v1", tree.root, 1), payload, qos=1)
    last = tree.reading("qibin-taoyuan", "gw1", "seat", "board-a.last")
    await asyncio.to_thread(publisher.publish(last, b"not json", qos=1).wait_for_publish, 5)


SUMMARY = (
    r"过去 6\d 秒又拒收 166 条消息 / 166 more bad messages in the last 6\d s: "
    r"49 × seat\.occupied: bool_type; 49 × seat\.schema: missing; 49 × topic; 19 × {alert}"
)


async def test_the_live_service_logs_a_flood_in_one_line_per_problem_and_a_summary(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    publisher: mqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tree = TopicTree(topic_prefix)
    clock = RunningClock(T0)
    with caplog.at_level(logging.WARNING, logger="central"):
        async with serving(live_config(mosquitto, topic_prefix), clock=clock) as service:
            await asyncio.to_thread(bad_alerts, publisher, tree, retain=False)
            await flood(publisher, tree)
            await wait_until(lambda: len(lines(caplog, "live")) == 5)
            clock.jump(clock() + timedelta(seconds=60))
            await wait_until(lambda: len(lines(caplog, "live")) == 6)
            await asyncio.sleep(0.3)  # three more refreshes: nothing more to say
    logged = lines(caplog, "live")
    assert service.refused == FLOOD + ALERTS + 1
    assert len(logged) == 6
    assert "/_alerts/qibin-taoyuan/seat-stuck-0: alert: " in logged[0]
    assert "board-a.last: payload: Invalid JSON" in logged[4]
    assert re.fullmatch(f"live: {SUMMARY.format(alert='alert')}", logged[5]), logged[5]


async def test_the_alert_engine_logs_a_flood_in_one_line_per_problem_and_a_summary(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    publisher: mqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tree = TopicTree(topic_prefix)
    clock = RunningClock(T0)
    # The engine reads only retained alerts (its own, from before a restart): there first.
    await asyncio.to_thread(bad_alerts, publisher, tree, retain=True)
    with caplog.at_level(logging.WARNING, logger="central"):
        async with engine_running(alerts_config(mosquitto, topic_prefix), clock=clock):
            await flood(publisher, tree)
            await wait_until(lambda: len(lines(caplog, "alerts")) == 5)
            clock.jump(clock() + timedelta(seconds=60))
            await wait_until(lambda: len(lines(caplog, "alerts")) == 6)
            await asyncio.sleep(0.3)  # three more evaluations: nothing more to say
    logged = lines(caplog, "alerts")
    assert len(logged) == 6
    assert "/_alerts/qibin-taoyuan/seat-stuck-" in logged[0]
    assert ": retained alert: " in logged[0]
    assert "board-a.last: payload: Invalid JSON" in logged[4]
    summary = SUMMARY.format(alert="retained alert")
    assert re.fullmatch(f"alerts: {summary}", logged[5]), logged[5]
