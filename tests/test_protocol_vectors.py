"""docs/protocol.md is the source of truth: its tables and test vectors must match the codec.

The vectors are parsed from the document, not copied here. Each valid vector is
checked both ways through the codec, and its body is also taken apart with an
independent COBS decoder and a bit-by-bit CRC built from the parameters the
document states, so the spec is not just the codec agreeing with itself.
"""

from __future__ import annotations

import ast
import re
import typing
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge import errors
from firmware_bridge.codec import FrameDecoder, encode
from firmware_bridge.crc import crc16_ccitt_false
from firmware_bridge.errors import FrameError
from firmware_bridge.messages import (
    PROTOCOL_VERSION,
    Ack,
    Door,
    Fault,
    FaultCode,
    Frame,
    Heartbeat,
    Hello,
    Identify,
    Message,
    MessageType,
    Nack,
    NackReason,
    People,
    Ping,
    Reboot,
    ReportAck,
    Resend,
    Seat,
    SeatPresence,
    SensorKind,
    SensorRef,
    SetReportInterval,
    Window,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
TEXT = DOC.read_text(encoding="utf-8")

MESSAGE_CLASSES: tuple[type[Any], ...] = typing.get_args(Message)


# -- reading the document ---------------------------------------------------------


def section(heading: str) -> str:
    """The text under ``heading`` (a whole line such as ``### Valid frames``), up to the
    next heading of the same or a higher level."""
    lines = TEXT.splitlines()
    level = len(heading) - len(heading.lstrip("#"))
    try:
        start = lines.index(heading) + 1
    except ValueError:
        raise AssertionError(f"docs/protocol.md has no heading {heading!r}") from None
    body = []
    for line in lines[start:]:
        hashes = len(line) - len(line.lstrip("#"))
        if 0 < hashes <= level and line[hashes : hashes + 1] == " ":
            break
        body.append(line)
    return "\n".join(body)


def table(heading: str) -> list[dict[str, str]]:
    """The first markdown table under ``heading``, as one dict per row keyed by header cell.

    Backticks around a cell are dropped.
    """
    rows: list[list[str]] = []
    lines = iter(section(heading).splitlines())
    for line in lines:
        if line.startswith("|"):
            rows.append([cell.strip().strip("`") for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    # A stray blank line would otherwise cut the table short without anyone noticing.
    assert not any(line.startswith("|") for line in lines), f"split table under {heading!r}"
    assert len(rows) >= 3, f"no table with rows under {heading!r}"
    header, separator, *data = rows
    assert all(set(cell) <= set("-: ") for cell in separator), f"bad table under {heading!r}"
    for row in data:
        assert len(row) == len(header), f"row {row!r} under {heading!r} has the wrong cell count"
    return [dict(zip(header, row, strict=True)) for row in data]


def wire(hex_text: str) -> bytes:
    assert re.fullmatch(r"[0-9A-F]{2}( [0-9A-F]{2})*", hex_text), f"bad hex {hex_text!r}"
    return bytes.fromhex(hex_text)


# The frame column: Python constructor syntax over these names, nothing else.
_CONSTRUCTORS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        Frame,
        SensorRef,
        Hello,
        Seat,
        People,
        Door,
        Heartbeat,
        Fault,
        Ping,
        SetReportInterval,
        Identify,
        Reboot,
        ReportAck,
        Resend,
        Ack,
        Nack,
        Window,
        SeatPresence,
    )
}
_ENUMS: dict[str, type[IntEnum]] = {e.__name__: e for e in (SensorKind, FaultCode, NackReason)}


def _build(node: ast.expr) -> Any:
    match node:
        case ast.Constant(value=bool() | int() | str() as value):
            return value
        case ast.Tuple(elts=elements):
            return tuple(_build(element) for element in elements)
        case ast.Attribute(value=ast.Name(id=enum_name), attr=member) if enum_name in _ENUMS:
            return _ENUMS[enum_name][member]
        case ast.Call(func=ast.Name(id=name), args=args, keywords=keywords) if (
            name in _CONSTRUCTORS and all(k.arg is not None for k in keywords)
        ):
            kwargs = {k.arg: _build(k.value) for k in keywords if k.arg is not None}
            return _CONSTRUCTORS[name](*(_build(a) for a in args), **kwargs)
    raise ValueError(f"unsupported syntax in a frame description: {ast.unparse(node)}")


def parse_frame(text: str) -> Frame:
    frame = _build(ast.parse(text, mode="eval").body)
    assert isinstance(frame, Frame), f"{text!r} does not describe a Frame"
    return frame


@dataclass(frozen=True)
class ValidVector:
    name: str
    frame: Frame
    wire: bytes


@dataclass(frozen=True)
class MalformedVector:
    name: str
    wire: bytes
    kind: str


VALID = [
    ValidVector(row["name"], parse_frame(row["frame"]), wire(row["wire bytes (hex)"]))
    for row in table("### Valid frames")
]
MALFORMED = [
    MalformedVector(row["name"], wire(row["wire bytes (hex)"]), row["error kind"])
    for row in table("### Malformed frames")
]


# -- independent reference: COBS decoder and CRC from the document's parameters --------


def crc_parameters() -> dict[str, str]:
    return {row["parameter"]: row["value"] for row in table("### CRC")}


def reference_crc(data: bytes) -> int:
    """Bit by bit, with the parameters the spec states (non-reflected only)."""
    params = crc_parameters()
    assert params["width"] == "16"
    assert params["refin"] == params["refout"] == "false"
    poly, crc, xorout = (int(params[key], 16) for key in ("poly", "init", "xorout"))
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ poly) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc ^ xorout


def reference_cobs_decode(encoded: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(encoded):
        code = encoded[i]
        assert code != 0 and i + code <= len(encoded), "not valid COBS"
        out += encoded[i + 1 : i + code]
        i += code
        if code != 0xFF and i < len(encoded):
            out.append(0)
    return bytes(out)


def body_of(vector_wire: bytes) -> bytes:
    assert vector_wire[0] == 0 and vector_wire[-1] == 0, "a frame starts and ends with 00"
    assert 0 not in vector_wire[1:-1], "a frame has no 00 between its delimiters"
    return reference_cobs_decode(vector_wire[1:-1])


# -- the vectors -----------------------------------------------------------------------


def test_vector_names_are_unique() -> None:
    names = [v.name for v in VALID] + [v.name for v in MALFORMED]
    assert len(names) == len(set(names))


def test_every_message_type_has_a_valid_vector() -> None:
    covered = {type(v.frame.message) for v in VALID}
    missing = [cls.__name__ for cls in MESSAGE_CLASSES if cls not in covered]
    assert missing == []
    assert len(MESSAGE_CLASSES) == len(MessageType)


def test_valid_vectors_include_the_edge_cases() -> None:
    assert any(v.frame.seq == 0xFFFF for v in VALID), "seq 0xFFFF"
    assert any(
        isinstance(v.frame.message, Hello) and len(v.frame.message.sensors) >= 2 for v in VALID
    ), "a HELLO with several sensors"
    assert any(0 in body_of(v.wire)[4:-2] for v in VALID), "a payload with zero bytes"
    assert any(isinstance(v.frame.message, Seat) and not v.frame.message.occupied for v in VALID), (
        "a free seat"
    )


def test_malformed_vectors_cover_every_kind_a_lone_frame_can_have() -> None:
    kinds = {v.kind for v in MALFORMED}
    assert kinds >= {"cobs", "too_short", "crc", "version", "unknown_type", "payload"}


@pytest.mark.parametrize("vector", VALID, ids=[v.name for v in VALID])
def test_valid_vector_encodes_to_its_wire_bytes(vector: ValidVector) -> None:
    assert encode(vector.frame).hex(" ").upper() == vector.wire.hex(" ").upper()


@pytest.mark.parametrize("vector", VALID, ids=[v.name for v in VALID])
def test_valid_vector_decodes_to_its_frame(vector: ValidVector) -> None:
    assert FrameDecoder().feed(vector.wire) == [vector.frame]
    decoder = FrameDecoder()
    assert decoder.feed(vector.wire[:1]) == []  # the leading delimiter ends nothing
    assert decoder.feed(vector.wire[1:]) == [vector.frame]
    assert decoder.pending == 0


@pytest.mark.parametrize("vector", VALID, ids=[v.name for v in VALID])
def test_valid_vector_body_matches_the_layout_in_the_spec(vector: ValidVector) -> None:
    body = body_of(vector.wire)
    type_bytes = {row["class"]: int(row["type"], 16) for row in table("### Message types")}
    message = vector.frame.message
    assert body[0] == vector.frame.version == PROTOCOL_VERSION
    assert body[1] == type_bytes[type(message).__name__]
    assert body[2:4] == vector.frame.seq.to_bytes(2, "big")
    assert body[-2:] == reference_crc(body[:-2]).to_bytes(2, "big")
    assert len(body[4:-2]) == spec_payload_length(message)


def spec_payload_length(message: Message) -> int:
    """The payload length column of the message type table, evaluated for ``message``."""
    lengths = {row["class"]: row["payload bytes"] for row in table("### Message types")}
    text = lengths[type(message).__name__]
    if isinstance(message, Hello):
        assert text == "11 + L + 3·N"
        return 11 + len(message.device_id) + 3 * len(message.sensors)
    return int(text)


@pytest.mark.parametrize("vector", MALFORMED, ids=[v.name for v in MALFORMED])
def test_malformed_vector_is_reported_as_its_kind(vector: MalformedVector) -> None:
    results = FrameDecoder().feed(vector.wire)
    assert len(results) == 1
    (error,) = results
    assert isinstance(error, FrameError)
    assert error.kind == vector.kind


# -- the document's tables against the code ------------------------------------------


def test_message_type_table_matches_the_code() -> None:
    rows = table("### Message types")
    assert {row["message"]: int(row["type"], 16) for row in rows} == {
        t.name: t.value for t in MessageType
    }
    assert {row["class"] for row in rows} == {cls.__name__ for cls in MESSAGE_CLASSES}


@pytest.mark.parametrize(
    ("heading", "enum"),
    [
        ("### Sensor kinds", SensorKind),
        ("#### Fault codes", FaultCode),
        ("#### NACK reasons", NackReason),
    ],
    ids=["sensor_kinds", "fault_codes", "nack_reasons"],
)
def test_value_table_matches_the_code(heading: str, enum: type[IntEnum]) -> None:
    documented = {row["name"]: int(row["value"], 16) for row in table(heading)}
    assert documented == {member.name: member.value for member in enum}


def test_error_table_names_every_frame_error_with_its_kind() -> None:
    documented = {row["error"]: row["kind"] for row in table("## 9. Malformed frames")}
    leaves = {
        name: cls.kind
        for name in errors.__all__
        if isinstance(cls := getattr(errors, name), type)
        and issubclass(cls, FrameError)
        and cls is not FrameError
    }
    assert documented == leaves


def test_crc_parameters_give_the_stated_check_value() -> None:
    check = int(crc_parameters()["check"].split()[0].strip("`"), 16)
    assert reference_crc(b"123456789") == check == 0x29B1
    assert crc16_ccitt_false(b"123456789") == check


def test_worked_example_is_the_seat_occupied_vector() -> None:
    example = section("### Worked example")
    (wire_line,) = (line for line in example.splitlines() if line.startswith("wire:"))
    (seat_occupied,) = (v for v in VALID if v.name == "seat_occupied")
    assert wire(wire_line.removeprefix("wire:").strip()) == seat_occupied.wire
    assert "Frame(seq=1, message=Seat(seat=12, occupied=True))" in example
    assert seat_occupied.frame == Frame(seq=1, message=Seat(seat=12, occupied=True))


def test_window_bitmap_is_laid_out_as_the_spec_draws_it() -> None:
    """Bit i is bit i mod 8 of byte i div 8, from payload byte 8: the number just before the
    WINDOW is byte 8's 0x01, the number 256 before it byte 39's 0x80."""
    vectors = {v.name: v for v in VALID}
    wrap = vectors["window_across_the_wrap"]
    payload = body_of(wrap.wire)[4:-2]
    assert isinstance(wrap.frame.message, Window)
    held = [(wrap.frame.seq - back) % 0x10000 for back in range(1, 257)]
    assert [seq for back, seq in enumerate(held, 1) if wrap.frame.message.holds(back)] == [
        1,
        0,
        65535,
        65534,
    ]
    assert (payload[8], payload[9:]) == (0x0F, bytes(31))
    full = body_of(vectors["window_full_span"].wire)[4:-2]
    assert full[8:] == b"\xff" * 32
