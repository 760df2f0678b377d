"""MQTT security against a real Mosquitto with TLS, a password file and an ACL (docs/security.md).

The broker is :class:`SecureMosquitto` with a CA made in the test; every user is created by
``qihe provision`` itself and its printed snippet is what the clients are configured with.
Mosquitto drops a publish the ACL denies (MQTT 5 says so in the PUBACK, 0x87): each such
test also publishes a permitted marker afterwards from the same client and waits for it, so
"never seen" is proven by ordering, not by a sleep.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from gpiozero.pins.mock import MockFactory
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from central.consumer.config import ConsumerConfig
from central.consumer.service import Consumer
from central.provision import gateway_acl, hash_password, provision, service_acl
from devstack import InfluxdProcess
from edge.config import GatewayConfig
from edge.gateway import Gateway
from qihe.contract import SeatReading, TopicTree, encode_payload
from qihe_cli.main import main as qihe
from tests.mosquitto_passwd import usernames, verify_password
from tests.mqtt_helpers import running, wait_until
from tests.secure_broker import SecureMosquitto, TestPki, make_test_ca

pytestmark = pytest.mark.integration

#: MQTT 5 reason code of a refused CONNECT or a denied PUBLISH. Mosquitto 2.0 answers a
#: wrong password with it too (not 0x86), so as not to tell which users exist.
NOT_AUTHORIZED = 0x87


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_ca(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Iterator[SecureMosquitto]:
    server = SecureMosquitto(tmp_path_factory.mktemp("secure-mosquitto"), pki)
    server.start()
    yield server
    server.stop()


# Provisioning through the command ------------------------------------------------


def run_qihe(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = qihe(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def provision_args(broker: SecureMosquitto, prefix: str) -> list[str]:
    return [
        "--password-file", str(broker.password_file),
        "--acl-file", str(broker.acl_file),
        "--broker-host", broker.host,
        "--broker-port", str(broker.port),
        "--ca-file", str(broker.pki.ca_cert),
        "--prefix", prefix,
    ]  # fmt: skip


def provision_gateway(
    capsys: pytest.CaptureFixture[str], broker: SecureMosquitto, prefix: str, site: str, gw: str
) -> dict[str, Any]:
    code, out, err = run_qihe(
        capsys, "provision", "gateway", site, gw, *provision_args(broker, prefix)
    )
    assert code == 0, err
    assert "shown once" in err
    snippet: dict[str, Any] = yaml.safe_load(out)["broker"]
    return snippet


def provision_service(
    capsys: pytest.CaptureFixture[str], broker: SecureMosquitto, prefix: str, name: str, role: str
) -> dict[str, Any]:
    code, out, err = run_qihe(
        capsys, "provision", "service", name, "--role", role, *provision_args(broker, prefix)
    )
    assert code == 0, err
    snippet: dict[str, Any] = yaml.safe_load(out)["mqtt"]
    return snippet


@dataclass(frozen=True)
class World:
    """Two gateways of one site, a consumer, a live service and an operator, all provisioned."""

    tree: TopicTree
    site: str
    gateway_a: dict[str, Any]
    gateway_b: dict[str, Any]
    consumer: dict[str, Any]
    live: dict[str, Any]
    operator: dict[str, Any]


@pytest.fixture
def world(
    broker: SecureMosquitto,
    topic_prefix: str,
    unique_name: str,
    capsys: pytest.CaptureFixture[str],
) -> World:
    site = f"site-{unique_name}"
    users = World(
        tree=TopicTree(topic_prefix),
        site=site,
        gateway_a=provision_gateway(capsys, broker, topic_prefix, site, "gw-a"),
        gateway_b=provision_gateway(capsys, broker, topic_prefix, site, "gw-b"),
        consumer=provision_service(
            capsys, broker, topic_prefix, f"consumer-{unique_name}", "consumer"
        ),
        live=provision_service(capsys, broker, topic_prefix, f"live-{unique_name}", "live"),
        operator=provision_service(capsys, broker, topic_prefix, f"op-{unique_name}", "operator"),
    )
    broker.reload()
    return users


# A small synchronous MQTT 5 client over TLS -------------------------------------


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes


class TlsClient:
    """A paho client with a username, over TLS verified by ``ca`` (or the system store)."""

    _ids = iter(range(1, 1_000_000))

    def __init__(
        self,
        broker: SecureMosquitto,
        creds: dict[str, Any] | None,
        *,
        ca: Path | None,
    ) -> None:
        self.messages: list[Message] = []
        self.pubacks: dict[int, ReasonCode] = {}
        self.connack: ReasonCode | None = None
        self._lock = threading.Lock()
        self._answered = threading.Event()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sec-test-{next(self._ids)}",
            protocol=mqtt.MQTTv5,
        )
        if creds is not None:
            self._client.username_pw_set(creds["username"], creds["password"])
        self._client.tls_set(ca_certs=str(ca) if ca else None)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._broker = broker

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: Any) -> None:
        self.connack = rc
        self._answered.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Message(msg.topic, bytes(msg.payload)))

    def _on_publish(
        self, _c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: object
    ) -> None:
        with self._lock:
            self.pubacks[mid] = rc

    def connect(self) -> ReasonCode:
        """Connect and return the CONNACK's reason code (the loop keeps running)."""
        self._client.connect(self._broker.host, self._broker.port, keepalive=10)
        self._client.loop_start()
        if not self._answered.wait(5):
            raise TimeoutError("no CONNACK")
        assert self.connack is not None
        return self.connack

    def subscribe(self, *filters: str) -> None:
        self._subscribed.clear()
        self._client.subscribe([(f, 1) for f in filters])
        if not self._subscribed.wait(5):
            raise TimeoutError(f"no SUBACK for {filters}")

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self._client.publish(topic, payload, qos=1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self._lock:
                if info.mid in self.pubacks:
                    return self.pubacks[info.mid]
            time.sleep(0.01)
        raise TimeoutError(f"no PUBACK for {topic}")

    def topics(self) -> list[str]:
        with self._lock:
            return [m.topic for m in self.messages]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> TlsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reading(site: str, gateway: str, sensor: str, occupied: bool = True) -> bytes:
    return encode_payload(
        SeatReading(
            site=site, gateway=gateway, device="gpio", sensor=sensor,
            ts=datetime.now(UTC), occupied=occupied,
        )
    )  # fmt: skip


def start_consumer(
    world: World, broker: SecureMosquitto, influxd: InfluxdProcess, db: str, **mqtt: object
) -> Consumer:
    config = ConsumerConfig.model_validate(
        {
            "mqtt": {**world.consumer, "connect_timeout": 5, **mqtt},
            "influx": {"api": "v1", "url": influxd.url, "database": db},
            "flush_interval": 0.2,
        }
    )
    consumer = Consumer(config)
    consumer.start()
    return consumer


# Who may connect ---------------------------------------------------------------


def test_an_anonymous_client_is_refused(broker: SecureMosquitto, world: World) -> None:
    with TlsClient(broker, None, ca=broker.pki.ca_cert) as client:
        assert client.connect().value == NOT_AUTHORIZED


def test_a_wrong_password_is_refused(broker: SecureMosquitto, world: World) -> None:
    wrong = {**world.gateway_a, "password": world.gateway_b["password"]}
    with TlsClient(broker, wrong, ca=broker.pki.ca_cert) as client:
        assert client.connect().value == NOT_AUTHORIZED


def test_the_right_password_over_tls_is_accepted(broker: SecureMosquitto, world: World) -> None:
    with TlsClient(broker, world.gateway_a, ca=broker.pki.ca_cert) as client:
        assert client.connect().value == 0


def test_a_client_without_the_ca_fails_tls_verification(
    broker: SecureMosquitto, world: World
) -> None:
    system_store = ssl.create_default_context()  # what a client without ca_file trusts
    with (
        socket.create_connection((broker.host, broker.port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"),
    ):
        system_store.wrap_socket(raw, server_hostname=broker.host)
    with_ca = ssl.create_default_context(cafile=broker.pki.ca_cert)
    with (
        socket.create_connection((broker.host, broker.port), timeout=5) as raw,
        with_ca.wrap_socket(raw, server_hostname=broker.host) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


# A gateway end to end ----------------------------------------------------------


async def test_a_gateway_over_tls_lands_in_influxdb(
    broker: SecureMosquitto,
    world: World,
    influxd: InfluxdProcess,
    influx_db: str,
    tmp_path: Path,
) -> None:
    factory = MockFactory()
    config = GatewayConfig.model_validate(
        {
            "site": world.site,
            "gateway": "gw-a",
            "state_dir": tmp_path,
            "broker": world.gateway_a,  # the snippet qihe provision printed, as it is
            "gpio": [{"pin": 17, "kind": "door", "sensor": "entrance", "debounce": 0.02}],
        }
    )
    consumer = await asyncio.to_thread(start_consumer, world, broker, influxd, influx_db)
    gateway = Gateway(config, pin_factory=factory)
    try:
        async with running(gateway):
            await wait_until(lambda: gateway.stats().publisher.published >= 1)
            factory.pin(17).drive_high()

            def doors() -> list[dict[str, Any]]:
                return influxd.rows('SELECT "open", "site", "gateway" FROM "door"', influx_db)

            await wait_until(lambda: [row["open"] for row in doors()] == [0, 1], timeout=10)
            assert {(row["site"], row["gateway"]) for row in doors()} == {(world.site, "gw-a")}
            assert gateway.stats().publisher.connection_failures == 0
    finally:
        factory.reset()
        await asyncio.to_thread(consumer.stop)


# What each user may publish and read --------------------------------------------


def test_a_gateway_cannot_publish_as_another_gateway(
    broker: SecureMosquitto, world: World, influxd: InfluxdProcess, influx_db: str
) -> None:
    tree, site = world.tree, world.site
    consumer = start_consumer(world, broker, influxd, influx_db)
    watchers = [TlsClient(broker, world.live, ca=broker.pki.ca_cert)]
    watchers.append(TlsClient(broker, world.operator, ca=broker.pki.ca_cert))
    try:
        for watcher in watchers:
            assert watcher.connect().value == 0
        watchers[0].subscribe(*tree.reading_filters())
        watchers[1].subscribe(f"{tree.root}/#")
        with TlsClient(broker, world.gateway_a, ca=broker.pki.ca_cert) as impostor:
            assert impostor.connect().value == 0
            forged = tree.reading(site, "gw-b", "seat", "forged")
            assert impostor.publish(forged, reading(site, "gw-b", "forged")).value == NOT_AUTHORIZED
            marker = tree.reading(site, "gw-a", "seat", "marker")
            assert impostor.publish(marker, reading(site, "gw-a", "marker")).value == 0

        def landed() -> list[dict[str, Any]]:
            return influxd.rows('SELECT "occupied", "gateway", "sensor" FROM "seat"', influx_db)

        for watcher in watchers:
            assert wait_for(saw(watcher, marker))
            assert forged not in watcher.topics()
        assert wait_for(lambda: len(landed()) == 1)
        assert [(row["gateway"], row["sensor"]) for row in landed()] == [("gw-a", "marker")]
        assert consumer.stats().received == 1
    finally:
        for watcher in watchers:
            watcher.close()
        consumer.stop()


def saw(client: TlsClient, topic: str) -> Callable[[], bool]:
    return lambda: topic in client.topics()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_gateway_reads_its_own_commands_and_no_one_elses(
    broker: SecureMosquitto, world: World
) -> None:
    tree, site = world.tree, world.site
    mine, theirs = tree.command(site, "gw-a", "board-a"), tree.command(site, "gw-b", "board-a")
    with (
        TlsClient(broker, world.gateway_a, ca=broker.pki.ca_cert) as gateway,
        TlsClient(broker, world.operator, ca=broker.pki.ca_cert) as operator,
    ):
        assert gateway.connect().value == 0
        assert operator.connect().value == 0
        # Asking for B's commands by name and by wildcard: granted, never delivered.
        gateway.subscribe(theirs, f"{tree.root}/+/+/cmd/+", mine)
        assert operator.publish(theirs, b'{"reset": true}').value == 0
        assert operator.publish(mine, b'{"reset": true}').value == 0
        assert wait_for(lambda: mine in gateway.topics())
        assert theirs not in gateway.topics()


@pytest.mark.parametrize("role", ["consumer", "live", "operator"])
def test_central_services_cannot_publish_readings(
    broker: SecureMosquitto, world: World, role: str
) -> None:
    tree, site = world.tree, world.site
    topic = tree.reading(site, "gw-a", "seat", "forged")
    with (
        TlsClient(broker, getattr(world, role), ca=broker.pki.ca_cert) as service,
        TlsClient(broker, world.operator, ca=broker.pki.ca_cert) as watcher,
    ):
        assert watcher.connect().value == 0
        watcher.subscribe(f"{tree.root}/#")
        assert service.connect().value == 0
        assert service.publish(topic, reading(site, "gw-a", "forged")).value == NOT_AUTHORIZED
        assert service.publish(tree.status(site, "gw-a"), b"{}").value == NOT_AUTHORIZED
        if role == "consumer":
            # Its one permitted topic, published after: the denied ones would have come first.
            dead_letter = tree.dead_letter(world.consumer["client_id"])
            assert service.publish(dead_letter, b"{}").value == 0
            assert wait_for(lambda: dead_letter in watcher.topics())
        else:
            time.sleep(0.3)
        assert topic not in watcher.topics()


# Provisioning -----------------------------------------------------------------------


def test_provisioning_again_rotates_the_password_without_duplicating_acl_lines(
    broker: SecureMosquitto, world: World, topic_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    acl_before = broker.acl_file.read_text()
    old = world.gateway_a
    new = provision_gateway(capsys, broker, topic_prefix, world.site, "gw-a")
    broker.reload()
    assert new["password"] != old["password"]
    assert usernames(broker.password_file.read_text()).count(old["username"]) == 1
    acl_after = broker.acl_file.read_text()
    assert acl_after.count(f"user {old['username']}\n") == 1
    # The same lines, once each (the rotated block moves to the end).
    assert sorted(filter(None, acl_after.splitlines())) == sorted(
        filter(None, acl_before.splitlines())
    )
    assert broker.password_file.stat().st_mode & 0o777 == 0o640
    with TlsClient(broker, old, ca=broker.pki.ca_cert) as client:
        assert client.connect().value == NOT_AUTHORIZED
    with TlsClient(broker, new, ca=broker.pki.ca_cert) as client:
        assert client.connect().value == 0


@pytest.mark.parametrize(
    ("site", "gateway"),
    [
        ("a/b", "gw1"),
        ("site", "+"),
        ("site", "#"),
        ("my site", "gw1"),
        ("site", "gw1/#"),
        ("site", "gw1\nuser admin"),
        ("", "gw1"),
        ("-site", "gw1"),
        ("站点", "gw1"),
    ],
)
def test_hostile_ids_are_refused(
    site: str, gateway: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    code, out, err = run_qihe(
        capsys, "provision", "gateway",
        "--password-file", str(passwd), "--acl-file", str(acl), "--", site, gateway,
    )  # fmt: skip
    assert code == 2
    assert "is not a valid id" in err
    assert out == ""
    assert not passwd.exists() and not acl.exists()


@pytest.mark.parametrize("name", ["a/b", "#", "x y", "op\ntopic readwrite #"])
def test_hostile_service_names_are_refused(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    code, out, err = run_qihe(
        capsys, "provision", "service", "--role", "live",
        "--password-file", str(passwd), "--acl-file", str(acl), "--", name,
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert "is not a valid id" in err
    assert not acl.exists()


def test_mosquitto_passwd_and_the_python_hash_agree(
    broker: SecureMosquitto, world: World, topic_prefix: str
) -> None:
    made_by_tool = hash_password("someone", "correct horse", tool="auto")
    assert verify_password("correct horse", made_by_tool)
    assert not verify_password("wrong horse", made_by_tool)
    # And Mosquitto accepts a hash made in Python (when mosquitto_passwd is missing).
    creds = provision(
        gateway_acl(world.site, "gw-py", prefix=topic_prefix),
        password_file=broker.password_file,
        acl_file=broker.acl_file,
        tool=None,
    )
    broker.reload()
    login = {"username": creds.username, "password": creds.password}
    with TlsClient(broker, login, ca=broker.pki.ca_cert) as client:
        assert client.connect().value == 0


def test_acl_lines_qihe_does_not_manage_are_kept_and_never_taken_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    acl.write_text("# hand-written\nuser monitor\ntopic read $SYS/#\n")
    files = ["--password-file", str(passwd), "--acl-file", str(acl)]
    assert run_qihe(capsys, "provision", "gateway", "s1", "gw1", *files)[0] == 0
    assert acl.read_text().startswith("# hand-written\nuser monitor\ntopic read $SYS/#\n\n")
    # A user someone wrote by hand is not silently given a second, managed entry.
    acl.write_text(acl.read_text() + "\nuser gw2@s1\ntopic readwrite #\n")
    code, out, err = run_qihe(capsys, "provision", "gateway", "s1", "gw2", *files)
    assert (code, out) == (2, "")
    assert "has ACL lines qihe does not manage" in err
    assert usernames(passwd.read_text()) == ["gw1@s1"]


def test_the_example_acl_is_what_qihe_provision_writes(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "acl.example"
    acl = tmp_path / "acl"
    for entry in (
        service_acl("qihe-central", "consumer", prefix="qihe"),
        service_acl("qihe-live", "live", prefix="qihe"),
        service_acl("qihe-alerts", "alerts", prefix="qihe"),
        service_acl("qihe-ops", "operator", prefix="qihe"),
        gateway_acl("qibin-taoyuan", "gw1", prefix="qihe"),
    ):
        provision(entry, password_file=tmp_path / "passwd", acl_file=acl, tool=None)

    def rules(text: str) -> list[str]:
        return [line for line in text.splitlines() if line and not line.startswith("#")]

    assert rules(example.read_text()) == rules(acl.read_text())
