"""Remote configuration end to end: ``push_config`` (the centre's side of ``qihe gateway
push-config``) → a real Mosquitto → the gateway's supervisor, with an emulated board on a pty
and GPIO contacts on gpiozero's MockFactory (docs/remote-config.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from gpiozero.pins.mock import MockFactory
from paho.mqtt.enums import CallbackAPIVersion

from central.broker import MqttConfig
from central.push_config import PushOutcome, push_config
from devstack import MosquittoProcess, free_port
from edge.gateway import Gateway
from edge.remote_config import ConfigStore, StoredState, Trial
from edge.supervisor import ConfigSupervisor
from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort
from qihe.contract import MAX_PUSH_BYTES, config_hash, parse_status, short_hash
from qihe_cli.main import main
from tests.mqtt_helpers import Received, Recorder, wait_until

SITE, GATEWAY, DEVICE = "qibin-taoyuan", "gw1", "board-a"


def document(broker: MosquittoProcess, prefix: str, folder: Path, **extra: Any) -> dict[str, Any]:
    """A gateway config: one emulated board, one door contact; ``extra`` replaces keys."""
    return {
        "site": SITE,
        "gateway": GATEWAY,
        "state_dir": str(folder / "state"),
        "broker": {
            "host": broker.host,
            "port": broker.port,
            "topic_prefix": prefix,
            "reconnect_min": 0.1,
            "reconnect_max": 0.3,
            "keepalive": 5,
        },
        "serial": [
            {
                "path": str(folder / "usb-qihe_board"),
                "device": DEVICE,
                "reconnect_min": 0.05,
                "reconnect_max": 0.2,
            }
        ],
        "gpio": [{"pin": 17, "kind": "door", "sensor": "front-door", "debounce": 0.01}],
        "link_report_interval": 60,
        "remote_config": {"rollback_after": 1.5},
        **extra,
    }


@dataclass
class Site:
    broker: MosquittoProcess
    prefix: str
    folder: Path
    supervisor: ConfigSupervisor
    emulator: BookHouseEmulator
    factory: MockFactory
    recorder: Recorder

    @property
    def gateway(self) -> Gateway:
        assert self.supervisor.gateway is not None
        return self.supervisor.gateway

    def document(self, **extra: Any) -> dict[str, Any]:
        return document(self.broker, self.prefix, self.folder, **extra)

    async def push(self, config: dict[str, Any], wait: float = 20) -> PushOutcome:
        central = MqttConfig(host=self.broker.host, port=self.broker.port, topic_prefix=self.prefix)
        return await push_config(central, SITE, GATEWAY, config, wait=wait, by="ops-test")

    def publish_raw(self, payload: bytes) -> None:
        """A message on the config topic as anyone allowed to write it could send it."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        try:
            topic = f"{self.prefix}/v1/{SITE}/{GATEWAY}/config"
            client.publish(topic, payload, qos=1).wait_for_publish(5)
        finally:
            client.loop_stop()
            client.disconnect()

    async def settled(self) -> None:
        """Everything the board produced is acknowledged and left the outbox."""
        await wait_until(lambda: self.emulator.unacknowledged == 0, timeout=15)
        await wait_until(lambda: len(self.gateway.outbox) == 0, timeout=15)

    def board_readings(self) -> dict[int, set[str]]:
        """Each of the board's frames (by seq) that reached the broker, batches included, with
        every distinct form it came in. MQTT is at least once: a reading in flight when a
        gateway stops comes again after, identical (one InfluxDB point), so one form each is
        "exactly once"."""
        seen: dict[int, set[str]] = {}
        for message in self.recorder.snapshot():
            for reading in _readings(message):
                if reading.get("device") == DEVICE and "seq" in reading:
                    form = json.dumps(reading, sort_keys=True)
                    seen.setdefault(reading["seq"], set()).add(form)
        return seen

    def each_once(self) -> None:
        """Every frame the board produced landed, in one form; nothing else came."""
        produced = Counter(report.frame.seq for report in self.emulator.produced_reports())
        seen = self.board_readings()
        assert set(produced.values()) == {1}
        assert sorted(seen) == sorted(produced)
        assert all(len(forms) == 1 for forms in seen.values())

    def door_states(self, sensor: str) -> list[bool]:
        """The states a GPIO contact published (a door's ``open``, a seat's ``occupied``)."""
        states = []
        for message in self.recorder.snapshot():
            for reading in _readings(message):
                if reading.get("sensor") == sensor and reading.get("kind") in ("door", "seat"):
                    states.append(bool(reading.get("open", reading.get("occupied"))))
        return states


def _readings(message: Received) -> list[dict[str, Any]]:
    if message.topic.endswith(("/status", "/config")):
        return []
    payload = json.loads(message.payload)
    return list(payload["readings"]) if payload.get("kind") == "batch" else [payload]


def status_config(broker: MosquittoProcess, prefix: str) -> dict[str, Any]:
    """The config report of the gateway's retained status, as a late subscriber sees it."""
    late = Recorder(broker, f"{prefix}/v1/{SITE}/{GATEWAY}/status")
    try:
        (retained,) = late.wait_for(lambda ms: len(ms) >= 1)
    finally:
        late.close()
    report = parse_status(retained.payload).config
    assert report is not None
    return report.model_dump(mode="json", exclude_none=True)


@contextlib.asynccontextmanager
async def running_site(
    broker: MosquittoProcess, prefix: str, folder: Path, *, fresh: bool = True
) -> AsyncIterator[Site]:
    """A supervised gateway of ``folder/gateway.yaml`` (written afresh unless ``fresh`` is
    False: a restart), its board attached, everything on the broker recorded."""
    if fresh:
        (folder / "gateway.yaml").write_text(yaml.safe_dump(document(broker, prefix, folder)))
    factory = MockFactory()
    emulator = BookHouseEmulator(
        EmulatorConfig(
            device_id=DEVICE,
            seats=4,
            simulate=False,
            speed=1,
            report_interval_s=3600,
            retransmit_after=timedelta(seconds=0.5),
        )
    )

    def make_gateway(config: Any, **hooks: Any) -> Gateway:
        return Gateway(config, pin_factory=factory, **hooks)

    supervisor = ConfigSupervisor(folder / "gateway.yaml", make_gateway=make_gateway)
    recorder = Recorder(broker, f"{prefix}/#")
    site = Site(broker, prefix, folder, supervisor, emulator, factory, recorder)
    task = asyncio.create_task(supervisor.run(), name="supervisor-under-test")
    try:
        async with PtyPort(folder / "usb-qihe_board") as port:
            await wait_until(lambda: supervisor.gateway is not None)
            await wait_until(site.gateway.publisher.connected.is_set)
            await wait_until(site.gateway.serial_sources[0].connected.is_set)
            async with emulator.attach(port):
                yield site
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        recorder.close()
        factory.reset()
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise AssertionError("the supervisor crashed") from task.exception()


async def test_a_pushed_config_is_applied_and_no_reading_is_lost_or_doubled(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    async with running_site(mosquitto, topic_prefix, tmp_path) as site:
        site.emulator.set_seat(1, True)
        site.factory.pin(17).drive_high()  # the door opens before the push
        await wait_until(lambda: True in site.door_states("front-door"))
        before = site.gateway
        pushed = site.document(
            version="2026-11-28a",
            link_report_interval=30,
            gpio=[
                {"pin": 17, "kind": "door", "sensor": "front-door", "debounce": 0.01},
                {"pin": 27, "kind": "seat", "sensor": "reading-seat", "debounce": 0.01},
            ],
        )
        push = asyncio.create_task(site.push(pushed))
        for n in range(30):  # seats change before, during and after the switch
            site.emulator.set_seat(1 + n % 4, n % 3 == 0)
            await asyncio.sleep(0.03)
        outcome = await push
        site.emulator.set_seat(2, True)
        site.factory.pin(27).drive_high()  # the new contact works
        await wait_until(lambda: site.door_states("reading-seat")[-1:] == [True])
        await site.settled()
        assert site.gateway is not before
        assert site.gateway.config.link_report_interval == timedelta(seconds=30)
        site.each_once()
    assert outcome.report is not None
    assert (outcome.report.state, outcome.report.version) == ("applied", "2026-11-28a")
    assert outcome.report.hash == short_hash(config_hash(pushed)) == outcome.hash
    assert status_config(mosquitto, topic_prefix) == {
        **outcome.report.model_dump(mode="json", exclude_none=True)
    }
    assert (tmp_path / "state" / "remote-config" / "last-good.yaml").exists()


async def test_a_config_that_fails_validation_is_rejected_with_its_error_and_nothing_stops(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    async with running_site(mosquitto, topic_prefix, tmp_path) as site:
        before = site.gateway
        bad = site.document(link_report_interval="often")
        outcome = await site.push(bad)
        site.emulator.set_seat(3, True)  # readings flow on
        await site.settled()
        assert site.gateway is before
        site.each_once()
    assert outcome.report is not None
    assert outcome.report.state == "rejected"
    assert outcome.report.error is not None
    assert outcome.report.error.startswith("配置无效 invalid config: link_report_interval: ")
    assert "\n" not in outcome.report.error
    # The status names the config that runs: the local one.
    local = yaml.safe_load((tmp_path / "gateway.yaml").read_text())
    assert outcome.report.hash == short_hash(config_hash(local))


async def test_a_config_carrying_a_secret_is_refused_without_showing_it(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    async with running_site(mosquitto, topic_prefix, tmp_path) as site:
        with_secret = site.document()
        with_secret["broker"] = {**with_secret["broker"], "username": "gw1", "password": "hunter2"}
        outcome = await site.push(with_secret)
    assert outcome.report is not None
    assert outcome.report.state == "rejected"
    assert outcome.report.error == (
        "推送的配置不能含有密钥 a pushed config carries no secrets: broker.password"
        " (write ${QIHE_...} and keep the value in the site's environment file)"
    )


async def test_a_config_that_cannot_reach_the_broker_is_rolled_back_and_readings_flow_again(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    async with running_site(mosquitto, topic_prefix, tmp_path) as site:
        dead = site.document()
        dead["broker"] = {**dead["broker"], "port": free_port()}
        push = asyncio.create_task(site.push(dead))
        await wait_until(lambda: (site.supervisor.report() or _NONE).state == "applying")
        site.emulator.set_seat(4, True)  # during the trial: kept, published after the rollback
        outcome = await push
        await site.settled()
        assert site.gateway.config.broker.port == mosquitto.port
        site.each_once()
        assert not (tmp_path / "state" / "remote-config" / "trial.yaml").exists()
    assert outcome.report is not None
    assert outcome.report.state == "rolled_back"
    assert (
        outcome.report.error == "无法连接代理，已回滚 rolled back: broker not reached within 1.5s"
    )
    local = yaml.safe_load((tmp_path / "gateway.yaml").read_text())
    assert outcome.report.hash == short_hash(config_hash(local))
    assert status_config(mosquitto, topic_prefix)["state"] == "rolled_back"


async def test_pushing_the_running_config_again_is_applied_without_a_restart(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    async with running_site(mosquitto, topic_prefix, tmp_path) as site:
        before = site.gateway
        outcome = await site.push(site.document())
        assert site.gateway is before
    assert outcome.report is not None
    assert outcome.report.state == "applied"


async def test_hostile_pushes_are_refused_and_the_gateway_carries_on(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.supervisor")
    async with running_site(mosquitto, topic_prefix, tmp_path) as site:
        before = site.gateway
        site.publish_raw(b"not json")
        site.publish_raw(b'{"schema": 1, "id": "x"}')
        huge = {"schema": 1, "id": "huge", "site": SITE, "gateway": GATEWAY, "by": "ops",
                "issued_at": "2026-11-28T01:00:00Z",
                "config": {"padding": "x" * MAX_PUSH_BYTES}}  # fmt: skip
        site.publish_raw(json.dumps(huge).encode())
        await wait_until(lambda: len(caplog.records) >= 3)
        # A push naming another gateway is answered, and refused.
        other = site.document(site="qibin-other")
        central = MqttConfig(host=mosquitto.host, port=mosquitto.port, topic_prefix=topic_prefix)
        outcome = await push_config(central, SITE, GATEWAY, other, wait=20, by="ops-test")
        moved = await site.push(site.document(state_dir=str(tmp_path / "elsewhere")))
        site.emulator.set_seat(1, True)
        await site.settled()
        assert site.gateway is before
        site.each_once()
    reasons = [record.getMessage() for record in caplog.records]
    assert any("payload: Invalid JSON" in reason for reason in reasons)
    assert any("id: " in reason or "Field required" in reason for reason in reasons)
    assert any("over the 65536 a config push may have" in reason for reason in reasons)
    assert outcome.report is not None and moved.report is not None
    assert (outcome.report.state, moved.report.state) == ("rejected", "rejected")
    assert (
        outcome.report.error
        == "不能远程更改 cannot be changed remotely: site (qibin-taoyuan → qibin-other)"
    )
    assert moved.report.error is not None and "state_dir" in moved.report.error


async def test_a_trial_cut_short_by_a_restart_ends_in_a_rollback(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    # A previous run crashed during a trial: its marker and its candidate are on the card.
    store = ConfigStore(tmp_path / "state")
    store.write_document(ConfigStore.TRIAL, {"site": SITE})
    store.save_state(StoredState(handled="a1b2", trial=Trial(push="a1b2", hash="0" * 64)))
    async with running_site(mosquitto, topic_prefix, tmp_path) as site:
        report = site.supervisor.report()
        assert report is not None
        assert (report.state, report.push) == ("rolled_back", "a1b2")
        assert report.error == "试用期间网关重启，已回滚 restarted during the trial: rolled back"
        assert status_config(mosquitto, topic_prefix)["state"] == "rolled_back"
    assert not (tmp_path / "state" / "remote-config" / "trial.yaml").exists()
    assert store.load_state().trial is None


async def test_the_pushed_config_survives_a_restart_unless_the_local_file_was_edited(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    async with running_site(mosquitto, topic_prefix, tmp_path) as site:
        pushed = site.document(version="v2", link_report_interval=30)
        outcome = await site.push(pushed)
        assert outcome.report is not None and outcome.report.state == "applied"
    # Restarted: the pushed config runs again (the retained push is not applied twice).
    async with running_site(mosquitto, topic_prefix, tmp_path, fresh=False) as site:
        assert site.gateway.config.version == "v2"
        await asyncio.sleep(0.3)  # the retained push arrives, and is known
        assert (site.supervisor.report() or _NONE).state == "applied"
    # Edited at the site: the local file wins.
    local = tmp_path / "gateway.yaml"
    local.write_text(local.read_text() + "\n# edited at the site\n")
    async with running_site(mosquitto, topic_prefix, tmp_path, fresh=False) as site:
        assert site.gateway.config.version is None
        assert (site.supervisor.report() or _NONE).state == "local"


class _NoReport:
    state = None


_NONE: Any = _NoReport()


async def test_the_command_pushes_a_file_and_prints_the_gateways_answer(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    central = tmp_path / "ops.yaml"
    central.write_text(
        yaml.safe_dump(
            {"mqtt": {"host": mosquitto.host, "port": mosquitto.port, "topic_prefix": topic_prefix}}
        )
    )
    async with running_site(mosquitto, topic_prefix, tmp_path) as site:
        new = tmp_path / "new.yaml"
        new.write_text(yaml.safe_dump(site.document(link_report_interval=30)))
        argv = ["gateway", "push-config", f"{SITE}/{GATEWAY}", str(new), "--config", str(central)]
        code = await asyncio.to_thread(main, [*argv, "--version", "v7", "--wait", "20"])
        assert site.gateway.config.version == "v7"
    out = capsys.readouterr().out
    assert code == 0
    assert "配置有效，正在推送 config OK, pushing" in out
    assert out.rstrip().endswith("(v7)")
    assert "配置已应用 config applied: the gateway runs" in out
