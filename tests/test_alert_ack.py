"""Acknowledging an alert: not sent again, resolves as usual, kept across restarts."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from central.alerts.ack_send import send_control
from central.broker import MqttConfig
from devstack import MosquittoProcess
from qihe.contract import (
    AlertAck,
    TopicTree,
    encode_payload,
    parse_alert_control,
    parse_site_silences,
)
from tests.alert_control_harness import T0, Run, ack, fault, raise_fault
from tests.alert_harness import SITE, RecordingRoute, alerts_config, engine_running, watching
from tests.mqtt_helpers import wait_until

# Unit: the lifecycle on an injected clock ----------------------------------------------


def test_an_acknowledged_alert_is_not_repeated_but_still_resolves_with_a_notice() -> None:
    run = Run()
    [first] = run.at(0, fault())
    alert_id = first.firing[0].id

    run.order(ack(alert_id))
    run.at(10, fault())
    assert run.book.firing[0].acknowledged is not None
    assert run.book.firing[0].acknowledged.note == "已派人"
    assert run.at(3600 * 5, fault()) == []  # past repeat_interval: no reminder
    [resolved] = run.at(3600 * 5 + 1)

    assert resolved.status == "resolved"
    assert [a.id for a in resolved.resolved] == [alert_id]


def test_a_new_firing_after_resolution_is_news_again() -> None:
    run = Run()
    [first] = run.at(0, fault())
    run.order(ack(first.firing[0].id))
    run.at(10, fault())
    run.at(20)  # resolved

    [again] = run.at(30, fault())

    assert again.firing[0].acknowledged is None
    assert len(run.controls.acks) == 0


def test_an_ack_of_an_alert_that_is_not_firing_is_refused_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = Run()
    run.at(0, fault())
    run.order(ack("device_fault-000000000000"))

    with caplog.at_level(logging.WARNING):
        run.at(10, fault())

    assert run.controls.refused == 1
    assert run.book.firing[0].acknowledged is None
    assert "no alert device_fault-000000000000 is firing" in caplog.text


@pytest.mark.parametrize(
    ("body", "retained", "complaint"),
    [
        pytest.param(b"not json", False, "Invalid JSON", id="not-json"),
        pytest.param(b'{"schema": 1, "action": "reboot"}', False, "does not match", id="action"),
        pytest.param(
            ack("x").replace(b'"note"', b'"extra":1,"note"'), False, "extra", id="unknown-field"
        ),
        pytest.param(ack("x").replace(b'"by":"', b'"by":"\\n'), False, "by", id="newline-in-by"),
        pytest.param(ack("x", site="qibin-dongfang"), False, "not the topic", id="other-site"),
        pytest.param(ack("x"), True, "retained", id="retained"),
    ],
)
def test_bad_control_messages_are_logged_and_ignored(
    body: bytes, retained: bool, complaint: str, caplog: pytest.LogCaptureFixture
) -> None:
    run = Run()
    [first] = run.at(0, fault())
    run.order(body, retained=retained)
    run.order(ack(first.firing[0].id))  # a good one after it is still taken

    with caplog.at_level(logging.WARNING):
        run.at(10, fault())

    assert run.controls.refused == 1
    assert complaint in caplog.text
    assert run.book.firing[0].acknowledged is not None


# Integration: the real broker ---------------------------------------------------------


def _mqtt(broker: MosquittoProcess, prefix: str) -> MqttConfig:
    return MqttConfig(host=broker.host, port=broker.port, topic_prefix=prefix, client_id="ops")


@pytest.mark.integration
async def test_an_ack_shows_on_the_retained_alert_and_stops_the_reminders(
    mosquitto: MosquittoProcess, topic_prefix: str, publisher: mqtt.Client
) -> None:
    route = RecordingRoute()
    config = alerts_config(mosquitto, topic_prefix, repeat_interval=0.5)
    async with (
        watching(mosquitto, topic_prefix) as watch,
        engine_running(config, workers=[route.worker()]),
    ):
        raise_fault(publisher, topic_prefix)
        fired = await watch.until("device_fault", "firing")
        await wait_until(lambda: len(route.sent) >= 2)  # it is being repeated
        order = AlertAck(site=SITE, alert=fired["id"], by="王工", note="已派人更换", at=T0)

        confirmed = await send_control(_mqtt(mosquitto, topic_prefix), order, wait_s=5)
        sent_at_ack = len(route.sent)
        await asyncio.sleep(1.5)  # three repeat intervals

        latest = [a for a in watch.alerts() if a["id"] == fired["id"]][-1]
        assert confirmed
        assert latest["acknowledged"] == {"by": "王工", "note": "已派人更换",
                                            "at": "2026-11-30T02:00:00Z"}  # fmt: skip
        assert len(route.sent) <= sent_at_ack + 1  # at most one already on its way
        raise_fault(publisher, topic_prefix, active=False)
        resolved = await watch.until("device_fault", "resolved")
        assert resolved["acknowledged"]["by"] == "王工"


@pytest.mark.integration
async def test_an_ack_survives_an_engine_restart(
    mosquitto: MosquittoProcess, topic_prefix: str, publisher: mqtt.Client, tmp_path: Path
) -> None:
    config = alerts_config(mosquitto, topic_prefix, state_dir=tmp_path / "state")
    ops = _mqtt(mosquitto, topic_prefix)
    async with watching(mosquitto, topic_prefix) as watch:
        async with engine_running(config) as engine:
            raise_fault(publisher, topic_prefix)
            fired = await watch.until("device_fault", "firing")
            order = AlertAck(site=SITE, alert=fired["id"], by="王工", note="明天修", at=T0)
            assert await send_control(ops, order, wait_s=5)
        # The broker's retained alert is cleared: only the state file can tell.
        tree = TopicTree(topic_prefix)
        publisher.publish(tree.alert(SITE, fired["id"]), b"", qos=1, retain=True).wait_for_publish()

        async with engine_running(config) as engine:
            await wait_until(lambda: bool(engine.book.firing))
            await wait_until(lambda: engine.book.firing[0].acknowledged is not None)

            assert engine.book.firing[0].acknowledged.note == "明天修"  # type: ignore[union-attr]
            assert (tmp_path / "state" / "operator-decisions.json").exists()


# docs/mqtt.md, "Alert control": every example is what the contract accepts ------------

_DOC = (Path(__file__).resolve().parent.parent / "docs" / "mqtt.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "example", re.findall(r"```json alert_control\n(.*?)```", _DOC, flags=re.S)
)
def test_every_alert_control_example_in_the_doc_validates(example: str) -> None:
    order = parse_alert_control(example)
    assert parse_alert_control(encode_payload(order)) == order


def test_the_site_silences_example_in_the_doc_validates() -> None:
    [example] = re.findall(r"```json site_silences\n(.*?)```", _DOC, flags=re.S)
    assert [s.rule for s in parse_site_silences(example).silences] == ["door_open"]


def test_the_doc_shows_every_action() -> None:
    shown = {
        parse_alert_control(e).action
        for e in re.findall(r"```json alert_control\n(.*?)```", _DOC, flags=re.S)
    }
    assert shown == {"ack", "silence", "unsilence"}
