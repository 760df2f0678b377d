"""Only the operator role may give the alert engine orders: the broker refuses everyone else."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from central.provision import provision, service_acl
from qihe.contract import AlertAck, TopicTree, encode_payload
from tests.secure_broker import SecureMosquitto, TestPki, make_test_ca
from tests.test_mqtt_security import NOT_AUTHORIZED, TlsClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureMosquitto]:
    pki: TestPki = make_test_ca(tmp_path_factory.mktemp("pki"))
    server = SecureMosquitto(tmp_path_factory.mktemp("secure-mosquitto"), pki)
    server.start()
    yield server
    server.stop()


def _user(broker: SecureMosquitto, name: str, role: str, prefix: str) -> dict[str, str]:
    creds = provision(
        service_acl(name, role, prefix=prefix),  # type: ignore[arg-type]
        password_file=broker.password_file,
        acl_file=broker.acl_file,
    )
    return {"username": creds.username, "password": creds.password}


@pytest.mark.parametrize("role", ["live", "alerts", "consumer"])
def test_only_the_operator_may_publish_alert_orders(
    broker: SecureMosquitto, topic_prefix: str, unique_name: str, role: str
) -> None:
    tree = TopicTree(topic_prefix)
    other = _user(broker, f"intruder-{role}-{unique_name}", role, topic_prefix)
    operator = _user(broker, f"op-{unique_name}", "operator", topic_prefix)
    engine = _user(broker, f"alerts-{unique_name}", "alerts", topic_prefix)
    broker.reload()
    order = encode_payload(
        AlertAck(site="qibin-taoyuan", alert="door_open-1", by="x", at=datetime.now(UTC))
    )
    topic = tree.alert_control("qibin-taoyuan")
    ca = broker.pki.ca_cert
    with (
        TlsClient(broker, other, ca=ca) as intruder,
        TlsClient(broker, operator, ca=ca) as ops,
        TlsClient(broker, engine, ca=ca) as listener,
    ):
        for client in (intruder, ops, listener):
            assert client.connect().value == 0
        listener.subscribe(tree.alert_control_filter())

        refused = intruder.publish(topic, order)
        taken = ops.publish(topic, order)
        listener_sees = _wait_for(listener, topic)

    assert refused.value == NOT_AUTHORIZED
    assert taken.value == 0
    assert listener_sees == 1  # the operator's order only


def _wait_for(client: TlsClient, topic: str) -> int:
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and topic not in client.topics():
        time.sleep(0.02)
    time.sleep(0.2)  # the refused one would have come first
    return client.topics().count(topic)
