"""Commands to boards, end to end: sender → real Mosquitto → gateway → emulated board on a pty
→ ACK/NACK → reply → sender (``docs/mqtt.md``, "Commands"; ``docs/commands.md``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from central.commands.config import CommandConfig
from central.commands.sender import CommandOutcome, CommandTarget, build_command, send_command
from devstack import MosquittoProcess
from edge.commands import SEEN_FILE
from edge.config import GatewayConfig
from edge.gateway import Gateway
from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort
from firmware_bridge.messages import Identify, Ping
from qihe.clock import Clock, utc_now
from qihe.contract import Command, TopicTree, parse_command_reply
from qihe_cli.main import main as qihe
from tests.clocks import RunningClock
from tests.mqtt_helpers import Recorder, running, wait_until
from tests.test_gateway_serial import PtyBoard

pytestmark = pytest.mark.integration

SITE = "qibin-taoyuan"
DEVICE = "taoyuan-1"
START = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def gateway_config(
    broker: MosquittoProcess, prefix: str, state_dir: Path, link: Path
) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "site": SITE,
            "gateway": "gw1",
            "state_dir": state_dir,
            "broker": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
            "serial": [
                {"path": str(link), "device": DEVICE, "reconnect_min": 0.05, "reconnect_max": 0.2}
            ],
            "link_report_interval": 0.5,
        }
    )


def command_config(broker: MosquittoProcess, prefix: str, **extra: object) -> CommandConfig:
    return CommandConfig.model_validate(
        {
            "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
            "operator": "ops-zhang",
            "timeout": 10,
            **extra,
        }
    )


@dataclass
class Site:
    emulator: BookHouseEmulator
    gateway: Gateway
    config: CommandConfig

    async def send(
        self,
        command: str,
        seconds: int | None = None,
        *,
        device: str = DEVICE,
        clock: Clock = utc_now,
    ) -> CommandOutcome:
        made = build_command(self.config, command, seconds, by="ops-zhang", clock=clock)  # type: ignore[arg-type]
        return await self.again(made, device=device)

    async def again(self, command: Command, *, device: str = DEVICE) -> CommandOutcome:
        return await send_command(self.config, CommandTarget(SITE, "gw1", device), command)


def board() -> BookHouseEmulator:
    # A scripted board: HELLO, heartbeats and what the test does, nothing random.
    return BookHouseEmulator(
        EmulatorConfig(device_id=DEVICE, seats=4, simulate=False, start=START, speed=60)
    )


@contextlib.asynccontextmanager
async def a_site(
    broker: MosquittoProcess,
    prefix: str,
    state_dir: Path,
    *,
    clock: Clock = utc_now,
    emulator: BookHouseEmulator | None = None,
) -> AsyncIterator[Site]:
    """An emulated board on a pty behind a running gateway, both ready for commands."""
    emulator = emulator or board()
    link = state_dir / "usb-qihe_board"
    gateway = Gateway(gateway_config(broker, prefix, state_dir, link), clock=clock)
    async with PtyPort(link) as port, running(gateway):
        await asyncio.wait_for(gateway.serial_sources[0].connected.wait(), 10)
        await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
        async with emulator.attach(port):
            await wait_until(lambda: gateway.serial_sources[0].counters.frames > 0)
            yield Site(emulator, gateway, command_config(broker, prefix))


# A command reaches the board and its reply comes back ----------------------------------------


async def test_identify_reaches_the_board_and_its_ack_comes_back_with_the_round_trip(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    async with a_site(mosquitto, topic_prefix, tmp_path) as site:
        outcome = await site.send("identify", 10)
        assert outcome.result == "ok"
        assert outcome.reply is not None and outcome.reply.device == DEVICE
        assert outcome.round_trip_s is not None and outcome.round_trip_s > 0
        assert outcome.reply.received_at <= outcome.reply.done_at
        assert site.emulator.board.counters.identifies == 1


async def test_ping_and_interval_are_acknowledged_and_the_interval_takes_effect(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    async with a_site(mosquitto, topic_prefix, tmp_path) as site:
        assert (await site.send("ping")).result == "ok"
        assert (await site.send("interval", 120)).result == "ok"
        assert site.emulator.model.report_interval_s == 120
        assert site.emulator.board.counters.commands == 2


async def test_an_interval_the_board_cannot_do_is_nacked_with_the_reason(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    async with a_site(mosquitto, topic_prefix, tmp_path) as site:
        outcome = await site.send("interval", 7200)  # the emulated board takes 1-3600 s
        assert outcome.result == "nack"
        assert outcome.reply is not None and outcome.reply.detail is not None
        assert "BAD_ARGUMENT" in outcome.reply.detail
        assert site.emulator.model.report_interval_s == 60


async def test_reboot_reaches_the_board_which_says_hello_again(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    tree = TopicTree(topic_prefix)
    recorder = Recorder(mosquitto, tree.reading(SITE, "gw1", "device", DEVICE))
    try:
        async with a_site(mosquitto, topic_prefix, tmp_path) as site:
            await recorder.until(lambda ms: len(ms) >= 1)
            boot = site.emulator.board.boot
            assert (await site.send("reboot")).result == "ok"
            assert site.emulator.board.boot == boot + 1
            # The new boot's HELLO becomes a second device reading.
            await recorder.until(lambda ms: len([m for m in ms if not m.retain]) >= 2)
    finally:
        recorder.close()


# An expired command is not executed; a repeated id is executed once --------------------------


async def test_a_command_that_reaches_the_gateway_after_its_expiry_is_not_executed(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    gateway_clock = RunningClock(START + timedelta(minutes=5))
    async with a_site(mosquitto, topic_prefix, tmp_path, clock=gateway_clock) as site:
        # Issued at START with 30 s to live: by the gateway's clock it expired 4.5 minutes ago.
        outcome = await site.send("identify", 10, clock=RunningClock(START))
        assert outcome.result == "expired"
        assert site.emulator.board.counters.commands == 0
        assert site.emulator.board.counters.identifies == 0
        # The next command, in time by the gateway's clock, is carried out.
        assert (await site.send("identify", 10, clock=gateway_clock)).result == "ok"
        assert site.emulator.board.counters.identifies == 1


async def test_a_repeated_id_is_executed_once_also_after_the_gateway_restarts(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    emulator = board()
    async with a_site(mosquitto, topic_prefix, tmp_path, emulator=emulator) as site:
        command = build_command(site.config, "identify", 5, by="ops-zhang")
        assert (await site.again(command)).result == "ok"
        repeat = await site.again(command)  # as a QoS 1 redelivery would bring it
        assert repeat.result == "duplicate"
        assert emulator.board.counters.identifies == 1
    seen = json.loads((tmp_path / SEEN_FILE).read_text())
    assert command.id in seen
    # A new gateway process on the same state folder remembers it.
    async with a_site(mosquitto, topic_prefix, tmp_path, emulator=emulator) as site:
        assert (await site.again(command)).result == "duplicate"
        assert (await site.send("identify", 5)).result == "ok"
    assert emulator.board.counters.identifies == 2


# What cannot be done is said, and costs nothing else -----------------------------------------


async def test_a_command_to_a_board_the_gateway_does_not_have_is_answered_unknown_device(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    async with a_site(mosquitto, topic_prefix, tmp_path) as site:
        outcome = await site.send("ping", device="taoyuan-9")
        assert outcome.result == "unknown_device"
        assert outcome.reply is not None and outcome.reply.device == "taoyuan-9"
        assert site.emulator.board.counters.commands == 0


async def test_a_malformed_command_is_logged_and_refused_and_readings_keep_flowing(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    publisher: mqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tree = TopicTree(topic_prefix)
    replies = Recorder(mosquitto, tree.command_reply(SITE, "gw1", DEVICE))
    seats = Recorder(mosquitto, tree.reading(SITE, "gw1", "seat", f"{DEVICE}.1"))
    topic = tree.command(SITE, "gw1", DEVICE)
    try:
        async with a_site(mosquitto, topic_prefix, tmp_path) as site:
            caplog.set_level(logging.INFO, logger="edge.commands")
            publisher.publish(topic, b"\xff not json {", qos=1)
            bad = {
                "schema": 1, "id": "c0ffee00c0ffee00", "command": "reboot", "seconds": "5",
                "issued_at": "2026-11-28T02:00:00Z", "expires_at": "2026-11-28T02:00:30Z",
                "by": "ops-zhang",
            }  # fmt: skip
            publisher.publish(topic, json.dumps(bad).encode(), qos=1)
            got = await replies.until(lambda ms: len(ms) >= 1)
            reply = parse_command_reply(got[0].payload)
            assert (reply.id, reply.result) == ("c0ffee00c0ffee00", "invalid")
            assert reply.detail is not None and reply.detail.startswith("seconds")
            refused = [r.getMessage() for r in caplog.records if "命令无效" in r.getMessage()]
            assert len(refused) == 2
            assert "invalid command" in refused[0]
            # Nothing else is lost: the board's readings flow, and the next command works.
            site.emulator.set_seat(1, True)
            await seats.until(lambda ms: any(json.loads(m.payload)["occupied"] for m in ms))
            assert (await site.send("ping")).result == "ok"
            assert site.emulator.board.counters.commands == 1
            await replies.until(lambda ms: len(ms) == 2)
    finally:
        replies.close()
        seats.close()


async def test_a_board_that_never_answers_is_asked_again_with_the_same_frame_then_timeout(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    silent = PtyBoard(tmp_path / "usb-qihe_board")
    gateway = Gateway(gateway_config(mosquitto, topic_prefix, tmp_path, silent.link))
    config = command_config(mosquitto, topic_prefix)
    try:
        async with running(gateway):
            await asyncio.wait_for(gateway.serial_sources[0].connected.wait(), 10)
            await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
            command = build_command(config, "ping", None, by="ops-zhang")
            outcome = await send_command(config, CommandTarget(SITE, "gw1", DEVICE), command)
            assert outcome.result == "timeout"
            pings = [f for f in silent.heard_frames() if isinstance(f.message, Ping)]
            assert len(pings) == 3 and len({f.seq for f in pings}) == 1
    finally:
        silent.unplug()


async def test_an_unplugged_board_is_answered_unreachable(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    gone = tmp_path / "usb-nothing-here"
    gateway = Gateway(gateway_config(mosquitto, topic_prefix, tmp_path, gone))
    config = command_config(mosquitto, topic_prefix)
    async with running(gateway):
        await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
        command = build_command(config, "identify", 3, by="ops-zhang")
        outcome = await send_command(config, CommandTarget(SITE, "gw1", DEVICE), command)
        assert outcome.result == "unreachable"


async def test_no_gateway_means_no_reply_within_the_timeout(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    config = command_config(mosquitto, topic_prefix, timeout=0.5)
    command = build_command(config, "ping", None, by="ops-zhang")
    outcome = await send_command(config, CommandTarget(SITE, "gw-gone", DEVICE), command)
    assert (outcome.result, outcome.reply, outcome.round_trip_s) == ("no_reply", None, None)


# qihe command ---------------------------------------------------------------------------------


@pytest.fixture
def config_file(mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "command.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "mqtt": {
                    "host": mosquitto.host,
                    "port": mosquitto.port,
                    "topic_prefix": topic_prefix,
                },
                "operator": "ops-zhang",
                "timeout": 10,
            }
        )
    )
    yield path


async def test_qihe_command_prints_the_result_and_round_trip_and_exits_by_the_result(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with a_site(mosquitto, topic_prefix, tmp_path) as site:
        base = [f"{SITE}/gw1", DEVICE]
        code = await asyncio.to_thread(
            qihe, ["command", *base, "identify", "--config", str(config_file)]
        )
        out = capsys.readouterr().out
        assert code == 0, out
        assert out.startswith(f"{SITE}/gw1/{DEVICE} identify 10: 成功 ok; 往返 round trip ")
        assert out.rstrip().endswith(" ms")
        assert site.emulator.board.counters.identifies == 1
        code = await asyncio.to_thread(
            qihe, ["command", *base, "interval", "9999", "--config", str(config_file)]
        )
        assert code == 1
        assert (
            "板子拒绝 refused by the board (板子拒绝 board refused: BAD_ARGUMENT)"
            in capsys.readouterr().out
        )


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        pytest.param(["qibin-taoyuan", "taoyuan-1", "ping"], "SITE/GATEWAY", id="no-gateway"),
        pytest.param(
            ["qibin-taoyuan/gw1", "taoyuan-1", "interval"],
            "interval needs seconds",
            id="no-seconds",
        ),
        pytest.param(
            ["qibin-taoyuan/gw1", "taoyuan-1", "identify", "300"],
            "identify takes 1-255",
            id="too-long",
        ),
        pytest.param(
            ["qibin-taoyuan/gw1", "taoyuan-1", "ping", "5"],
            "ping takes no seconds",
            id="ping-seconds",
        ),
        pytest.param(
            ["qibin-taoyuan/gw1", "a/b", "ping"], "device 'a/b' cannot be used", id="hostile-device"
        ),
        pytest.param(
            ["qibin-taoyuan/gw1", "taoyuan-1", "ping", "--expires", "7200"],
            "at most one hour",
            id="long-expiry",
        ),
        pytest.param(
            ["qibin-taoyuan/gw1", "taoyuan-1", "ping", "--timeout", "0"],
            "--timeout",
            id="zero-timeout",
        ),
    ],
)
def test_qihe_command_refuses_bad_arguments_in_one_line(
    config_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str
) -> None:
    assert qihe(["command", *argv, "--config", str(config_file)]) == 2
    err = capsys.readouterr().err
    assert complaint in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_frames_for_each_command_are_the_protocols() -> None:
    from edge.commands import board_message

    config = CommandConfig()
    assert board_message(build_command(config, "identify", 7, by="x")) == Identify(7)
    assert board_message(build_command(config, "ping", None, by="x")) == Ping()


def test_the_sample_command_config_loads() -> None:
    from central.commands.config import load_command_config

    config = load_command_config(Path(__file__).resolve().parent.parent / "config" / "command.yaml")
    assert (config.timeout, config.expires) == (timedelta(seconds=10), timedelta(seconds=30))
    assert config.mqtt.topic_prefix == "qihe"
