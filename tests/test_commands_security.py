"""Only the operator role may command a board: a real Mosquitto with TLS, passwords and the ACL
that ``qihe provision`` writes, a gateway with its provisioned account, an emulated board."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from central.commands.config import CommandConfig
from central.commands.sender import (
    CommandRefusedError,
    CommandTarget,
    build_command,
    send_command,
)
from edge.config import GatewayConfig
from edge.gateway import Gateway
from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort
from tests.mqtt_helpers import running, wait_until
from tests.secure_broker import SecureMosquitto, TestPki, make_test_ca
from tests.test_commands import START
from tests.test_mqtt_security import (
    NOT_AUTHORIZED,
    TlsClient,
    provision_gateway,
    provision_service,
)

pytestmark = pytest.mark.integration

DEVICE = "taoyuan-1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_ca(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Iterator[SecureMosquitto]:
    server = SecureMosquitto(tmp_path_factory.mktemp("secure-mosquitto"), pki)
    server.start()
    yield server
    server.stop()


def commander(snippet: dict[str, Any]) -> CommandConfig:
    """A command config with a provisioned account, as ``qihe provision`` printed it."""
    mqtt = {key: value for key, value in snippet.items() if key != "client_id"}
    return CommandConfig.model_validate({"mqtt": mqtt, "timeout": 10})


async def test_only_the_operator_role_gets_a_command_to_the_board(
    broker: SecureMosquitto,
    topic_prefix: str,
    unique_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site = f"site-{unique_name}"
    accounts = {
        "gateway": provision_gateway(capsys, broker, topic_prefix, site, "gw1"),
        "other-gateway": provision_gateway(capsys, broker, topic_prefix, site, "gw2"),
        "operator": provision_service(
            capsys, broker, topic_prefix, f"op-{unique_name}", "operator"
        ),
        "live": provision_service(capsys, broker, topic_prefix, f"live-{unique_name}", "live"),
        "alerts": provision_service(capsys, broker, topic_prefix, f"al-{unique_name}", "alerts"),
        "consumer": provision_service(
            capsys, broker, topic_prefix, f"con-{unique_name}", "consumer"
        ),
    }
    broker.reload()
    link = tmp_path / "usb-qihe_board"
    gateway = Gateway(
        GatewayConfig.model_validate(
            {
                "site": site,
                "gateway": "gw1",
                "state_dir": tmp_path,
                "broker": accounts["gateway"],
                "serial": [{"path": str(link), "device": DEVICE}],
            }
        )
    )
    emulator = BookHouseEmulator(
        EmulatorConfig(device_id=DEVICE, seats=4, simulate=False, start=START)
    )
    target = CommandTarget(site, "gw1", DEVICE)
    async with PtyPort(link) as port, running(gateway):
        await asyncio.wait_for(gateway.serial_sources[0].connected.wait(), 10)
        await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
        async with emulator.attach(port):
            await wait_until(lambda: gateway.serial_sources[0].counters.frames > 0)
            for role in ("live", "alerts", "consumer", "gateway", "other-gateway"):
                config = commander(accounts[role])
                command = build_command(config, "reboot", None, by="intruder")
                with pytest.raises(CommandRefusedError, match="0x87 Not authorized"):
                    await send_command(config, target, command)
            operator = commander(accounts["operator"])
            outcome = await send_command(
                operator, target, build_command(operator, "identify", 5, by="ops-zhang")
            )
            assert outcome.result == "ok"
            # The board saw the operator's command only: no reboot, one identify.
            assert emulator.board.counters.commands == 1
            assert emulator.board.counters.reboots == 0
            assert emulator.board.counters.identifies == 1


def test_a_gateway_account_cannot_forge_a_reply_for_another_gateway(
    broker: SecureMosquitto,
    topic_prefix: str,
    unique_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from qihe.contract import TopicTree

    site = f"site-{unique_name}"
    mine = provision_gateway(capsys, broker, topic_prefix, site, "gw1")
    broker.reload()
    tree = TopicTree(topic_prefix)
    with TlsClient(broker, mine, ca=broker.pki.ca_cert) as client:
        assert client.connect().value == 0
        theirs = tree.command_reply(site, "gw2", DEVICE)
        assert client.publish(theirs, b"{}").value == NOT_AUTHORIZED
        assert client.publish(tree.command_reply(site, "gw1", DEVICE), b"{}").value < 0x80
