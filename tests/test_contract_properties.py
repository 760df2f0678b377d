"""The wire contract accepts exactly what ``docs/mqtt.md`` allows, both ways.

Payloads are generated from the doc's field tables (``tests/contract_doc.py``): every payload
the doc allows is accepted and round-trips; one field of a refused value (another JSON type,
out of range, ``null``), a missing required field, an unknown field, or a wrong or missing
``schema`` is refused, naming the field.
"""

from __future__ import annotations

import json
import re
import typing
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from qihe.contract import (
    AirReading,
    BatteryReading,
    DeviceReading,
    DoorReading,
    FaultReading,
    GatewayStatus,
    HeartbeatReading,
    LinkReading,
    MotionReading,
    OutboxReading,
    PayloadError,
    PeopleReading,
    ReadingBatch,
    SeatReading,
    SystemReading,
    encode_payload,
    parse_batch,
    parse_reading,
    parse_status,
)
from qihe.contract.payloads import NOT_GIVEN
from tests.contract_doc import (
    DOC,
    READING_KINDS,
    model_fields,
    payloads,
    refused_values,
    wrong_field_cases,
)

READING_MODELS: dict[str, type[BaseModel]] = {
    "seat": SeatReading,
    "people": PeopleReading,
    "door": DoorReading,
    "motion": MotionReading,
    "heartbeat": HeartbeatReading,
    "fault": FaultReading,
    "device": DeviceReading,
    "link": LinkReading,
    "outbox": OutboxReading,
    "system": SystemReading,
    "air": AirReading,
    "battery": BatteryReading,
}
#: An item of ``outbox.refusals``, as the model declares it.
REFUSAL_MODEL: type[BaseModel] = typing.get_args(OutboxReading.model_fields["refusals"].annotation)[
    0
]
MODELS: dict[str, type[BaseModel]] = {
    **READING_MODELS,
    "status": GatewayStatus,
    "batch": ReadingBatch,
    "refusal": REFUSAL_MODEL,
}


def parse(name: str, document: dict[str, Any]) -> BaseModel:
    payload = json.dumps(document, ensure_ascii=False)
    if name == "status":
        return parse_status(payload)
    if name == "batch":
        return parse_batch(payload)
    return parse_reading(payload)


def where(name: str, field: str) -> str:
    """How a refusal names a field of ``name``'s table."""
    return field if name in ("status", "batch") else f"{name}.{field}"


def names(reason: str, name: str, field: str) -> bool:
    """The refusal starts with the field (or an item of it, for an array)."""
    return reason.startswith((f"{where(name, field)}: ", f"{where(name, field)}."))


def wire_fields(model: type[BaseModel]) -> dict[str, bool]:
    """Each field as the wire names it → whether a payload may leave it out."""
    optional = {}
    for name, info in model.model_fields.items():
        # A reading's kind has a default in Python but is the tag that picks the model.
        tag = name == "kind" and model in READING_MODELS.values()
        optional[info.alias or name] = (
            not info.is_required() and info.default is not NOT_GIVEN and not tag
        )
    return optional


# The doc's tables are the models' fields ---------------------------------------------------


def test_the_doc_has_a_field_table_for_every_reading_kind() -> None:
    assert set(READING_KINDS) == set(READING_MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_doc_table_lists_exactly_the_models_fields_and_which_are_optional(name: str) -> None:
    documented = {field.name: field.optional for field in model_fields(name)}
    assert documented == wire_fields(MODELS[name])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_default_the_doc_names_is_the_models(name: str) -> None:
    for field in model_fields(name):
        info = MODELS[name].model_fields[field.name if field.name != "schema" else "schema_version"]
        if field.default is not None:
            default = info.default
            as_json = list(default) if isinstance(default, tuple) else default
            assert json.loads(field.default) == as_json, field.name


# Every payload the doc allows is accepted ---------------------------------------------------


def assert_round_trip(name: str, document: dict[str, Any], model: BaseModel) -> None:
    assert parse(name, json.loads(encode_payload(model))) == model
    encoded = json.loads(encode_payload(model))
    for key, value in document.items():
        if key == "ts":
            assert datetime.fromisoformat(encoded[key]) == datetime.fromisoformat(value)
        elif isinstance(value, dict):  # a nested object (a status's config): as its model reads it
            nested = getattr(model, key)
            assert type(nested).model_validate_json(json.dumps(value)) == nested, key
        elif key != "readings":
            assert encoded[key] == value, key


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(READING_KINDS).flatmap(lambda kind: st.tuples(st.just(kind), payloads(kind)))
)
def test_every_reading_the_doc_allows_is_accepted_and_round_trips(
    case: tuple[str, dict[str, Any]],
) -> None:
    kind, document = case
    reading = parse(kind, document)
    assert type(reading) is READING_MODELS[kind]
    assert_round_trip(kind, document, reading)


@settings(max_examples=100, deadline=None)
@given(payloads("status"))
def test_every_status_the_doc_allows_is_accepted_and_round_trips(document: dict[str, Any]) -> None:
    assert_round_trip("status", document, parse("status", document))


@settings(max_examples=100, deadline=None)
@given(payloads("batch"))
def test_every_batch_the_doc_allows_is_accepted_and_round_trips(document: dict[str, Any]) -> None:
    batch = parse("batch", document)
    assert isinstance(batch, ReadingBatch)
    assert_round_trip("batch", document, batch)
    assert len(batch.readings) == len(document["readings"])


# Everything else is refused, naming the field -------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_reading_with_one_refused_value_is_refused_naming_the_field(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(READING_KINDS))
    document = data.draw(payloads(kind))
    field, value = data.draw(st.sampled_from(wrong_field_cases(kind)))
    document[field] = value
    with pytest.raises(PayloadError) as refused:
        parse(kind, document)
    assert names(str(refused.value), kind, field), str(refused.value)


DOC_EXAMPLES = re.findall(r"```json (reading|status|batch)\n(.*?)```", DOC, flags=re.S)


def example(name: str) -> dict[str, Any]:
    """The doc's own example of a reading kind, a status or a batch."""
    for tag, body in DOC_EXAMPLES:
        document: dict[str, Any] = json.loads(body)
        if tag == name or (tag == "reading" and document["kind"] == name):
            return document
    raise AssertionError(f"docs/mqtt.md has no example of {name}")


def test_every_refused_value_of_every_field_is_refused_in_the_docs_examples() -> None:
    tables = [*READING_KINDS, "status", "batch"]
    cases = [(name, field, value) for name in tables for field, value in wrong_field_cases(name)]
    refused = []
    for name, field, value in cases:
        try:
            parse(name, {**example(name), field: value})
        except PayloadError as exc:
            if names(str(exc), name, field):
                refused.append((name, field))
    assert len(refused) == len(cases)


@pytest.mark.parametrize("name", ["status", "batch"])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_status_or_batch_with_one_refused_value_is_refused_naming_the_field(
    name: str, data: st.DataObject
) -> None:
    document = data.draw(payloads(name))
    field, value = data.draw(st.sampled_from(wrong_field_cases(name)))
    document[field] = value
    with pytest.raises(PayloadError) as refused:
        parse(name, document)
    assert names(str(refused.value), name, field), str(refused.value)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_refusal_item_with_one_refused_value_refuses_the_outbox_reading(
    data: st.DataObject,
) -> None:
    document = data.draw(payloads("outbox"))
    item = data.draw(payloads("refusal"))
    field, value = data.draw(st.sampled_from(wrong_field_cases("refusal")))
    document["refusals"] = [{**item, field: value}]
    with pytest.raises(PayloadError) as refused:
        parse("outbox", document)
    assert names(str(refused.value), "outbox", f"refusals.0.{field}"), str(refused.value)


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_a_payload_without_a_required_field_is_refused_naming_it(
    name: str, data: st.DataObject
) -> None:
    required = [f.name for f in model_fields(name) if not f.optional]
    field = data.draw(st.sampled_from(required))
    document = data.draw(payloads(name))
    if name == "refusal":
        outbox = data.draw(payloads("outbox"))
        del document[field]
        outbox["refusals"] = [document]
        name, document, field = "outbox", outbox, f"refusals.0.{field}"
    else:
        del document[field]
    with pytest.raises(PayloadError) as refused:
        parse(name, document)
    reason = str(refused.value)
    if field == "kind" and name in READING_MODELS:
        assert reason == "payload: Unable to extract tag using discriminator 'kind'"
    else:
        assert reason.startswith(f"{where(name, field)}: Field required"), reason


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_payload_with_an_unknown_field_is_refused_naming_it(
    name: str, data: st.DataObject
) -> None:
    document = data.draw(payloads(name))
    if name == "refusal":
        outbox = data.draw(payloads("outbox"))
        outbox["refusals"] = [{**document, "colour": "red"}]
        name, document, field = "outbox", outbox, "refusals.0.colour"
    else:
        document["colour"] = "red"
        field = "colour"
    with pytest.raises(PayloadError) as refused:
        parse(name, document)
    assert str(refused.value) == f"{where(name, field)}: Extra inputs are not permitted"


@settings(max_examples=50, deadline=None)
@given(payloads("batch"), st.sampled_from(["schema", "occupied-as-text", "extra"]))
def test_a_batch_with_one_bad_reading_is_refused_whole(
    document: dict[str, Any], fault: str
) -> None:
    reading = document["readings"][-1]
    match fault:
        case "schema":
            del reading["schema"]
        case "occupied-as-text":
            reading.update(kind="seat", occupied="true")
        case _:
            reading["colour"] = "red"
    with pytest.raises(PayloadError, match=rf"^readings\.{len(document['readings']) - 1}\."):
        parse("batch", document)


def test_a_batch_of_more_than_1000_readings_is_refused() -> None:
    batch = {**example("batch"), "readings": [example("batch")["readings"][0]] * 1001}
    with pytest.raises(PayloadError) as refused:
        parse("batch", batch)
    assert str(refused.value) == (
        "readings: Tuple should have at most 1000 items after validation, not 1001"
    )


# The fuzzed cases of issue 13, with the reasons a dead letter carries ------------------------

SEAT = {"schema": 1, "kind": "seat", "site": "qibin-taoyuan", "gateway": "gw1",
        "device": "board-a", "sensor": "board-a.3", "ts": "2026-11-28T01:02:03Z", "seq": 812,
        "occupied": True}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("occupied", "true", "seat.occupied: Input should be a valid boolean (got a string)"),
        ("occupied", 1, "seat.occupied: Input should be a valid boolean (got an integer)"),
        ("seq", "1472", "seat.seq: Input should be a valid integer (got a string)"),
        ("seq", 1472.0, "seat.seq: Input should be a valid integer (got a number)"),
        ("seq", True, "seat.seq: Input should be a valid integer (got a boolean)"),
        ("seq", None, "seat.seq: Input should be left out, not null"),
        (
            "ts",
            1796565013,
            "seat.ts: Input should be an RFC 3339 timestamp string (got an integer)",
        ),
        ("schema", True, "seat.schema: Input should be the integer 1 (got a boolean)"),
        ("schema", 1.0, "seat.schema: Input should be the integer 1 (got a number)"),
        ("schema", 2, "seat.schema: Input should be 1, the only schema version"),
        ("schema", ..., "seat.schema: Field required"),
    ],
)
def test_the_issues_wrong_typed_payloads_are_refused_with_the_field_and_type(
    field: str, value: Any, reason: str
) -> None:
    document = {key: v for key, v in SEAT.items() if key != field}
    if value is not ...:
        document[field] = value
    with pytest.raises(PayloadError) as refused:
        parse_reading(json.dumps(document))
    assert str(refused.value) == reason


@pytest.mark.parametrize("value", [v for v in refused_values("timestamp") if isinstance(v, str)])
def test_a_timestamp_in_another_form_is_refused(value: str) -> None:
    with pytest.raises(PayloadError, match=r"^seat\.ts: Input should be"):
        parse_reading(json.dumps({**SEAT, "ts": value}))


def test_python_code_may_leave_out_schema_and_pass_none_for_an_absent_field() -> None:
    at = datetime.fromisoformat("2026-11-28T01:02:03Z")
    seat = SeatReading(
        site="a", gateway="g", device="d", sensor="d.1", seq=None, ts=at, occupied=True
    )
    encoded = json.loads(encode_payload(seat))
    assert (encoded["schema"], "seq" in encoded) == (1, False)
