"""Fixtures: a real Mosquitto and a real InfluxDB per test session, unique names per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central.consumer.config import ConsumerConfig
from central.consumer.service import Consumer
from devstack import InfluxdProcess, MosquittoProcess

_counter = itertools.count(1)

# Tests and the demo run off a Pi: gpiozero falls back to its mock pins.
os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoProcess]:
    """A real Mosquitto broker on a free loopback port, shared by the session."""
    broker = MosquittoProcess(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def publisher(mosquitto: MosquittoProcess) -> Iterator[mqtt.Client]:
    """A plain paho MQTT 5 client connected to the broker, its network loop running."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxdProcess]:
    """A real InfluxDB 1.x on a free loopback port, shared by the session."""
    server = InfluxdProcess(tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A short name unique to this test: topic prefixes, database names, client ids."""
    return f"t{next(_counter)}_{os.getpid()}"


@pytest.fixture
def topic_prefix(unique_name: str) -> str:
    return f"test/{unique_name}"


@pytest.fixture
def influx_db(influxd: InfluxdProcess, unique_name: str) -> str:
    """A fresh database for this test (created) on the session's InfluxDB."""
    name = f"db_{unique_name}"
    influxd.create_database(name)
    return name


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Path:
    """A folder under test-output/ for files a test leaves for people (screenshots, charts)."""
    folder = Path(__file__).resolve().parent.parent / "test-output" / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def consumer(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    unique_name: str,
) -> Iterator[Consumer]:
    """A running consumer from the test's topic prefix into its own InfluxDB database."""
    config = ConsumerConfig.model_validate(
        {
            "mqtt": {
                "host": mosquitto.host,
                "port": mosquitto.port,
                "client_id": f"consumer-{unique_name}",
                "topic_prefix": topic_prefix,
            },
            "influx": {"api": "v1", "url": influxd.url, "database": influx_db},
            "flush_interval": 0.2,
        }
    )
    service = Consumer(config)
    service.start()
    yield service
    service.stop()
