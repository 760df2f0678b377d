"""The local servers the integration tests rely on are real and behave."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest

from devstack import DevStackError, InfluxdProcess, MosquittoProcess


def test_mosquitto_accepts_a_real_client(mosquitto: MosquittoProcess) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    assert client.connect(mosquitto.host, mosquitto.port) == mqtt.MQTT_ERR_SUCCESS
    client.disconnect()


def test_influxdb_answers_influxql(influxd: InfluxdProcess, influx_db: str) -> None:
    result = influxd.query("SHOW DATABASES")
    names = [row[0] for row in result["results"][0]["series"][0]["values"]]
    assert influx_db in names


def test_influxql_error_is_reported_with_the_query(influxd: InfluxdProcess, influx_db: str) -> None:
    with pytest.raises(DevStackError, match="SELEKT"):
        influxd.query("SELEKT 1", influx_db)
