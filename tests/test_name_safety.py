"""Ids that could break a topic or a line of line protocol are refused at every hop; text that
legitimately holds such characters is escaped exactly; Chinese names survive the whole pipe.

Ids (site, gateway, device, sensor) match ``ID_PATTERN``: ASCII slugs. People's names (Chinese
included) live in the site directory and join the ids only where people read them, so the test
at the end follows 淇河书屋·馨苑二区站 from the directory through a real gateway, Mosquitto,
consumer and InfluxDB into ``qihe stats visitors --format csv``.

Already covered elsewhere, not repeated here:

- hostile *topics* at the consumer (``x,y=z``, ``座位1``, ``a/b``): ``tests/test_consumer.py::
  test_invalid_messages_are_dead_lettered_with_a_reason_and_neighbours_land``;
- the basic escaping table and its round trip through InfluxDB: ``tests/test_line_protocol.py::
  test_escaping`` and ``::test_escaped_lines_read_back_unchanged_from_real_influxdb``;
- the exact line of every reading kind, the device's comma-separated ``sensors`` included:
  ``tests/test_line_protocol.py::test_exact_line_of_each_reading_kind``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from central.consumer.config import ConsumerConfig
from central.consumer.points import reading_point
from central.consumer.service import Consumer
from central.errors import LineProtocolError
from central.influx import Point, encode_line
from devstack import InfluxdProcess, MosquittoProcess
from edge.config import GatewayConfig
from edge.gateway import Gateway
from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort
from qihe.configfile import ConfigError, load_config_file
from qihe.contract import (
    ID_PATTERN,
    DeviceReading,
    PayloadError,
    TopicError,
    TopicTree,
    encode_payload,
    parse_batch,
    parse_reading,
    parse_status,
)
from tests.clocks import RunningClock
from tests.mqtt_helpers import running, wait_until
from tests.test_consumer import DeadLetters, make_config, publish

ROOT = Path(__file__).resolve().parent.parent
SH = ZoneInfo("Asia/Shanghai")
SITE, GATEWAY, DEVICE = "shancheng-xinyuan2", "gw1", "xinyuan2-a"

#: Each could escape a topic level or a line protocol element, or is not an ASCII slug.
HOSTILE = {
    "space": "seat 1",
    "comma": "seat,1",
    "equals": "seat=1",
    "double quote": 'seat"1',
    "single quote": "seat'1",
    "newline": "seat1\n",
    "carriage return": "seat\r1",
    "plus": "+",
    "hash": "#",
    "plus inside": "seat+1",
    "slash": "seat/1",
    "backslash": "seat\\1",
    "emoji": "seat😀",
    "chinese": "馨苑二区",
    "empty": "",
    "leading dot": ".seat",
    "too long": "s" * 65,
}
HOSTILE_IDS = list(HOSTILE)


def _reading(**changes: Any) -> dict[str, Any]:
    reading = {
        "schema": 1,
        "kind": "seat",
        "site": SITE,
        "gateway": GATEWAY,
        "device": DEVICE,
        "sensor": f"{DEVICE}.1",
        "ts": "2026-11-28T01:02:03Z",
        "occupied": True,
    }
    return {**reading, **changes}


# --- the gateway's config ---------------------------------------------------------------------


def _gateway_yaml(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "site": SITE,
        "gateway": GATEWAY,
        "broker": {"host": "localhost"},
        "serial": [{"path": "/dev/ttyUSB0", "device": DEVICE}],
        "gpio": [{"pin": 17, "kind": "door", "sensor": "entrance"}],
    }
    return {**config, **changes}


def _with_id(where: str, value: str) -> dict[str, Any]:
    if where in ("site", "gateway"):
        return _gateway_yaml(**{where: value})
    if where == "gpio.0.sensor":
        return _gateway_yaml(gpio=[{"pin": 17, "kind": "door", "sensor": value}])
    return _gateway_yaml(serial=[{"path": "/dev/ttyUSB0", "device": value}])


@pytest.mark.parametrize("where", ["site", "gateway", "gpio.0.sensor", "serial.0.device"])
@pytest.mark.parametrize("name", HOSTILE_IDS)
def test_the_gateway_config_refuses_a_hostile_id_naming_key_and_value(
    tmp_path: Path, where: str, name: str
) -> None:
    value = HOSTILE[name]
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(_with_id(where, value), allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config_file(path, GatewayConfig)
    assert str(caught.value).splitlines() == [
        f"{path}: invalid configuration",
        f"  {where}: String should match pattern "
        f"'{ID_PATTERN if where != 'serial.0.device' else '^[a-z0-9][a-z0-9_-]{0,31}$'}'"
        f" (got {value!r})",
    ]


def test_the_gateway_config_accepts_the_sample_ids(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(_gateway_yaml()), encoding="utf-8")
    config = load_config_file(path, GatewayConfig)
    assert (config.site, config.gateway, config.gpio[0].sensor) == (SITE, GATEWAY, "entrance")


# --- topics -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_IDS)
def test_the_topic_tree_refuses_a_hostile_id_in_every_level(name: str) -> None:
    value = HOSTILE[name]
    tree = TopicTree("qihe")
    builders: dict[str, Callable[[], str]] = {
        "site": lambda: tree.status(value, GATEWAY),
        "gateway": lambda: tree.backlog(SITE, value),
        "sensor": lambda: tree.reading(SITE, GATEWAY, "seat", value),
        "device": lambda: tree.command(SITE, GATEWAY, value),
        "client": lambda: tree.dead_letter(value),
    }
    for level, build in builders.items():
        with pytest.raises(TopicError) as caught:
            build()
        assert str(caught.value) == (
            f"{level} {value!r} cannot be used in a topic: it must match {ID_PATTERN}"
        )


@pytest.mark.parametrize("name", [n for n in HOSTILE_IDS if "/" not in HOSTILE[n]])
def test_the_topic_tree_refuses_to_parse_a_hostile_level(name: str) -> None:
    value = HOSTILE[name]
    with pytest.raises(TopicError, match="cannot be used in a topic"):
        TopicTree("qihe").parse(f"qihe/v1/{SITE}/{GATEWAY}/seat/{value}")


@pytest.mark.parametrize("prefix", ["qi he", "qihe/+", "qihe/#", "qihe/", "淇河", "qihe,x"])
def test_the_topic_tree_refuses_a_hostile_prefix(prefix: str) -> None:
    with pytest.raises(TopicError, match="must be plain levels"):
        TopicTree(prefix)


# --- payloads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["site", "gateway", "device", "sensor"])
@pytest.mark.parametrize("name", HOSTILE_IDS)
def test_a_reading_with_a_hostile_id_is_refused_naming_the_field(field: str, name: str) -> None:
    payload = json.dumps(_reading(**{field: HOSTILE[name]}), ensure_ascii=False)
    with pytest.raises(PayloadError) as caught:
        parse_reading(payload)
    assert str(caught.value) == f"seat.{field}: String should match pattern '{ID_PATTERN}'"


@pytest.mark.parametrize("name", HOSTILE_IDS)
def test_status_batch_and_fault_target_refuse_hostile_ids(name: str) -> None:
    value = HOSTILE[name]
    status = {"schema": 1, "site": SITE, "gateway": value, "state": "online", "session": 1,
              "ts": "2026-11-28T01:02:03Z"}  # fmt: skip
    with pytest.raises(PayloadError, match=r"^gateway: String should match pattern"):
        parse_status(json.dumps(status))
    batch = {"schema": 1, "kind": "batch", "site": value, "gateway": GATEWAY,
             "readings": [_reading()]}  # fmt: skip
    with pytest.raises(PayloadError, match=r"^site: String should match pattern"):
        parse_batch(json.dumps(batch))
    fault = _reading(kind="fault", code="stuck", active=True, target=value)
    del fault["occupied"]
    with pytest.raises(PayloadError, match=r"^fault.target: String should match pattern"):
        parse_reading(json.dumps(fault))
    device = _reading(kind="device", firmware="1.0.0", report_interval_s=60, sensors=[value])
    del device["occupied"]
    with pytest.raises(PayloadError, match=r"^device.sensors.0: String should match pattern"):
        parse_reading(json.dumps(device))


@pytest.mark.parametrize("firmware", ["1.0.0 beta", "1.0.0,x", '1"0', "1.0.0\n", "１.０.０"])
def test_a_firmware_string_that_is_not_a_version_is_refused(firmware: str) -> None:
    device = _reading(kind="device", firmware=firmware, report_interval_s=60)
    del device["occupied"]
    with pytest.raises(PayloadError, match=r"^device.firmware: String should match pattern"):
        parse_reading(json.dumps(device))


# --- the consumer -----------------------------------------------------------------------------


@pytest.fixture
def consumer_config(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    topic_prefix: str,
    influx_db: str,
    unique_name: str,
) -> ConsumerConfig:
    return make_config(
        mosquitto, influxd, prefix=topic_prefix, database=influx_db, client_id=f"c-{unique_name}"
    )


@pytest.fixture
def dead_letters(
    mosquitto: MosquittoProcess, topic_prefix: str, consumer_config: ConsumerConfig
) -> Iterator[DeadLetters]:
    listener = DeadLetters(
        mosquitto, TopicTree(topic_prefix).dead_letter(consumer_config.mqtt.client_id)
    )
    yield listener
    listener.close()


@pytest.mark.integration
def test_the_consumer_dead_letters_hostile_ids_on_a_valid_topic_and_writes_nothing(
    consumer_config: ConsumerConfig,
    dead_letters: DeadLetters,
    topic_prefix: str,
    influxd: InfluxdProcess,
    influx_db: str,
) -> None:
    tree = TopicTree(topic_prefix)
    # One hostile id per message; the topic is the one the valid reading would use. Each
    # message gets its own (valid) sensor level, so the dead letters can be told apart.
    sent: list[tuple[str, bytes, str]] = []
    for index, name in enumerate(HOSTILE_IDS):
        for field in ("site", "gateway", "device", "sensor"):
            sensor = f"{DEVICE}.{index}-{field}"
            reading = _reading(**{"sensor": sensor, field: HOSTILE[name]})
            topic = tree.reading(SITE, GATEWAY, "seat", sensor)
            payload = json.dumps(reading, ensure_ascii=False).encode()
            sent.append((topic, payload, f"seat.{field}: String should match pattern"))
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(consumer_config.mqtt.host, consumer_config.mqtt.port)
    client.loop_start()
    try:
        with Consumer(consumer_config) as consumer:
            for topic, payload, _ in sent:
                publish(client, topic, payload)
            _wait(lambda: consumer.stats().acked == len(sent))
            _wait(lambda: len(dead_letters.received) == len(sent))
            stats = consumer.stats()
    finally:
        client.disconnect()
        client.loop_stop()
    assert (stats.invalid, stats.dead_lettered, stats.written_points) == (len(sent), len(sent), 0)
    letters = dead_letters.by_topic()
    for topic, payload, reason in sent:
        assert reason in letters[topic]["reason"], (topic, letters[topic]["reason"])
        assert letters[topic]["payload"].encode() == payload
    assert influxd.rows("SHOW MEASUREMENTS", influx_db) == []


def _wait(predicate: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- line protocol: text that legitimately holds the special characters -----------------------

# (name, tag value, expected tag, string field value, expected field) — InfluxDB 1.x line
# protocol: tag values escape comma, equals and space with a backslash (a backslash before
# one of them is written doubled so it is read as a backslash, not as the escape); string
# fields escape the double quote and the backslash, and may hold line breaks inside the quotes.
TEXT = [
    ("backslash before comma", "a\\,b", "a\\\\,b", "a\\,b", '"a\\\\,b"'),
    ("backslash before space", "a\\ b", "a\\\\ b", "a\\ b", '"a\\\\ b"'),
    ("backslash before equals", "a\\=b", "a\\\\=b", "a\\=b", '"a\\\\=b"'),
    ("double backslash", "a\\\\b", "a\\\\b", "a\\\\b", '"a\\\\\\\\b"'),
    ("quotes both kinds", 'it\'s "x"', 'it\'s\\ "x"', 'it\'s "x"', '"it\'s \\"x\\""'),
    ("crlf in string", "v", "v", "line1\r\nline2", '"line1\r\nline2"'),
    ("string ends with backslash", "v", "v", "C:\\", '"C:\\\\"'),
    ("string of only a quote", "v", "v", '"', '"\\""'),
    ("tab", "a\tb", "a\tb", "a\tb", '"a\tb"'),
    ("chinese and emoji", "淇河 书屋", "淇河\\ 书屋", "馨苑,二区=站 😀", '"馨苑,二区=站 😀"'),
    ("hash and plus", "#+/", "#+/", "#+/", '"#+/"'),
]


@pytest.mark.parametrize(
    ("tag", "tag_out", "text", "text_out"),
    [case[1:] for case in TEXT],
    ids=[case[0] for case in TEXT],
)
def test_exact_bytes_of_escaped_tags_and_strings(
    tag: str, tag_out: str, text: str, text_out: str
) -> None:
    line = encode_line(Point("fault", {"t": tag}, {"s": text}, 1))
    assert line.encode() == f"fault,t={tag_out} s={text_out} 1".encode()


@pytest.mark.integration
def test_escaped_text_reads_back_unchanged_from_real_influxdb(
    influxd: InfluxdProcess, influx_db: str
) -> None:
    points = [
        Point("fault", {"case": name.replace(" ", "_"), "t": tag}, {"s": text}, 1)
        for name, tag, _, text, _ in TEXT
    ]
    body = "\n".join(encode_line(p) for p in points).encode()
    response = httpx.post(
        f"{influxd.url}/write", params={"db": influx_db, "precision": "ns"}, content=body
    )
    assert response.status_code == 204, response.text
    rows = influxd.rows('SELECT "s", "t", "case" FROM "fault"', influx_db)
    assert sorted((row["case"], row["t"], row["s"]) for row in rows) == sorted(
        (p.tags["case"], p.tags["t"], p.fields["s"]) for p in points
    )


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("a\nb", "tag value of 't' 'a\\nb' contains a line break"),
        ("a\rb", "tag value of 't' 'a\\rb' contains a line break"),
        ("ends\\", "tag value of 't' 'ends\\\\' ends with a backslash"),
        ("", "tag value of 't' is empty"),
    ],
)
def test_tags_that_cannot_be_written_are_refused(tag: str, message: str) -> None:
    with pytest.raises(LineProtocolError) as caught:
        encode_line(Point("fault", {"t": tag}, {"s": "x"}, 1))
    assert str(caught.value) == message


def test_a_device_readings_sensor_list_is_one_escaped_string_field() -> None:
    reading = DeviceReading(
        site=SITE, gateway=GATEWAY, device=DEVICE, sensor=DEVICE, seq=7,
        ts=datetime(2026, 11, 28, 1, 0, tzinfo=UTC), firmware="1.2.3", report_interval_s=60,
        sensors=("seat.1", "seat.2", "people.1"),
    )  # fmt: skip
    assert encode_line(reading_point(reading)).encode() == (
        b"device,device=xinyuan2-a,gateway=gw1,sensor=xinyuan2-a,site=shancheng-xinyuan2"
        b' firmware="1.2.3",report_interval_s=60i,sensors="seat.1,seat.2,people.1",seq=7i'
        b" 1795827600000000000"
    )
    assert json.loads(encode_payload(reading))["sensors"] == ["seat.1", "seat.2", "people.1"]


# --- end to end: Chinese names through every hop ----------------------------------------------

NEW_YEARS_EVE_NOON = datetime(2025, 12, 31, 4, tzinfo=UTC)  # 12:00 in Hebi

SITES_YAML = """\
timezone: Asia/Shanghai
sites:
  - id: shancheng-xinyuan2
    name: 淇河书屋·馨苑二区站
    name_en: Qihe Book House, Xinyuan No. 2
    kind: book_house
    district: 山城区
    district_en: Shancheng
    opening_hours:
      daily: "00:00-24:00"
    seat_grids:
      - {gateway: gw1, device: xinyuan2-a, count: 2, cols: 2, label_prefix: "座"}
  - id: qibin-taoyuan
    name: 淇河书屋·桃园站
    district: 淇滨区
"""


@pytest.mark.integration
async def test_chinese_names_come_back_byte_for_byte_from_influxdb_in_the_stats_csv(
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    topic_prefix: str,
    unique_name: str,
    tmp_path: Path,
) -> None:
    consumer = Consumer(
        ConsumerConfig.model_validate(
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
    )
    link = tmp_path / "usb-qihe_board"
    gateway = Gateway(
        GatewayConfig.model_validate(
            {
                "site": SITE,
                "gateway": GATEWAY,
                "state_dir": tmp_path,
                "broker": {
                    "host": mosquitto.host,
                    "port": mosquitto.port,
                    "topic_prefix": topic_prefix,
                },
                "serial": [{"path": str(link), "device": DEVICE}],
                # The board is acknowledged once its reports are durable: commit them soon.
                "outbox": {"commit_interval": 0.05},
            }
        ),
        clock=RunningClock(NEW_YEARS_EVE_NOON),
    )
    emulator = BookHouseEmulator(
        EmulatorConfig(
            device_id=DEVICE, seats=2, simulate=False, retransmit_after=timedelta(milliseconds=300)
        )
    )
    entered = [4, 7, 2]
    # The gateway's clock runs from noon on a past New Year's Eve in Hebi: the count never
    # splits at a midnight, and the stats command's "now" never cuts it short.
    day = NEW_YEARS_EVE_NOON.astimezone(SH).date()
    consumer.start()
    try:
        async with PtyPort(link) as port, running(gateway):
            await asyncio.wait_for(gateway.serial_sources[0].connected.wait(), 10)
            async with emulator.attach(port):
                for people in entered:
                    emulator.count_people(entered=people, left=1)
                    await asyncio.sleep(0.1)
                await wait_until(lambda: emulator.unacknowledged == 0, timeout=30)
            await wait_until(lambda: len(gateway.outbox) == 0, timeout=30)

        def totals() -> list[object]:
            rows = influxd.rows('SELECT "in_total" FROM "people"', influx_db)
            return [row["in_total"] for row in rows]

        await wait_until(lambda: totals()[-1:] == [sum(entered)], timeout=30)
    finally:
        consumer.stop()

    (tmp_path / "sites.yaml").write_text(SITES_YAML, encoding="utf-8")
    stats = tmp_path / "stats.yaml"
    stats.write_text(
        f"sites: sites.yaml\ninflux:\n  url: {influxd.url}\n  database: {influx_db}\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "qihe_cli.main", "stats", "visitors", "--config", str(stats),
               "--district", "山城区", "--from", day.isoformat(), "--to", day.isoformat(),
               "--format", "csv"]  # fmt: skip
    env = {**os.environ, "PYTHONUTF8": "1"}
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert (
        stdout
        == (
            "\ufeff站点编号 Site ID,站点 Site,时段 Period,访客 Visitors (人次)\r\n"
            f"shancheng-xinyuan2,淇河书屋·馨苑二区站,{day.isoformat()}T00:00:00+08:00,{sum(entered)}\r\n"
        ).encode()
    )
