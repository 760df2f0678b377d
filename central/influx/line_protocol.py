"""A small, strict InfluxDB line protocol encoder (the text the 1.x and 2.x/3.x write APIs take).

One point is one line::

    measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]

Escaping, as the line protocol reference defines it:

========================  =====================  ==========================================
element                   escaped with ``\\``     refused here
========================  =====================  ==========================================
measurement               comma, space           empty, newline, leading ``#``, trailing ``\\``
tag key, tag value,       comma, equals, space   empty, newline, trailing ``\\``,
field key                                        key ``time``
string field value        double quote, ``\\``   (newlines are allowed inside the quotes)
========================  =====================  ==========================================

Field types: ``int`` → ``42i`` (64-bit signed), ``float`` → ``0.5`` (finite only),
``bool`` → ``true``/``false``, ``str`` → ``"text"``. Tags are written sorted by
key, which is the order InfluxDB stores them in (and cheaper for it to index).
Timestamps are integer nanoseconds since the Unix epoch (``precision=ns``).

Refused inputs raise :class:`~central.errors.LineProtocolError` instead of
producing a line InfluxDB would misread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from central.errors import LineProtocolError

__all__ = [
    "FieldValue",
    "Point",
    "datetime_to_ns",
    "encode_fields",
    "encode_line",
    "encode_timestamp",
    "series_key",
]

FieldValue = bool | int | float | str

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


@dataclass(frozen=True, slots=True)
class Point:
    """One InfluxDB point: its identity is measurement + tags + ``time_ns``."""

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ns: int | None = None


def datetime_to_ns(value: datetime) -> int:
    """Exact integer nanoseconds since the epoch of an aware datetime (no float rounding)."""
    if value.tzinfo is None:
        raise LineProtocolError(f"timestamp {value.isoformat()} has no time zone")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def encode_line(point: Point) -> str:
    """The line protocol line of ``point`` (without a trailing newline)."""
    head = series_key(point.measurement, point.tags)
    if not point.fields:
        raise LineProtocolError(f"point of {point.measurement!r} has no fields")
    line = f"{head} {encode_fields(point.fields)}"
    if point.time_ns is not None:
        line += f" {encode_timestamp(point.time_ns)}"
    return line


def series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """The start of a line: the escaped measurement and its tags sorted by key.

    Every point of a series starts the same: callers writing many points of few series
    may keep it instead of escaping the same names per point.
    """
    head = _measurement(measurement)
    for key in sorted(tags):
        head += f",{_name('tag key', key)}={_name('tag value', tags[key], key=key)}"
    return head


def encode_fields(fields: Mapping[str, FieldValue]) -> str:
    """The field set of a line, in the given order (at least one field)."""
    if not fields:
        raise LineProtocolError("a point needs at least one field")
    return ",".join(
        [f"{_field_key(key)}={_field_value(key, value)}" for key, value in fields.items()]
    )


def encode_timestamp(time_ns: int) -> str:
    """A line's timestamp: integer nanoseconds, refused outside 64 bits."""
    if not _INT64_MIN <= time_ns <= _INT64_MAX:
        raise LineProtocolError(f"timestamp {time_ns} is outside 64-bit nanoseconds")
    return str(time_ns)


@lru_cache(maxsize=1024)
def _field_key(key: str) -> str:
    # Field keys are few (a handful per measurement) and recur in every line: escape each
    # once. A refused key raises every time (lru_cache keeps only answers).
    return _name("field key", key)


def _check_text(what: str, value: str) -> None:
    if not value:
        raise LineProtocolError(f"{what} is empty")
    if "\n" in value or "\r" in value:
        raise LineProtocolError(f"{what} {value!r} contains a line break")
    if value.endswith("\\"):
        # A trailing backslash would escape the separator that follows it.
        raise LineProtocolError(f"{what} {value!r} ends with a backslash")


def _measurement(name: str) -> str:
    _check_text("measurement", name)
    if name.startswith("#"):
        raise LineProtocolError(f"measurement {name!r} would read as a comment line")
    return name.translate(_MEASUREMENT_ESCAPES)


def _name(what: str, value: str, *, key: str | None = None) -> str:
    _check_text(what if key is None else f"{what} of {key!r}", value)
    if what.endswith("key") and value == "time":
        raise LineProtocolError(f"{what} 'time' is reserved for the timestamp")
    return value.translate(_KEY_ESCAPES)


def _field_value(key: str, value: FieldValue) -> str:
    if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
        return f"{value}i"  # the usual case, first (a bool is an int, but not exactly one)
    # bool before int: it is a subclass of int.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise LineProtocolError(f"field {key!r} = {value} does not fit a 64-bit integer")
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError(f"field {key!r} = {value} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        return f'"{value.translate(_STRING_ESCAPES)}"'
    raise LineProtocolError(f"field {key!r} has unsupported type {type(value).__name__}")
