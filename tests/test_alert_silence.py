"""Silencing a rule at a site for a while: nothing sent meanwhile, shown, kept across restarts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from central.alerts.ack_send import read_silences, send_control
from central.broker import MqttConfig
from devstack import MosquittoProcess
from qihe.contract import AlertSilence, AlertUnsilence, TopicTree
from qihe_cli.main import main as qihe
from tests.alert_control_harness import OTHER_SITE, T0, Run, door, fault, raise_fault, silence
from tests.alert_harness import SITE, RecordingRoute, alerts_config, engine_running, watching
from tests.clocks import RunningClock
from tests.mqtt_helpers import Recorder, wait_until

# Unit: the lifecycle on an injected clock ----------------------------------------------


def test_a_silenced_rule_sends_nothing_at_its_site_while_others_are_still_sent() -> None:
    run = Run()
    run.order(silence("device_fault", minutes=60))

    sent = run.at(0, fault(), door(), fault(site=OTHER_SITE))

    assert sorted((n.site, a.rule) for n in sent for a in n.firing if not a.silenced) == [
        (OTHER_SITE, "device_fault"), (SITE, "door_open"),
    ]  # fmt: skip
    silenced = [a for a in run.book.firing if a.silenced]
    assert [(a.site, a.rule) for a in silenced] == [(SITE, "device_fault")]


def test_a_silence_ends_by_the_clock_and_a_still_firing_alert_is_sent_then() -> None:
    run = Run()
    run.order(silence("device_fault", minutes=30))
    assert run.at(0, fault()) == []
    assert run.at(29 * 60, fault()) == []

    [sent] = run.at(30 * 60, fault())

    assert [a.rule for a in sent.firing] == ["device_fault"]
    assert len(run.controls.silences) == 0


def test_unsilence_ends_a_silence_early() -> None:
    run = Run()
    run.order(silence("device_fault", minutes=60))
    run.at(0, fault())
    run.order(AlertUnsilence(id="s1", site=SITE, by="王工", at=T0).model_dump_json(by_alias=True))

    [sent] = run.at(60, fault())

    assert [a.rule for a in sent.firing] == ["device_fault"]


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        pytest.param(silence("sofa_on_fire", 60), "unknown rule", id="unknown-rule"),
        pytest.param(silence("door_open", 60, at=T0 - timedelta(hours=2)), "over", id="over"),
        pytest.param(
            silence("door_open", 60).replace(
                b'"until":"2026-11-30T03:00:00Z"', b'"until":"2027-11-30T03:00:00Z"'
            ),
            "at most 30 days",
            id="too-long",
        ),
    ],
)
def test_silences_that_cannot_be_taken_are_logged_and_change_nothing(
    body: bytes, complaint: str, caplog: pytest.LogCaptureFixture
) -> None:
    run = Run()
    run.order(body)

    sent = run.at(0, door())

    assert run.controls.refused == 1
    assert complaint in caplog.text
    assert [a.rule for n in sent for a in n.firing] == ["door_open"]


def test_silences_and_acks_are_written_to_the_state_file_and_read_back(tmp_path: Path) -> None:
    import asyncio

    run = Run(state_dir=tmp_path)
    run.order(silence("door_open", minutes=60))
    run.at(0, door())
    asyncio.run(run.controls.save_if_changed())

    again = Run(state_dir=tmp_path)
    asyncio.run(again.controls.load())

    assert [s.rule for s in again.controls.silences.all()] == ["door_open"]
    assert again.at(60, door()) == []


def test_a_broken_state_file_is_set_aside_and_the_engine_starts_without_decisions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    (tmp_path / "operator-decisions.json").write_text("{not json")
    run = Run(state_dir=tmp_path)

    asyncio.run(run.controls.load())

    assert len(run.controls.silences) == 0
    assert (tmp_path / "operator-decisions.json.bad").exists()
    assert "set aside" in caplog.text


# Integration: the real broker, the command line ---------------------------------------


def _ops_file(tmp_path: Path, broker: MosquittoProcess, prefix: str) -> Path:
    path = tmp_path / "ops.yaml"
    path.write_text(
        f"mqtt: {{host: {broker.host}, port: {broker.port}, topic_prefix: {prefix}}}\n"
        "operator: wang\n"
    )
    return path


@pytest.mark.integration
async def test_a_silence_from_the_command_line_holds_notifications_and_is_kept_over_a_restart(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    publisher: mqtt.Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    route = RecordingRoute()
    clock = RunningClock(datetime.now(UTC))
    config = alerts_config(mosquitto, topic_prefix, state_dir=tmp_path / "state")
    ops = _ops_file(tmp_path, mosquitto, topic_prefix)
    mqtt_ops = MqttConfig(host=mosquitto.host, port=mosquitto.port, topic_prefix=topic_prefix)
    async with watching(mosquitto, topic_prefix) as watch:
        async with engine_running(config, workers=[route.worker()], clock=clock):
            code = await _qihe(
                "alerts", "silence", SITE, "device_fault", "--for", "2h",
                "--note", "换传感器", "--config", str(ops),
            )  # fmt: skip
            out = capsys.readouterr().out
            raise_fault(publisher, topic_prefix)
            fired = await watch.until("device_fault", "firing")
            assert code == 0
            assert "已静默 silenced device_fault" in out
            assert fired["silenced"] is True
            assert route.sent == []

        # Restarted: the silence is still there, and still shown on MQTT.
        async with engine_running(config, workers=[route.worker()], clock=clock) as engine:
            [held] = await read_silences(mqtt_ops, SITE)
            assert [(s.rule, s.by, s.note) for s in held.silences] == [
                ("device_fault", "wang", "换传感器")
            ]
            await wait_until(lambda: bool(engine.book.firing) and engine.book.firing[0].silenced)
            assert route.sent == []

            # Ended early: the alert goes out.
            order = AlertUnsilence(
                id=held.silences[0].id, site=SITE, by="wang", at=datetime.now(UTC)
            )
            assert await send_control(mqtt_ops, order, wait_s=5)
            await wait_until(lambda: len(route.sent) == 1)
            assert await read_silences(mqtt_ops, SITE) == []


@pytest.mark.integration
async def test_a_silence_ends_on_the_engines_clock_and_its_retained_list_is_cleared(
    mosquitto: MosquittoProcess, topic_prefix: str, publisher: mqtt.Client
) -> None:
    route = RecordingRoute()
    clock = RunningClock(datetime.now(UTC))
    config = alerts_config(mosquitto, topic_prefix)
    tree = TopicTree(topic_prefix)
    recorder = Recorder(mosquitto, tree.silences(SITE))
    mqtt_ops = MqttConfig(host=mosquitto.host, port=mosquitto.port, topic_prefix=topic_prefix)
    try:
        async with engine_running(config, workers=[route.worker()], clock=clock) as engine:
            now = clock()
            order = AlertSilence(
                id="lunch", site=SITE, rule="device_fault", by="wang", at=now,
                until=now + timedelta(minutes=2),
            )  # fmt: skip
            assert await send_control(mqtt_ops, order, wait_s=5)
            raise_fault(publisher, topic_prefix)
            await wait_until(lambda: bool(engine.book.firing) and engine.book.firing[0].silenced)
            assert route.sent == []
            # Within the gateway's silence timeout (3 min), so it is not taken for offline.
            clock.jump(now + timedelta(minutes=2, seconds=1))
            await wait_until(lambda: len(route.sent) == 1)
            await wait_until(lambda: recorder.snapshot()[-1].payload == b"")
    finally:
        recorder.close()
    held = [json.loads(m.payload) for m in recorder.snapshot() if m.payload]
    assert held[-1]["silences"][0]["id"] == "lunch"


async def _qihe(*argv: str) -> int:
    """``qihe …`` in a thread (it runs its own event loop), as a user would run it."""
    import asyncio

    return await asyncio.to_thread(qihe, list(argv))
