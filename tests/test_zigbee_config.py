"""The ``zigbee`` section: the sample loads and passes ``qihe gateway check``; a bad one is
refused with one clear line naming the key."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge.config import load_gateway_config
from edge.sources.zigbee_config import ZigbeeConfig
from edge.sources.zigbee_messages import ZigbeeMessageError, parse_state
from qihe.configfile import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "config" / "gateway-zigbee.yaml"

VALID = """\
site: shancheng-dongxiang
gateway: gw1
broker: {host: 127.0.0.1}
zigbee:
  broker: {host: 127.0.0.1}
  devices:
    - {friendly_name: dongxiang/front_door, sensor: front-door, contact: true}
    - {friendly_name: seat_01, sensor: seat-01, occupancy: seat}
"""


def test_the_sample_zigbee_config_loads() -> None:
    config = load_gateway_config(SAMPLE)
    assert config.zigbee is not None
    assert not config.serial and not config.gpio
    assert config.zigbee.base_topic == "zigbee2mqtt"
    kinds = {
        d.sensor: ("door" if d.contact else d.occupancy or "air") for d in config.zigbee.devices
    }
    assert kinds["front-door"] == "door"
    assert kinds["seat-01"] == "seat"
    assert kinds["children-corner"] == "motion"
    assert kinds["reading-room"] == "air"


def test_qihe_gateway_check_accepts_the_sample() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "qihe_cli.main", "gateway", "check", "--config", str(SAMPLE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "config OK" in result.stdout


def test_a_minimal_zigbee_config_has_the_zigbee2mqtt_defaults(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(VALID)
    zigbee = load_gateway_config(path).zigbee
    assert zigbee is not None
    assert (zigbee.base_topic, zigbee.device, zigbee.broker.port) == ("zigbee2mqtt", "zigbee", 1883)
    assert zigbee.devices[0].battery is True


DEVICE = "    - {friendly_name: seat_01, sensor: seat-01, occupancy: seat}\n"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        pytest.param(
            VALID.replace("friendly_name: seat_01", "friendly_name: seats/+"),
            "zigbee.devices.1",
            "'+', '#'",
            id="wildcard-in-name",
        ),
        pytest.param(
            VALID.replace("friendly_name: seat_01", "friendly_name: seat_01/set"),
            "zigbee.devices.1",
            "must not end in /set",
            id="command-topic-name",
        ),
        pytest.param(
            VALID.replace("friendly_name: seat_01", "friendly_name: bridge/seat"),
            "zigbee.devices.1",
            "Zigbee2MQTT's own topic",
            id="bridge-name",
        ),
        pytest.param(
            VALID.replace("friendly_name: seat_01", "friendly_name: a//b"),
            "zigbee.devices.1",
            "empty levels",
            id="empty-level",
        ),
        pytest.param(
            VALID.replace("occupancy: seat}", "occupancy: chair}"),
            "zigbee.devices.1.occupancy",
            "'seat' or 'motion'",
            id="unknown-occupancy-kind",
        ),
        pytest.param(
            VALID.replace("occupancy: seat}", "battery: false}"),
            "zigbee.devices.1",
            "gives no reading",
            id="no-reading",
        ),
        pytest.param(
            VALID.replace("occupancy: seat}", "occupancy: seat, contact: true}"),
            "zigbee.devices.1",
            "two devices",
            id="contact-and-occupancy",
        ),
        pytest.param(
            VALID.replace("sensor: seat-01", "sensor: 座位1"),
            "zigbee.devices.1.sensor",
            "pattern",
            id="chinese-sensor-id",
        ),
        pytest.param(
            VALID.replace("sensor: seat-01", "sensor: " + "s" * 60),
            "zigbee",
            "too long",
            id="fault-id-too-long",
        ),
        pytest.param(
            VALID + DEVICE.replace("sensor: seat-01", "sensor: seat-02"),
            "zigbee",
            "friendly names must be unique",
            id="duplicate-friendly-name",
        ),
        pytest.param(
            VALID + DEVICE.replace("friendly_name: seat_01", "friendly_name: seat_02"),
            "zigbee",
            "sensors must be unique",
            id="duplicate-sensor",
        ),
        pytest.param(
            VALID + "  ignore: [seat_01]\n",
            "zigbee",
            "both configured and ignored",
            id="configured-and-ignored",
        ),
        pytest.param(
            VALID + "  base_topic: zigbee2mqtt/#\n",
            "zigbee.base_topic",
            "plain levels",
            id="wildcard-base-topic",
        ),
        pytest.param(
            VALID + "  reconnect_min: 90\n",
            "zigbee",
            "reconnect_min is longer",
            id="reconnect-min-over-max",
        ),
        pytest.param(
            VALID.replace(
                "  broker: {host: 127.0.0.1}\n  devices:",
                "  broker: {host: 127.0.0.1}\n  colour: blue\n  devices:",
            ),
            "zigbee.colour",
            "Extra inputs",
            id="unknown-key",
        ),
        pytest.param(
            VALID.split("  devices:")[0] + "  devices: []\n",
            "zigbee",
            "no zigbee devices",
            id="no-devices",
        ),
        pytest.param(
            VALID.replace("  broker: {host: 127.0.0.1}\n", ""),
            "zigbee.broker",
            "Field required",
            id="no-zigbee-broker",
        ),
        pytest.param(
            VALID.replace(
                "  broker: {host: 127.0.0.1}\n", "  broker: {host: 127.0.0.1, port: 0}\n"
            ),
            "zigbee.broker.port",
            "greater than or equal to 1",
            id="bad-port",
        ),
    ],
)
def test_a_bad_zigbee_config_is_refused_naming_the_key(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path)
    message = str(caught.value)
    assert f"  {key}: " in message, message
    assert reason in message, message


def _zigbee_section() -> str:
    text = (ROOT / "docs" / "sensors.md").read_text(encoding="utf-8")
    return text.split("## Zigbee (Zigbee2MQTT)", 1)[1].split("\n## ", 1)[0]


def test_the_config_example_in_docs_sensors_md_is_valid() -> None:
    section = _zigbee_section()
    block = section.split("### The config", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    config = ZigbeeConfig.model_validate(yaml.safe_load(block)["zigbee"])
    assert [d.sensor for d in config.devices] == [
        "front-door",
        "seat-01",
        "children-corner",
        "reading-room",
    ]


def test_the_refusals_table_in_docs_sensors_md_is_what_the_source_says() -> None:
    rows = re.findall(r"^\| `([^`]+)`[^|]* \| `([^`]+)` \|$", _zigbee_section(), re.MULTILINE)
    assert len(rows) >= 6
    for payload, reason in rows:
        with pytest.raises(ZigbeeMessageError) as caught:
            parse_state(payload.encode(), contact=True, occupancy=False, air=True, battery=True)
        assert caught.value.reason == reason, payload
