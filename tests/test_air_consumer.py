"""``air`` and ``battery`` readings through the consumer into a real InfluxDB 1.x (issue 16):
the fields a sensor measured, as floats (air) and an integer (battery), nothing else."""

from __future__ import annotations

import json
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from central.consumer.config import ConsumerConfig
from central.consumer.points import reading_line, reading_point
from central.consumer.service import Consumer
from central.influx import encode_line
from devstack import InfluxdProcess, MosquittoProcess
from qihe.contract import AirReading, BatteryReading, TopicTree, parse_reading
from tests.test_consumer import (
    SITE,
    T0,
    T0_NS,
    DeadLetters,
    make_config,
    publish,
    publish_reading,
    wait_until,
)

pytestmark = pytest.mark.integration

IDS = {"site": SITE, "gateway": "gw1"}


@pytest.fixture
def tree(topic_prefix: str) -> TopicTree:
    return TopicTree(topic_prefix)


@pytest.fixture
def config(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    topic_prefix: str,
    influx_db: str,
    unique_name: str,
) -> ConsumerConfig:
    return make_config(
        mosquitto, influxd, prefix=topic_prefix, database=influx_db, client_id=f"c-{unique_name}"
    )


def test_air_and_battery_readings_land_with_their_measured_fields_only(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    tree: TopicTree,
    influxd: InfluxdProcess,
    influx_db: str,
) -> None:
    readings = [
        # A CO₂ sensor sends integers; a Zigbee one only temperature and humidity.
        AirReading(device="air-1", sensor="air-1", ts=T0, temperature_c=22.4, humidity_pct=41.5,
                   co2_ppm=870, **IDS),
        AirReading(device="zb-air", sensor="zb-air", ts=T0, temperature_c=-3.5, humidity_pct=100,
                   **IDS),
        BatteryReading(device="front-door", sensor="front-door", ts=T0, percent=64, **IDS),
    ]  # fmt: skip
    with Consumer(config) as consumer:
        for reading in readings:
            publish_reading(publisher, tree, reading)
        wait_until(lambda: consumer.stats().acked == 3, "3 acks")
        stats = consumer.stats()
    assert (stats.written_points, stats.invalid) == (3, 0)
    air = influxd.rows('SELECT * FROM "air" GROUP BY "sensor"', influx_db)
    row = {"time": T0_NS, "site": SITE, "gateway": "gw1"}
    assert sorted(air, key=lambda r: r["sensor"]) == [
        {**row, "device": "air-1", "sensor": "air-1", "temperature_c": 22.4,
         "humidity_pct": 41.5, "co2_ppm": 870.0},
        {**row, "device": "zb-air", "sensor": "zb-air", "temperature_c": -3.5,
         "humidity_pct": 100.0, "co2_ppm": None},
    ]  # fmt: skip
    assert influxd.rows('SELECT * FROM "battery"', influx_db) == [
        {**row, "device": "front-door", "sensor": "front-door", "percent": 64}
    ]


def test_air_fields_are_floats_even_when_the_sensor_sent_integers() -> None:
    # A field keeps its type per shard: 870 written as an integer would make 870.5 a conflict.
    reading = parse_reading(
        json.dumps({"schema": 1, "kind": "air", "device": "a", "sensor": "a",
                    "ts": "2026-11-28T01:06:00Z", "temperature_c": 22, "humidity_pct": 41,
                    "co2_ppm": 870, **IDS})
    )  # fmt: skip
    line = reading_line(reading)
    assert line == encode_line(reading_point(reading))
    assert line.split(" ")[1] == "temperature_c=22.0,humidity_pct=41.0,co2_ppm=870.0"


def test_a_battery_line_is_an_integer_field() -> None:
    reading = BatteryReading(device="d", sensor="d", ts=T0, percent=7, **IDS)
    assert reading_line(reading).split(" ")[1] == "percent=7i"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"temperature_c": 21.0, "humidity_pct": 140}, "air.humidity_pct: Input should be less"),
        ({}, "air: Value error, an air reading carries temperature_c, humidity_pct or co2_ppm"),
        ({"co2_ppm": -1}, "air.co2_ppm: Input should be greater than or equal to 0"),
        ({"temperature_c": "21.5"}, "air.temperature_c: Input should be a valid number"),
        ({"percent": 101}, "battery.percent: Input should be less than or equal to 100"),
        ({"percent": 64.5}, "battery.percent: Input should be a valid integer"),
    ],
)
def test_bad_air_and_battery_payloads_are_dead_lettered_with_the_reason(
    config: ConsumerConfig,
    publisher: mqtt.Client,
    tree: TopicTree,
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    body: dict[str, Any],
    reason: str,
) -> None:
    kind = "battery" if "percent" in body else "air"
    topic = tree.reading(SITE, "gw1", kind, "s1")
    payload = {"schema": 1, "kind": kind, "device": "d", "sensor": "s1",
               "ts": "2026-11-28T01:06:00Z", **IDS, **body}  # fmt: skip
    letters = DeadLetters(mosquitto, tree.dead_letter(config.mqtt.client_id))
    try:
        with Consumer(config) as consumer:
            publish(publisher, topic, json.dumps(payload).encode())
            wait_until(lambda: len(letters.received) == 1, "the dead letter")
            assert consumer.stats().invalid == 1
    finally:
        letters.close()
    assert letters.received[0]["topic"] == topic
    assert letters.received[0]["reason"].startswith(f"payload: {reason}"), letters.received[0]
    assert influxd.rows(f'SELECT * FROM "{kind}"', influx_db) == []
