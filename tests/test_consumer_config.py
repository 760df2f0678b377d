"""Consumer config: every sample loads; a bad file is one clear message naming file and key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from central.consumer.config import ConsumerConfig
from central.influx.config import InfluxV1Config, InfluxV2Config
from qihe.configfile import ConfigError, load_config_file
from qihe_cli.main import main

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
SAMPLES = sorted(CONFIG_DIR.glob("consumer*.yaml"))

GOOD = """\
mqtt:
  host: 127.0.0.1
influx:
  api: v1
  url: http://127.0.0.1:8086
  database: qihe
"""


def test_there_are_samples_for_both_write_apis() -> None:
    assert [p.name for p in SAMPLES] == ["consumer-influx2.yaml", "consumer.yaml"]


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_config_loads(path: Path) -> None:
    config = load_config_file(path, ConsumerConfig)
    assert config.batch_size == 5000
    assert config.flush_interval == timedelta(seconds=1)
    assert config.dead_letter is True


def test_v1_sample_points_at_local_influxdb_1x() -> None:
    config = load_config_file(CONFIG_DIR / "consumer.yaml", ConsumerConfig)
    assert isinstance(config.influx, InfluxV1Config)
    assert (config.influx.url, config.influx.database) == ("http://localhost:8086", "qihe")
    assert config.influx.create_database is True
    assert config.mqtt.session_expiry == timedelta(days=7)


def test_v2_sample_keeps_the_token_secret() -> None:
    config = load_config_file(CONFIG_DIR / "consumer-influx2.yaml", ConsumerConfig)
    assert isinstance(config.influx, InfluxV2Config)
    assert config.influx.token.get_secret_value() == "change-me-write-token"
    assert "change-me" not in repr(config)


def test_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    config = load_config_file(path, ConsumerConfig)
    assert (config.batch_size, config.max_pending, config.dead_letter) == (5000, 10_000, True)
    assert config.flush_interval == timedelta(seconds=1)
    assert (config.mqtt.topic_prefix, config.mqtt.client_id) == ("qihe", "qihe-central")


def with_mqtt(setting: str) -> str:
    return GOOD.replace("mqtt:\n", f"mqtt:\n  {setting}\n")


BAD = [
    ("unknown key", GOOD.replace("host:", "hots:"), "mqtt.hots", "Extra inputs are not permitted"),
    ("wrong type", GOOD + "batch_size: many\n", "batch_size", "valid integer"),
    ("bad duration", GOOD + "flush_interval: soon\n", "flush_interval", "timedelta"),
    ("negative duration", GOOD + "flush_interval: -1\n", "flush_interval", "positive"),
    ("bad url", GOOD.replace("http://127.0.0.1:8086", "localhost:8086"), "influx.v1.url", "URL"),
    (
        "missing token",
        "mqtt: {}\ninflux: {api: v2, url: 'http://h:8086', org: o, bucket: b}\n",
        "influx.v2.token",
        "Field required",
    ),
    (
        "empty token",
        "mqtt: {}\ninflux: {api: v2, url: 'http://h:8086', token: ' ', org: o, bucket: b}\n",
        "influx.v2",
        "token must not be empty",
    ),
    ("unknown api", GOOD.replace("api: v1", "api: v9"), "influx", "expected tags: 'v1', 'v2'"),
    ("bad prefix", with_mqtt("topic_prefix: 'a/+'"), "mqtt.topic_prefix", "a/+"),
    ("bad client id", with_mqtt("client_id: 'a b'"), "mqtt.client_id", "pattern"),
    ("ca without tls", with_mqtt(f"ca_file: {__file__}"), "mqtt", "but tls is false"),
    ("missing ca", with_mqtt("tls: true\n  ca_file: /no/ca.crt"), "mqtt.ca_file", "file"),
    ("port range", with_mqtt("port: 70000"), "mqtt.port", "65535"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "key", "problem"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_config_names_the_file_and_the_key(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config_file(path, ConsumerConfig)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid configuration")
    [line] = [line for line in message.splitlines()[1:] if line.strip().startswith(f"{key}:")]
    assert problem in line


def test_check_command_refuses_a_bad_config_with_exit_2_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD + "batch_sise: 10\n")
    assert main(["consumer", "check", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"qihe: {path}: invalid configuration")
    assert "batch_sise: Extra inputs are not permitted" in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_check_command_accepts_a_good_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    assert main(["consumer", "check", "--config", str(path)]) == 0
    assert "配置有效 / config OK" in capsys.readouterr().out


def test_run_command_with_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["consumer", "run", "--config", "/nonexistent/consumer.yaml"]) == 2
    assert "config file not found" in capsys.readouterr().err
