"""Secrets in config files: permissions, ``${VAR}`` from the environment, and never echoed.

Policy (``qihe/configfile.py``, ``docs/deploy-central.md``): a file holding a secret that
everyone can read is refused unless ``QIHE_ALLOW_READABLE_SECRETS=1``, which turns the refusal
into one warning; ``0640`` is fine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gpiozero.pins.mock import MockFactory

from central.alerts.config import AlertsConfig
from central.alerts.routes.wecom import WeComRouteConfig
from central.consumer.config import ConsumerConfig
from central.consumer.service import Consumer
from central.influx.config import InfluxV1Config
from central.live.config import LiveConfig
from central.live.service import LiveService
from central.sites import SiteDirectory
from devstack import InfluxdProcess, MosquittoProcess
from edge.config import GatewayConfig
from edge.gateway import Gateway
from qihe.configfile import (
    ALLOW_READABLE_SECRETS,
    ConfigError,
    load_config_file,
    secret_keys,
    substitute_env,
)
from tests.mqtt_helpers import running, wait_until

MQTT_PASSWORD = "mqtt-Pa55word-zq81"
INFLUX_PASSWORD = "influx-Pa55word-kv27"
OPERATOR_TOKEN = "operator-T0ken-xw93jd"
WECOM_KEY = "0b1c2d3e-aaaa-bbbb-cccc-123456789abc"
SECRETS = (MQTT_PASSWORD, INFLUX_PASSWORD, OPERATOR_TOKEN, WECOM_KEY)

CONSUMER_YAML = f"""\
mqtt:
  host: 127.0.0.1
  username: qihe-central
  password: {MQTT_PASSWORD}
influx:
  api: v1
  url: http://127.0.0.1:8086
  database: qihe
"""

CONSUMER_FROM_ENV = """\
mqtt:
  host: 127.0.0.1
  username: qihe-central
  password: ${QIHE_MQTT_PASSWORD}
influx:
  api: v1
  url: http://127.0.0.1:8086
  database: ${QIHE_INFLUX_DB:-qihe}
"""

ALERTS_FROM_ENV = """\
sites: sites.yaml
routes:
  - type: wecom
    name: wecom-maintenance
    key: ${QIHE_WECOM_KEY}
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ALLOW_READABLE_SECRETS, "QIHE_MQTT_PASSWORD", "QIHE_WECOM_KEY", "QIHE_INFLUX_DB"):
        monkeypatch.delenv(name, raising=False)


def write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


# --- permissions ------------------------------------------------------------------------------


def test_a_world_readable_file_holding_a_secret_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "consumer.yaml", CONSUMER_YAML, 0o644)
    with pytest.raises(ConfigError) as caught:
        load_config_file(path, ConsumerConfig)
    assert str(caught.value) == (
        f"{path}: holds a secret but is readable by everyone (mode 0644): chmod 640 {path}"
    )


@pytest.mark.parametrize("mode", [0o640, 0o600, 0o400])
def test_a_file_holding_a_secret_readable_by_its_group_loads(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path / "consumer.yaml", CONSUMER_YAML, mode)
    config = load_config_file(path, ConsumerConfig)
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == MQTT_PASSWORD


def test_a_world_readable_file_without_secrets_loads(tmp_path: Path) -> None:
    text = CONSUMER_YAML.replace(f"  password: {MQTT_PASSWORD}\n", "  # password: hunter2\n")
    path = write(tmp_path / "consumer.yaml", text, 0o644)
    assert load_config_file(path, ConsumerConfig).mqtt.password is None


def test_a_secret_deep_in_a_list_counts(tmp_path: Path) -> None:
    (tmp_path / "sites.yaml").write_text("sites: []\n", encoding="utf-8")
    text = ALERTS_FROM_ENV.replace("${QIHE_WECOM_KEY}", WECOM_KEY)
    path = write(tmp_path / "alerts.yaml", text, 0o604)
    with pytest.raises(ConfigError, match=r"readable by everyone \(mode 0604\)"):
        load_config_file(path, AlertsConfig)


def test_override_loads_a_readable_secret_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(ALLOW_READABLE_SECRETS, "1")
    path = write(tmp_path / "consumer.yaml", CONSUMER_YAML, 0o644)
    with caplog.at_level(logging.DEBUG):
        config = load_config_file(path, ConsumerConfig)
    assert config.mqtt.password is not None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        f"{path}: holds a secret (mqtt.password) but is readable by everyone (mode 0644); "
        f"loading it because QIHE_ALLOW_READABLE_SECRETS=1: chmod 640 {path}"
    ]
    assert MQTT_PASSWORD not in caplog.text


def test_override_needs_exactly_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_READABLE_SECRETS, "yes")
    path = write(tmp_path / "consumer.yaml", CONSUMER_YAML, 0o644)
    with pytest.raises(ConfigError, match="readable by everyone"):
        load_config_file(path, ConsumerConfig)


def test_a_file_whose_secrets_all_come_from_the_environment_may_be_world_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QIHE_MQTT_PASSWORD", MQTT_PASSWORD)
    path = write(tmp_path / "consumer.yaml", CONSUMER_FROM_ENV, 0o644)
    config = load_config_file(path, ConsumerConfig)
    assert config.mqtt.password is not None


@pytest.mark.parametrize(
    ("data", "keys"),
    [
        ({"mqtt": {"password": "x"}}, ["mqtt.password"]),
        ({"http": {"operator_token": "x"}}, ["http.operator_token"]),
        ({"routes": [{"type": "dingtalk", "access_token": "t", "secret": "s"}]},
         ["routes.0.access_token", "routes.0.secret"]),
        ({"influx": {"token": 12345}}, ["influx.token"]),
        ({"mqtt": {"password": ""}}, []),
        ({"mqtt": {"password": None}}, []),
        ({"mqtt": {"password": "${QIHE_MQTT_PASSWORD}"}}, []),
        ({"mqtt": {"password": "${QIHE_MQTT_PASSWORD:-fallback}"}}, ["mqtt.password"]),
        ({"mqtt": {"password": "change-me"}}, []),
        ({"mqtt": {"username": "qihe", "host": "key.example"}}, []),
    ],
)  # fmt: skip
def test_which_keys_hold_a_secret(data: object, keys: list[str]) -> None:
    assert secret_keys(data) == keys


def test_the_sample_configs_hold_no_secret_values() -> None:
    import yaml

    root = Path(__file__).resolve().parent.parent / "config"
    samples = sorted(root.glob("**/*.yaml"))
    assert len(samples) >= 7
    found = {p.name: secret_keys(yaml.safe_load(p.read_text(encoding="utf-8"))) for p in samples}
    assert found == {name: [] for name in found}


# --- ${VAR} substitution ----------------------------------------------------------------------


def test_env_supplies_the_consumers_mqtt_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QIHE_MQTT_PASSWORD", MQTT_PASSWORD)
    path = write(tmp_path / "consumer.yaml", CONSUMER_FROM_ENV, 0o640)
    config = load_config_file(path, ConsumerConfig)
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == MQTT_PASSWORD
    assert isinstance(config.influx, InfluxV1Config)
    assert config.influx.database == "qihe"  # the default


def test_env_supplies_the_alerts_wecom_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sites.yaml").write_text("sites: []\n", encoding="utf-8")
    monkeypatch.setenv("QIHE_WECOM_KEY", WECOM_KEY)
    path = write(tmp_path / "alerts.yaml", ALERTS_FROM_ENV, 0o644)
    config = load_config_file(path, AlertsConfig)
    [route] = config.routes
    assert isinstance(route, WeComRouteConfig)
    assert route.key is not None
    assert route.key.get_secret_value() == WECOM_KEY
    assert WECOM_KEY not in repr(config)
    assert WECOM_KEY not in str(config)


def test_a_missing_variable_names_the_variable_and_the_key_but_no_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QIHE_INFLUX_DB", "secret-db-name")
    path = write(tmp_path / "consumer.yaml", CONSUMER_FROM_ENV, 0o640)
    with pytest.raises(ConfigError) as caught:
        load_config_file(path, ConsumerConfig)
    assert str(caught.value) == (
        f"{path}: mqtt.password: environment variable QIHE_MQTT_PASSWORD is not set"
        " (set it, or give a default: ${QIHE_MQTT_PASSWORD:-...})"
    )
    assert "secret-db-name" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("pre-${A}-${B}-post", {"A": "1", "B": "2"}, "pre-1-2-post"),
        ("${A:-dflt}", {}, "dflt"),
        ("${A:-dflt}", {"A": ""}, "dflt"),
        ("${A:-}", {}, ""),
        ("${A}", {"A": ""}, ""),
        ("${A:-dflt}", {"A": "set"}, "set"),
        ("$${A}", {"A": "x"}, "${A}"),
        ("pa$$word$A", {"A": "x"}, "pa$$word$A"),
        ("${A}", {"A": "淇河 ${B}"}, "淇河 ${B}"),  # substituted text is not substituted again
    ],
)
def test_substitution(value: str, environ: dict[str, str], expected: str) -> None:
    assert substitute_env({"k": [value]}, environ) == {"k": [expected]}


@pytest.mark.parametrize("value", ["${}", "${1A}", "${A", "${A B}", "${A:dflt}"])
def test_a_malformed_reference_is_refused_naming_the_key(value: str) -> None:
    with pytest.raises(ValueError, match=r"^mqtt\.password: malformed \$\{\.\.\.\} reference"):
        substitute_env({"mqtt": {"password": value}}, {"A": "x"})


def test_keys_and_non_strings_are_not_substituted() -> None:
    data = {"${A}": 1, "n": 2, "b": True, "none": None}
    assert substitute_env(data, {"A": "x"}) == data


# --- never echoed -----------------------------------------------------------------------------


def test_secrets_are_not_in_repr_or_str_of_any_config(tmp_path: Path) -> None:
    configs = [
        ConsumerConfig.model_validate(
            {
                "mqtt": {"username": "u", "password": MQTT_PASSWORD},
                "influx": {
                    "api": "v1",
                    "url": "http://localhost:8086",
                    "database": "qihe",
                    "username": "u",
                    "password": INFLUX_PASSWORD,
                },
            }
        ),
        GatewayConfig.model_validate(
            {
                "site": "qibin-taoyuan",
                "gateway": "gw1",
                "broker": {"host": "h", "username": "u", "password": MQTT_PASSWORD},
                "gpio": [{"pin": 17, "kind": "door", "sensor": "entrance"}],
            }
        ),
        LiveConfig.model_validate(
            {
                "sites": "sites.yaml",
                "mqtt": {"username": "u", "password": MQTT_PASSWORD},
                "http": {"operator_token": OPERATOR_TOKEN},
            }
        ),
        AlertsConfig.model_validate(
            {"sites": "sites.yaml", "routes": [{"type": "wecom", "key": WECOM_KEY}]}
        ),
    ]
    for config in configs:
        for text in (repr(config), str(config), config.model_dump_json()):
            assert not [s for s in SECRETS if s in text], type(config).__name__


@pytest.mark.parametrize(
    ("model", "text"),
    [
        (ConsumerConfig, CONSUMER_YAML.replace("host: 127.0.0.1", "host: 127.0.0.1\n  port: x")),
        (ConsumerConfig, CONSUMER_YAML.replace(f"password: {MQTT_PASSWORD}", "password: [1, 2]")),
        (AlertsConfig, ALERTS_FROM_ENV.replace("${QIHE_WECOM_KEY}", WECOM_KEY) + "  - type: x\n"),
        (
            AlertsConfig,
            ALERTS_FROM_ENV.replace("${QIHE_WECOM_KEY}", WECOM_KEY).replace(
                "name: wecom-maintenance", "name: Bad Name"
            ),
        ),
        (
            LiveConfig,
            f"sites: s.yaml\nhttp:\n  operator_token: {OPERATOR_TOKEN}\n  port: -1\n"
            f"mqtt:\n  password: {MQTT_PASSWORD}\n",
        ),
        (LiveConfig, "sites: s.yaml\nhttp:\n  operator_token: short secret\n"),
    ],
    ids=["bad port", "bad password", "bad route", "bad route name", "bad http port", "weak token"],
)
def test_a_config_error_next_to_a_secret_does_not_show_it(
    tmp_path: Path, model: type[ConsumerConfig | AlertsConfig | LiveConfig], text: str
) -> None:
    path = write(tmp_path / "c.yaml", text, 0o600)
    with pytest.raises(ConfigError) as caught:
        load_config_file(path, model)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid configuration\n")
    assert not [s for s in (*SECRETS, "short secret") if s in message], message


# --- never logged, never served ---------------------------------------------------------------


@pytest.mark.integration
async def test_live_healthz_shows_no_secret(mosquitto: MosquittoProcess, topic_prefix: str) -> None:
    config = LiveConfig.model_validate(
        {
            "sites": "unused.yaml",
            "mqtt": {
                "host": mosquitto.host,
                "port": mosquitto.port,
                "topic_prefix": topic_prefix,
                "username": "qihe-live",
                "password": MQTT_PASSWORD,
            },
            "http": {"port": 0, "operator_token": OPERATOR_TOKEN},
        }
    )
    directory = SiteDirectory.model_validate({"sites": [{"id": "qibin-taoyuan", "name": "桃园"}]})
    service = LiveService(config, directory)
    task = asyncio.create_task(service.run(), name="live-under-test")
    try:
        async with asyncio.timeout(10):
            await service.wait_listening()
            await service.broker_connected.wait()
        async with httpx.AsyncClient(base_url=service.url) as http:
            refused = await http.get("/healthz")
            answer = await http.get(
                "/healthz", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert refused.status_code == 401
    assert answer.status_code == 200
    assert answer.json()["broker_connected"] is True
    for response in (refused, answer):
        body = response.text
        assert not [s for s in SECRETS if s in body], body
        assert not [s for s in SECRETS if s in str(response.headers)]


@pytest.fixture
def caplog_all(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def _leaks(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records] + [caplog.text]
    return [line for line in lines if any(s in line for s in SECRETS)]


@pytest.mark.integration
def test_the_consumer_logs_no_secret_at_start(
    tmp_path: Path,
    mosquitto: MosquittoProcess,
    influxd: InfluxdProcess,
    influx_db: str,
    unique_name: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog_all: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("QIHE_MQTT_PASSWORD", MQTT_PASSWORD)
    text = (
        f"mqtt:\n  host: {mosquitto.host}\n  port: {mosquitto.port}\n"
        f"  username: qihe-central\n  password: ${{QIHE_MQTT_PASSWORD}}\n"
        f"  client_id: c-{unique_name}\n  topic_prefix: {topic_prefix}\n"
        f"influx:\n  api: v1\n  url: {influxd.url}\n  database: {influx_db}\n"
        f"  username: qihe-writer\n  password: {INFLUX_PASSWORD}\n"
    )
    config = load_config_file(write(tmp_path / "consumer.yaml", text, 0o640), ConsumerConfig)
    with Consumer(config):
        pass
    assert any("consuming" in r.getMessage() for r in caplog_all.records)
    assert _leaks(caplog_all) == []


@pytest.mark.integration
async def test_the_gateway_logs_no_secret_at_start(
    tmp_path: Path,
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    caplog_all: pytest.LogCaptureFixture,
) -> None:
    text = (
        f"site: qibin-taoyuan\ngateway: gw1\nstate_dir: {tmp_path}\n"
        f"broker:\n  host: {mosquitto.host}\n  port: {mosquitto.port}\n"
        f"  topic_prefix: {topic_prefix}\n  username: qibin-taoyuan-gw1\n"
        f"  password: {MQTT_PASSWORD}\n"
        "gpio:\n  - {pin: 17, kind: door, sensor: entrance}\n"
    )
    config = load_config_file(write(tmp_path / "gateway.yaml", text, 0o600), GatewayConfig)
    factory = MockFactory()
    try:
        gateway = Gateway(config, pin_factory=factory)
        async with running(gateway):
            await wait_until(lambda: gateway.stats().publisher.published >= 1)
    finally:
        factory.reset()
    assert any("starting" in r.getMessage() for r in caplog_all.records)
    assert _leaks(caplog_all) == []


def test_a_mistake_in_a_readable_file_holding_a_secret_is_named_first(tmp_path: Path) -> None:
    text = CONSUMER_YAML.replace("host: 127.0.0.1", "host: 127.0.0.1\n  port: 0", 1)
    path = write(tmp_path / "consumer.yaml", text, 0o644)
    with pytest.raises(ConfigError) as caught:
        load_config_file(path, ConsumerConfig)
    assert str(caught.value).splitlines() == [
        f"{path}: invalid configuration",
        "  mqtt.port: Input should be greater than or equal to 1 (got 0)",
    ]
