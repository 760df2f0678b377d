"""Gateway configs: every sample loads; a bad one is refused with one clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import GatewayConfig, load_gateway_config
from qihe.configfile import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "config").rglob("gateway-*.yaml"))

VALID = """\
site: qibin-taoyuan
gateway: gw1
broker: {host: 127.0.0.1}
serial: [{path: /dev/ttyUSB0, device: board-a}]
"""


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_every_sample_gateway_config_loads(path: Path) -> None:
    config = load_gateway_config(path)
    assert isinstance(config, GatewayConfig)
    assert config.serial or config.gpio or config.zigbee or config.modbus


def test_there_are_sample_configs_to_check() -> None:
    assert len(SAMPLES) >= 4


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        pytest.param(VALID + "colour: blue\n", "colour", "Extra inputs", id="unknown-key"),
        pytest.param(
            VALID.replace("qibin-taoyuan", "qibin/taoyuan"), "site", "pattern", id="slash-in-site"
        ),
        pytest.param(
            VALID.replace("qibin-taoyuan", "淇滨桃园"), "site", "pattern", id="chinese-site-id"
        ),
        pytest.param(
            VALID.replace("{host: 127.0.0.1}", "{host: 127.0.0.1, port: 70000}"),
            "broker.port",
            "less than or equal",
            id="port-out-of-range",
        ),
        pytest.param(
            VALID.replace("broker: {host: 127.0.0.1}\n", ""),
            "broker",
            "Field required",
            id="no-broker",
        ),
        pytest.param(
            VALID.replace("board-a", "Board A"), "serial.0.device", "pattern", id="bad-device-id"
        ),
        pytest.param(
            VALID + "gpio: [{pin: 17, kind: window, sensor: w1}]\n",
            "gpio.0.kind",
            "door",
            id="unknown-gpio-kind",
        ),
        pytest.param(
            VALID.replace(
                "serial: [{path: /dev/ttyUSB0, device: board-a}]",
                "serial: [{path: /dev/a, device: b}, {path: /dev/b, device: b}]",
            ),
            "(top level)",
            "unique",
            id="duplicate-devices",
        ),
        pytest.param(
            VALID.replace("serial: [{path: /dev/ttyUSB0, device: board-a}]", ""),
            "(top level)",
            "no sources",
            id="no-sources",
        ),
        pytest.param(
            VALID + "outbox: {max_pending: 10}\n",
            "outbox.max_pending",
            "greater than or equal to 100",
            id="memory-bound-too-small",
        ),
        pytest.param(
            VALID + "link_report_interval: soon\n",
            "link_report_interval",
            "duration",
            id="bad-duration",
        ),
        pytest.param(
            VALID.replace("{host: 127.0.0.1}", "{host: h, ca_file: /ca.pem}"),
            "broker",
            "tls is false",
            id="ca-without-tls",
        ),
    ],
)
def test_a_bad_config_names_the_file_the_key_and_the_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid configuration")
    assert f"  {key}: " in message
    assert reason in message


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        pytest.param("site: [unclosed\n", "not valid YAML at line 2", id="not-yaml"),
        pytest.param("- just\n- a list\n", "expected a mapping", id="top-level-list"),
        pytest.param("", "expected a mapping", id="empty-file"),
        pytest.param(b"\xff\xfe\x00bad", "cannot read", id="not-utf8"),
    ],
)
def test_a_file_that_is_not_a_config_is_refused_clearly(
    tmp_path: Path, text: str | bytes, complaint: str
) -> None:
    path = tmp_path / "site.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=complaint):
        load_gateway_config(path)


def test_a_missing_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: config file not found"):
        load_gateway_config("/nowhere.yaml")


@pytest.mark.parametrize("action", ["run", "check"])
def test_the_cli_refuses_a_bad_config_in_one_message_without_a_traceback(
    tmp_path: Path, action: str
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(VALID.replace("{host: 127.0.0.1}", "{host: 127.0.0.1, port: 0}"))
    result = subprocess.run(
        [sys.executable, "-m", "qihe_cli.main", "gateway", action, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"qihe: {path}: invalid configuration",
        "  broker.port: Input should be greater than or equal to 1 (got 0)",
    ]


def test_check_accepts_a_sample_and_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "qihe_cli.main",
            "gateway",
            "check",
            "--config",
            str(ROOT / "config" / "gateway-taoyuan.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("配置有效 / config OK")
