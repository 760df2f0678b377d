"""The command contract is what ``docs/mqtt.md`` ("Commands") says: its field tables are the
models' fields, its examples validate, and what it refuses is refused naming the field. Also the
gateway's memory of executed ids (``edge/commands.py``), without a broker."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from edge.commands import SeenCommands
from qihe.contract import (
    COMMAND_NAMES,
    REPLY_RESULTS,
    Command,
    CommandReply,
    PayloadError,
    TopicError,
    TopicTree,
    encode_payload,
    parse_command,
    parse_command_reply,
)
from tests.contract_doc import DOC

SECTION = DOC.split("\n## Commands\n", 1)[1]
EXAMPLES = re.findall(r"```(json command|json command_reply)\n(.*?)```", SECTION, flags=re.S)
MODELS: dict[str, type[BaseModel]] = {"command": Command, "reply": CommandReply}


def table(name: str) -> dict[str, tuple[str, bool]]:
    """Field → (type, optional) of the doc's ``<!-- command fields: NAME -->`` table."""
    body = re.search(rf"<!-- command fields: {name} -->\n((?:\|.*\n)+)", SECTION)
    assert body is not None, f"docs/mqtt.md has no command table {name}"
    fields = {}
    for row in body.group(1).splitlines()[2:]:
        names, kind, _meaning = (cell.strip() for cell in row.strip("|").split(" | ", 2))
        for field in re.findall(r"`([a-z_]+)`", names):
            fields[field] = (kind, "optional" in kind)
    return fields


def examples(tag: str) -> list[str]:
    return [body for kind, body in EXAMPLES if kind == tag]


def command(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(examples("json command")[0])
    document.update(changes)
    return {key: value for key, value in document.items() if value is not ...}


# The doc is the contract ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_doc_table_lists_exactly_the_models_fields_and_which_are_optional(name: str) -> None:
    documented = {field: optional for field, (_, optional) in table(name).items()}
    model = MODELS[name]
    fields = {
        info.alias or field: not info.is_required() and field not in ("schema_version",)
        for field, info in model.model_fields.items()
    }
    assert documented == fields


def test_the_doc_names_every_command_and_every_result() -> None:
    assert re.findall(r'"([a-z_]+)"', table("command")["command"][0]) == list(COMMAND_NAMES)
    assert re.findall(r'"([a-z_]+)"', table("reply")["result"][0]) == list(REPLY_RESULTS)
    explained = re.findall(r"^\| `([a-z_]+)` \| ", SECTION, flags=re.M)
    assert [r for r in explained if r in REPLY_RESULTS] == list(REPLY_RESULTS)


@pytest.mark.parametrize("example", examples("json command"))
def test_every_command_example_validates_and_round_trips(example: str) -> None:
    parsed = parse_command(example)
    assert parse_command(encode_payload(parsed)) == parsed


@pytest.mark.parametrize("example", examples("json command_reply"))
def test_every_reply_example_validates_and_round_trips(example: str) -> None:
    parsed = parse_command_reply(example)
    assert parse_command_reply(encode_payload(parsed)) == parsed


@given(
    name=st.sampled_from(COMMAND_NAMES),
    seconds=st.integers(1, 65535),
    lifetime=st.integers(1, 3600),
)
def test_every_command_the_doc_allows_is_accepted(name: str, seconds: int, lifetime: int) -> None:
    limit = {"identify": 255, "interval": 65535}.get(name)
    issued = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    document = command(
        command=name,
        seconds=... if limit is None else min(seconds, limit),
        issued_at="2026-11-28T02:00:00Z",
        expires_at=(issued + timedelta(seconds=lifetime)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    assert parse_command(json.dumps(document)).command == name


# What the doc refuses is refused, naming the field ----------------------------------------------


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        pytest.param(command(schema=...), "schema: Field required", id="no-schema"),
        pytest.param(command(schema=2), "schema", id="future-schema"),
        pytest.param(command(id="a/b"), "id: String should match", id="slash-in-id"),
        pytest.param(command(id=""), "id", id="empty-id"),
        pytest.param(command(command="explode"), "command: Input should be", id="unknown"),
        pytest.param(command(seconds="10"), "seconds: Input should be a valid integer", id="str"),
        pytest.param(command(seconds=True), "seconds", id="bool-seconds"),
        pytest.param(command(seconds=None), "seconds: Input should be left out", id="null"),
        pytest.param(command(seconds=...), "identify needs seconds", id="identify-no-seconds"),
        pytest.param(command(seconds=256), "identify takes 1-255 seconds", id="identify-256"),
        pytest.param(command(seconds=0), "seconds", id="zero-seconds"),
        pytest.param(command(command="ping"), "ping takes no seconds", id="ping-seconds"),
        pytest.param(command(command="interval", seconds=65536), "seconds", id="interval-over-u16"),
        pytest.param(
            command(expires_at="2026-11-28T02:00:00Z"), "expires_at must be after", id="at-issue"
        ),
        pytest.param(
            command(expires_at="2026-11-28T03:00:01Z"), "at most one hour", id="over-an-hour"
        ),
        pytest.param(command(issued_at=1796565013), "issued_at", id="unix-time"),
        pytest.param(command(expires_at="2026-11-28T02:00:30"), "expires_at", id="no-offset"),
        pytest.param(command(by="王工"), "by: String should match", id="non-ascii-by"),
        pytest.param(command(extra=1), "extra: Extra inputs are not permitted", id="extra"),
    ],
)
def test_bad_commands_are_refused_naming_what_is_wrong(
    document: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(PayloadError, match=re.escape(complaint)):
        parse_command(json.dumps(document, ensure_ascii=False))


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        pytest.param({"result": "maybe"}, "result", id="unknown-result"),
        pytest.param({"detail": ""}, "detail", id="empty-detail"),
        pytest.param({"detail": "two\nlines"}, "detail", id="newline-in-detail"),
        pytest.param({"detail": "x" * 201}, "detail", id="long-detail"),
        pytest.param({"device": "a b"}, "device", id="space-in-device"),
        pytest.param({"done_at": None}, "done_at", id="null-done"),
    ],
)
def test_bad_replies_are_refused_naming_what_is_wrong(
    change: dict[str, Any], complaint: str
) -> None:
    document = json.loads(examples("json command_reply")[0]) | change
    with pytest.raises(PayloadError, match=complaint):
        parse_command_reply(json.dumps(document))


@pytest.mark.parametrize("payload", [b"", b"not json", b"[]", b"\xff\xfe", b'{"schema": 1}'])
def test_payloads_that_are_no_command_at_all_are_refused(payload: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_command(payload)


def test_a_gateway_takes_only_its_own_command_topics() -> None:
    tree = TopicTree("qihe")
    assert tree.command_filter("qibin-taoyuan", "gw1") == "qihe/v1/qibin-taoyuan/gw1/cmd/+"
    topic = tree.command("qibin-taoyuan", "gw1", "board-a")
    assert tree.parse_command(topic, "qibin-taoyuan", "gw1") == "board-a"
    for other in (
        tree.command("qibin-taoyuan", "gw2", "board-a"),
        "qihe/v1/qibin-taoyuan/gw1/cmd_reply/board-a",
        "qihe/v1/qibin-taoyuan/gw1/cmd/a/b",
        "qihe/v1/qibin-taoyuan/gw1/cmd/",
    ):
        with pytest.raises(TopicError):
            tree.parse_command(other, "qibin-taoyuan", "gw1")


# The gateway's memory of executed ids ---------------------------------------------------------

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def test_executed_ids_survive_a_restart_until_they_expire(tmp_path: Path) -> None:
    seen = SeenCommands(tmp_path / "seen.json")
    seen.remember("a1", NOW + timedelta(seconds=30), NOW)
    seen.remember("b2", NOW + timedelta(minutes=10), NOW)
    again = SeenCommands(tmp_path / "seen.json")
    again.load(NOW + timedelta(seconds=10))
    assert "a1" in again and "b2" in again
    later = SeenCommands(tmp_path / "seen.json")
    later.load(NOW + timedelta(minutes=1))  # a1 expired: a redelivery is refused as expired
    assert "a1" not in later and "b2" in later


def test_the_memory_of_executed_ids_is_bounded_forgetting_the_soonest_to_expire(
    tmp_path: Path,
) -> None:
    seen = SeenCommands(tmp_path / "seen.json", limit=3)
    for n in range(5):  # each expires sooner than the one before
        seen.remember(f"id{n}", NOW + timedelta(minutes=10 - n), NOW)
    # The one just executed is always kept; of the others those that expire last.
    assert [f"id{n}" in seen for n in range(5)] == [True, True, False, False, True]
    assert len(json.loads((tmp_path / "seen.json").read_text())) == 3


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"a1": "yesterday"}', '{"a1": 5}'])
def test_an_unreadable_memory_is_logged_and_started_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    (tmp_path / "seen.json").write_text(content)
    seen = SeenCommands(tmp_path / "seen.json")
    seen.load(NOW)
    assert "a1" not in seen
    assert any("cannot read the executed commands" in r.getMessage() for r in caplog.records)
    assert all(r.levelno == logging.WARNING for r in caplog.records)
