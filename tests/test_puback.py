"""A refused QoS 1 publish raises: the aiomqtt hook, and the real Mosquitto with an ACL."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from qihe.mqtt import PubackClient, PublishRefusedError, refusal
from tests.secure_broker import AclMosquitto


async def test_aiomqtt_still_calls_the_hooks_the_refusal_check_relies_on() -> None:
    # qihe/mqtt/clients.py overrides a private method and wraps a private attribute of aiomqtt
    # (pinned <2.6 in pyproject.toml). If a new aiomqtt renames them, this fails, not production.
    params = list(inspect.signature(aiomqtt.Client._on_publish).parameters)
    assert params == ["self", "client", "userdata", "mid", "reason_code", "properties"]
    assert "self._client.publish(" in inspect.getsource(aiomqtt.Client.publish)
    client = PubackClient("127.0.0.1", 1, protocol=aiomqtt.ProtocolVersion.V5)
    paho = client._client
    assert paho.on_publish == client._on_publish
    assert paho.publish.__name__ == "publish_noting_mid"


def test_reason_codes_below_0x80_are_successes_and_the_rest_refusals() -> None:
    no_subscribers = ReasonCode(PacketTypes.PUBACK, identifier=0x10)
    assert refusal("t", no_subscribers) is None
    assert refusal("t", ReasonCode(PacketTypes.PUBACK, identifier=0)) is None
    refused = refusal("t", ReasonCode(PacketTypes.PUBACK, identifier=0x87))
    assert refused is not None
    assert (refused.topic, refused.reason_code, refused.reason_name) == (
        "t",
        0x87,
        "Not authorized",
    )
    assert str(refused) == "broker refused the publish on t: 0x87 Not authorized"


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[AclMosquitto]:
    broker = AclMosquitto(tmp_path / "broker")
    broker.acl_file.parent.mkdir(parents=True)
    broker.acl_file.write_text("topic deny refused/#\ntopic readwrite #\n")
    broker.start()
    yield broker
    broker.stop()


@pytest.mark.integration
async def test_a_publish_the_acl_denies_raises_with_reason_0x87(acl_broker: AclMosquitto) -> None:
    async with PubackClient(
        acl_broker.host, acl_broker.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        with pytest.raises(PublishRefusedError) as refused:
            await client.publish("refused/door/entrance", b"{}", qos=1, retain=True)
        assert (refused.value.reason_code, refused.value.reason_name) == (0x87, "Not authorized")
        assert refused.value.topic == "refused/door/entrance"
        # Accepted with nobody subscribed: 0x10 "No matching subscribers" is a success.
        await client.publish("allowed/seat/a.1", b"{}", qos=1)


@pytest.mark.integration
async def test_a_topic_allowed_after_the_acl_is_reloaded_is_accepted(
    acl_broker: AclMosquitto,
) -> None:
    async with PubackClient(
        acl_broker.host, acl_broker.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        with pytest.raises(PublishRefusedError):
            await client.publish("refused/door/entrance", b"{}", qos=1)
        acl_broker.acl_file.write_text("topic readwrite #\n")
        acl_broker.reload()
        await client.publish("refused/door/entrance", b"{}", qos=1)
