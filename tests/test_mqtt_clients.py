"""The one place MQTT clients are built (qihe/mqtt/clients.py), without a broker.

Connecting for real, with TLS and passwords: tests/test_mqtt_security.py; refused PUBACKs:
tests/test_puback.py.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central.consumer.config import ConsumerConfig
from central.consumer.service import Consumer
from qihe.mqtt import BrokerConnection, message_topic, paho_client, session_properties

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
#: MQTT forbids it, paho's ``MQTTMessage.topic`` raises on it: a topic that is not UTF-8.
NOT_UTF8 = b"qihe/v1/qibin-taoyuan/gw1/seat/\xff\xfe"


def message(topic: bytes, payload: bytes = b"{}") -> mqtt.MQTTMessage:
    received = mqtt.MQTTMessage(mid=7, topic=topic)
    received.payload = payload
    received.qos = 1
    return received


def test_a_topic_that_is_not_utf8_reads_with_replacement_characters() -> None:
    with pytest.raises(UnicodeDecodeError):
        _ = message(NOT_UTF8).topic  # why the consumer cannot just read .topic
    assert message_topic(message(NOT_UTF8)) == "qihe/v1/qibin-taoyuan/gw1/seat/\ufffd\ufffd"
    assert message_topic(message(b"qihe/v1/s/gw1/seat/a.1")) == "qihe/v1/s/gw1/seat/a.1"


def test_the_consumer_refuses_a_message_on_a_topic_that_is_not_utf8_and_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = ConsumerConfig.model_validate(
        {"mqtt": {}, "influx": {"api": "v1", "url": "http://127.0.0.1:1", "database": "d"}}
    )
    consumer = Consumer(config, clock=lambda: T0)  # not started: paho's callback, called here
    with caplog.at_level(logging.WARNING):
        consumer._on_message(mqtt.Client(CallbackAPIVersion.VERSION2), None, message(NOT_UTF8))
    stats = consumer.stats()
    assert (stats.received, stats.invalid, stats.pending) == (1, 1, 1)  # queued for a dead letter
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "qihe/v1/qibin-taoyuan/gw1/seat/\ufffd\ufffd" in caplog.records[0].getMessage()


def test_a_ca_file_that_cannot_be_read_fails_the_paho_client_before_any_network(
    tmp_path: Path,
) -> None:
    broker = BrokerConnection(host="broker.invalid", tls=True, ca_file=tmp_path / "no-ca.pem")
    with pytest.raises(FileNotFoundError):
        paho_client(broker, client_id="c")
    (tmp_path / "bad-ca.pem").write_text("not a certificate\n")
    broker = BrokerConnection(host="broker.invalid", tls=True, ca_file=tmp_path / "bad-ca.pem")
    with pytest.raises(OSError):  # ssl.SSLError
        paho_client(broker, client_id="c")


def test_a_persistent_session_asks_to_be_kept_and_bounds_what_comes_unacked() -> None:
    kept = session_properties(session_expiry=timedelta(days=7), receive_maximum=100_000)
    assert kept.json() == {"SessionExpiryInterval": 604_800, "ReceiveMaximum": 65_535}
    gone = session_properties(session_expiry=timedelta(0), receive_maximum=0)
    assert gone.json() == {"SessionExpiryInterval": 0, "ReceiveMaximum": 1}
