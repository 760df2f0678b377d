"""Remote configuration without a broker: the push payload and the report as docs/mqtt.md
states them, the hash, the gateway's checks of a pushed config and the CLI's refusals."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, SecretStr

from central.provision import gateway_acl, service_acl
from central.push_config import prepare_document
from edge.config import GatewayConfig
from edge.remote_config import RemoteConfigError, check_document, one_line
from qihe.configfile import ConfigError, secret_keys
from qihe.contract import (
    MAX_PUSH_BYTES,
    ConfigPush,
    ConfigReport,
    ConfigState,
    PayloadError,
    TopicTree,
    config_hash,
    encode_payload,
    parse_config_push,
)
from qihe_cli.main import main
from tests.contract_doc import DOC, model_fields

RUNNING: dict[str, Any] = {
    "site": "qibin-taoyuan",
    "gateway": "gw1",
    "state_dir": "/var/lib/qihe",
    "broker": {"host": "mqtt.example.org", "port": 8883, "tls": True, "username": "gw1"},
    "serial": [{"path": "/dev/serial/by-id/usb-qihe_board-a", "device": "board-a"}],
}


def pushed(**changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(RUNNING)), **changes}


def running() -> GatewayConfig:
    return GatewayConfig.model_validate(RUNNING)


# The contract, as docs/mqtt.md states it ---------------------------------------------------------

PUSH_EXAMPLES = re.findall(r"```json push\n(.*?)```", DOC, flags=re.S)


def doc_table(marker: str) -> dict[str, bool]:
    """A table of docs/mqtt.md after ``<!-- {marker} -->``: field → optional."""
    body = DOC.split(f"<!-- {marker} -->\n", 1)[1].split("\n\n", 1)[0]
    fields = {}
    for row in body.splitlines()[2:]:
        names, kind, _ = (cell.strip() for cell in row.strip("|").split(" | ", 2))
        for name in re.findall(r"`([a-z_]+)`", names):
            fields[name] = "optional" in kind
    return fields


def wire_fields(model: type[BaseModel]) -> dict[str, bool]:
    return {
        info.alias or name: not info.is_required() and name != "schema_version"
        for name, info in model.model_fields.items()
    }


@pytest.mark.parametrize(
    ("marker", "model"), [("config fields: push", ConfigPush), ("fields: report", ConfigReport)]
)
def test_the_doc_lists_exactly_the_fields_of_a_push_and_of_a_report(
    marker: str, model: type[BaseModel]
) -> None:
    assert doc_table(marker) == wire_fields(model)
    if model is ConfigReport:  # the contract's own reader of the doc sees the same table
        assert {f.name: f.optional for f in model_fields("report")} == wire_fields(model)


@pytest.mark.parametrize("example", PUSH_EXAMPLES)
def test_every_push_example_validates_and_round_trips(example: str) -> None:
    push = parse_config_push(example)
    assert parse_config_push(encode_payload(push)) == push
    check_document(push.config, environ=None)  # and its config is a gateway config


def test_the_doc_states_the_bound_of_a_push() -> None:
    assert f"a push over {MAX_PUSH_BYTES} bytes is refused" in DOC


def test_the_doc_lists_every_state_of_a_report() -> None:
    table = DOC.split("<!-- fields: report -->\n", 1)[1]
    row = table.split("| `state` | ", 1)[1].split(" | ", 1)[0]
    assert tuple(re.findall(r'"([a-z_]+)"', row)) == typing.get_args(ConfigState)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(b"not json", "payload: Invalid JSON", id="not-json"),
        pytest.param(b"[]", "payload: Input should be an object", id="an-array"),
        pytest.param(
            json.dumps({**json.loads(PUSH_EXAMPLES[0]), "config": []}).encode(),
            "config: Input should be an object (got an array)",
            id="config-not-an-object",
        ),
        pytest.param(
            json.dumps({**json.loads(PUSH_EXAMPLES[0]), "colour": "red"}).encode(),
            "colour: Extra inputs are not permitted",
            id="unknown-field",
        ),
        pytest.param(
            json.dumps({**json.loads(PUSH_EXAMPLES[0]), "id": "a/b"}).encode(),
            "id: String should match pattern",
            id="hostile-id",
        ),
        pytest.param(
            b" " * (MAX_PUSH_BYTES + 1),
            f"payload: {MAX_PUSH_BYTES + 1} bytes, over the {MAX_PUSH_BYTES}",
            id="too-large",
        ),
    ],
)
def test_a_bad_push_is_refused_naming_what_is_wrong(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as refused:
        parse_config_push(payload)
    assert str(refused.value).startswith(reason)


# The hash -----------------------------------------------------------------------------------------


def test_the_hash_ignores_key_order_and_layout() -> None:
    reordered = dict(reversed(list(RUNNING.items())))
    text = yaml.safe_dump(RUNNING, default_flow_style=True)
    assert config_hash(reordered) == config_hash(yaml.safe_load(text)) == config_hash(RUNNING)
    assert config_hash(pushed(link_report_interval=30)) != config_hash(RUNNING)


def test_the_hash_depends_on_no_secret() -> None:
    one = pushed(broker={**RUNNING["broker"], "password": "hunter2"})
    other = pushed(broker={**RUNNING["broker"], "password": "correct horse"})
    referenced = pushed(broker={**RUNNING["broker"], "password": "${QIHE_MQTT_PASSWORD}"})
    assert config_hash(one) == config_hash(other) != config_hash(referenced)


# The gateway's checks -----------------------------------------------------------------------------


def test_a_secret_value_is_refused_naming_its_key_never_its_value() -> None:
    document = pushed(broker={**RUNNING["broker"], "password": "hunter2"})
    with pytest.raises(RemoteConfigError) as refused:
        check_document(document, environ={}, running=running())
    assert "broker.password" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_every_secret_field_of_the_gateway_config_is_caught_by_its_name() -> None:
    """The refusal goes by key names: a SecretStr field under any other name would slip by."""

    def secret_fields(model: type[BaseModel], where: str = "") -> list[str]:
        found = []
        for name, info in model.model_fields.items():
            for arg in [info.annotation, *typing.get_args(info.annotation)]:
                for inner in [arg, *typing.get_args(arg)]:
                    if inner is SecretStr:
                        found.append(f"{where}{name}")
                    elif isinstance(inner, type) and issubclass(inner, BaseModel):
                        found += secret_fields(inner, f"{where}{name}.")
        return found

    fields = sorted(set(secret_fields(GatewayConfig)))
    assert fields  # the broker's password, at least
    for path in fields:
        document: dict[str, Any] = {}
        node = document
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = "a literal"
        assert secret_keys(document) == [path]


def test_references_are_filled_from_the_sites_environment_or_kept_away_from_it() -> None:
    document = pushed(broker={**RUNNING["broker"], "password": "${QIHE_MQTT_PASSWORD}"})
    at_site = check_document(document, environ={"QIHE_MQTT_PASSWORD": "s3cret"})
    away = check_document(document, environ=None)
    assert at_site.broker.password is not None and away.broker.password is not None
    assert at_site.broker.password.get_secret_value() == "s3cret"
    assert away.broker.password.get_secret_value() == "${QIHE_MQTT_PASSWORD}"
    with pytest.raises(RemoteConfigError, match="environment variable QIHE_MQTT_PASSWORD is not"):
        check_document(document, environ={})


@pytest.mark.parametrize(
    ("changes", "moved"),
    [
        ({"site": "qibin-other"}, "site"),
        ({"gateway": "gw2"}, "gateway"),
        ({"state_dir": "/tmp/elsewhere"}, "state_dir"),
        ({"outbox": {"path": "other.sqlite3"}}, "outbox.path"),
        ({"broker": {**RUNNING["broker"], "topic_prefix": "city"}}, "broker.topic_prefix"),
    ],
)
def test_a_push_may_not_move_the_gateway_or_its_outbox(changes: dict[str, Any], moved: str) -> None:
    with pytest.raises(RemoteConfigError) as refused:
        check_document(pushed(**changes), environ={}, running=running())
    assert str(refused.value).startswith(f"不能远程更改 cannot be changed remotely: {moved} (")


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (["not", "a", "mapping"], "配置无效 invalid config: expected a mapping of settings"),
        (
            pushed(link_report_interval="often", colour="red"),
            "配置无效 invalid config: link_report_interval: Input should be a valid timedelta",
        ),
        (pushed(serial=[]), "配置无效 invalid config: (top level): Value error, no sources"),
    ],
)
def test_an_invalid_config_is_refused_in_one_line(document: object, reason: str) -> None:
    with pytest.raises(RemoteConfigError) as refused:
        check_document(document, environ={}, running=running())
    assert str(refused.value).startswith(reason)
    assert "\n" not in str(refused.value)


def test_one_line_flattens_and_bounds_text() -> None:
    assert one_line("a\n  b\r\n\tc") == "a; b; c"
    assert one_line("x" * 400) == "x" * 299 + "…"
    assert one_line("\x00\x1b") == "?"


# The CLI's refusals, before anything is sent --------------------------------------------------


def write(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_cli_refuses_a_file_with_a_secret_before_sending(tmp_path: Path) -> None:
    file = write(tmp_path / "gw.yaml", pushed(broker={**RUNNING["broker"], "password": "x1"}))
    with pytest.raises(ConfigError, match=r"carries no secrets: broker\.password"):
        prepare_document(file, version=None, validate=lambda d: None)


def test_the_cli_labels_and_checks_the_file_as_the_gateway_will(tmp_path: Path) -> None:
    file = write(tmp_path / "gw.yaml", pushed())
    calls: list[object] = []
    document = prepare_document(file, version="2026-11-28a", validate=calls.append)
    assert document["version"] == "2026-11-28a"
    assert calls == [document]


def test_qihe_gateway_push_config_exits_2_on_a_bad_file_without_a_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    central = write(tmp_path / "ops.yaml", {"mqtt": {"host": "127.0.0.1", "port": 1}})
    bad = write(tmp_path / "gw.yaml", pushed(link_report_interval="often"))
    code = main(["gateway", "push-config", "qibin-taoyuan/gw1", str(bad), "--config", str(central)])
    assert code == 2
    err = capsys.readouterr().err
    assert "配置无效 invalid config: link_report_interval" in err
    hostile = main(["gateway", "push-config", "a/b/c", str(bad), "--config", str(central)])
    assert hostile == 2
    assert "expected SITE/GATEWAY" in capsys.readouterr().err


# Who may push --------------------------------------------------------------------------------


def test_only_the_operator_writes_a_config_and_only_its_gateway_reads_it() -> None:
    topic = TopicTree("qihe").config("qibin-taoyuan", "gw1")
    assert ("read", topic) in gateway_acl("qibin-taoyuan", "gw1", prefix="qihe").topics
    assert ("write", "qihe/v1/+/+/config") in service_acl("ops", "operator", prefix="qihe").topics
    for role in ("consumer", "live", "alerts"):
        writes = [t for a, t in service_acl("svc", role, prefix="qihe").topics if "write" in a]
        assert not any(t.endswith("/config") for t in writes)
