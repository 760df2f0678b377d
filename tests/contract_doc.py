"""The wire contract as ``docs/mqtt.md`` states it: its field tables, read into generators of
payloads the doc allows and of payloads it refuses.

Each field table follows a ``<!-- fields: NAME -->`` marker: ``common`` (every reading), one per
reading kind, ``status``, ``batch`` and ``refusal`` (an item of ``outbox.refusals``). A type
cell is one of the types of the doc's "Types, and what is refused" table, optionally followed
by ``, optional`` and ``, default X``. The patterns of ``id``, ``version`` and ``fault code``
are read from that table too, so the doc is the only source here. A kind whose section says
"an `X` reading carries at least one of `a`, `b` and `c`" gets at least one of those optional
fields in every payload generated for it (``AT_LEAST_ONE``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

DOC = (Path(__file__).resolve().parent.parent / "docs" / "mqtt.md").read_text(encoding="utf-8")

INT64_MAX = 2**63 - 1
#: Timestamps the doc allows: from 1970 to before 2262.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2262, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    optional: bool
    default: str | None


def _tables() -> dict[str, list[Field]]:
    tables: dict[str, list[Field]] = {}
    for marker in re.finditer(r"<!-- fields: ([a-z]+) -->\n((?:\|.*\n)+)", DOC):
        name, body = marker.groups()
        fields: list[Field] = []
        for row in body.splitlines()[2:]:  # past the header and its rule
            names, kind, _meaning = (cell.strip() for cell in row.strip("|").split(" | ", 2))
            parts = [part.strip() for part in _split_type(kind)]
            optional = "optional" in parts
            default = next((p[len("default ") :] for p in parts if p.startswith("default ")), None)
            base = ", ".join(p for p in parts if p != "optional" and not p.startswith("default "))
            for field_name in re.findall(r"`([a-z_0-9]+)`", names):
                fields.append(Field(field_name, base, optional, default))
        tables[name] = fields
    return tables


def _split_type(cell: str) -> list[str]:
    # "array of reading, 1–1000, optional": split at commas outside quoted strings.
    return [p for p in re.split(r',\s*(?=(?:[^"]*"[^"]*")*[^"]*$)', cell) if p]


TABLES = _tables()


def _type_patterns() -> dict[str, str]:
    section = DOC.split("### Types, and what is refused", 1)[1].split("\n\n- ", 1)[0]
    patterns = {}
    for row in section.splitlines():
        found = re.match(
            r"\| (id|version|fault code|software version|hash) \| a string matching `(\^.*?\$)`",
            row,
        )
        if found:
            patterns[found.group(1)] = found.group(2)
    return patterns


PATTERNS = _type_patterns()


def _at_least_one() -> dict[str, tuple[str, ...]]:
    """Kind → optional fields of which the doc requires at least one (``air``)."""
    found = {}
    for match in re.finditer(
        r"an\s+`([a-z]+)`\s+reading\s+carries\s+at\s+least\s+one\s+of\s+([^;:.]+)", DOC
    ):
        found[match[1]] = tuple(re.findall(r"`([a-z_0-9]+)`", match[2]))
    return found


AT_LEAST_ONE = _at_least_one()


def model_fields(name: str) -> list[Field]:
    """The fields of a reading kind (common ones first), or of ``status``/``batch``/``refusal``
    or ``report`` (a status's ``config``)."""
    if name in ("status", "batch", "refusal", "report"):
        return TABLES[name]
    return [*TABLES["common"], *TABLES[name]]


#: The reading kinds with a table, in the doc's order.
READING_KINDS = tuple(
    name for name in TABLES if name not in {"common", "status", "batch", "refusal", "report"}
)


# Values the doc allows -----------------------------------------------------------------------


def _timestamp_text(moment: datetime, digits: int, offset_minutes: int | None) -> str:
    """``moment`` written in one of the accepted forms (``None``: ``Z``)."""
    zone = UTC if offset_minutes is None else timezone(timedelta(minutes=offset_minutes))
    local = moment.astimezone(zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}"[:digits]
    if offset_minutes is None:
        return text + "Z"
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    digits = draw(st.integers(0, 6))
    offset = draw(st.none() | st.integers(-23 * 60 - 59, 23 * 60 + 59))
    # Whole units of the fraction written, so the text says exactly the instant.
    unit = 10 ** (6 - digits)
    span = int((LATEST - EARLIEST) / timedelta(microseconds=unit)) - 1
    moment = EARLIEST + timedelta(microseconds=unit * draw(st.integers(0, span)))
    # The local form of an instant near either end may fall outside 0001-9999: skip those.
    local_year = (moment + timedelta(minutes=offset or 0)).year
    if not 1970 <= local_year <= 9999:
        offset = None
    return _timestamp_text(moment, digits, offset)


def _quoted(type_: str) -> list[str] | None:
    if not type_.startswith('"'):
        return None
    return re.findall(r'"([^"]*)"', type_)


def valid_values(
    type_: str, *, kind: str, site: str = "s", gateway: str = "g"
) -> st.SearchStrategy[Any]:
    """JSON values of a doc type (``kind``: the reading kind whose table it is in)."""
    if type_ == "integer 1":
        return st.just(1)
    if (bounds := re.fullmatch(r"integer (\d+)–(\d+)", type_)) is not None:
        return st.integers(int(bounds[1]), int(bounds[2]))
    if (low := re.fullmatch(r"integer ≥ (\d+)", type_)) is not None:
        return st.integers(int(low[1]), INT64_MAX)
    if type_ == "number ≥ 0":
        return st.integers(0, 10**9) | st.floats(0, 1e12, allow_nan=False, allow_infinity=False)
    if type_ == "number":
        return st.integers(-(10**9), 10**9) | st.floats(allow_nan=False, allow_infinity=False)
    if (span := re.fullmatch(r"number (\d+)–(\d+)", type_)) is not None:
        low, high = int(span[1]), int(span[2])
        return st.integers(low, high) | st.floats(low, high, allow_nan=False, allow_infinity=False)
    if type_ == "boolean":
        return st.booleans()
    if type_ in PATTERNS:
        return st.from_regex(PATTERNS[type_], fullmatch=True)
    if type_ == "timestamp":
        return timestamps()
    if type_ == "kind":
        return st.just(kind)
    if (choices := _quoted(type_)) is not None:
        return st.sampled_from(choices)
    if type_ == "array of id":
        return st.lists(st.from_regex(PATTERNS["id"], fullmatch=True), max_size=4)
    if type_ == "array of refusal":
        return st.lists(payloads("refusal"), max_size=3)
    if type_ == "one line":
        line = st.characters(blacklist_categories=("Cc", "Cs"))
        return st.text(alphabet=line, min_size=1, max_size=300)
    if type_ == "config report":
        return payloads("report")
    if type_ == "array of reading, 1–1000":
        kinds = st.sampled_from(READING_KINDS)
        return st.lists(
            kinds.flatmap(lambda k: payloads(k, site=site, gateway=gateway)),
            min_size=1,
            max_size=3,
        )
    raise AssertionError(f"docs/mqtt.md uses a type this test does not know: {type_!r}")


@st.composite
def payloads(
    draw: st.DrawFn, name: str, *, site: str | None = None, gateway: str | None = None
) -> dict[str, Any]:
    """A payload the doc allows: every required field, each optional one or not."""
    document: dict[str, Any] = {}
    for field in model_fields(name):
        if field.optional and not draw(st.booleans()):
            continue
        document[field.name] = draw(
            valid_values(field.type, kind=name, site=site or "s", gateway=gateway or "g")
        )
    some = AT_LEAST_ONE.get(name, ())
    if some and not any(field in document for field in some):
        # The doc's "at least one of": a payload without any is refused, so give it one.
        chosen = draw(st.sampled_from(some))
        field_type = next(f.type for f in model_fields(name) if f.name == chosen)
        document[chosen] = draw(valid_values(field_type, kind=name))
    if name == "batch":
        # Every reading of a batch is the batch's site and gateway (the doc's "meaning").
        for reading in document["readings"]:
            reading.update(site=document["site"], gateway=document["gateway"])
    elif site is not None and gateway is not None:
        document.update(site=site, gateway=gateway)
    return document


# Values the doc refuses -----------------------------------------------------------------------

_TIMESTAMPS_REFUSED = (
    1796565013,
    "1796565013",
    "2026-11-28 01:02:03Z",
    "2026-11-28T01:02:03",
    "2026-11-28t01:02:03z",
    "2026-11-28T01:02Z",
    "2026-11-28T01:02:03.1234567Z",
    "2026-11-28T23:59:60Z",
    "2026-02-30T00:00:00Z",
    "2026-11-28T01:02:03+0800",
    "1969-12-31T23:59:59Z",
    "2262-01-01T00:00:00Z",
)


def refused_values(type_: str) -> list[Any]:
    """Values of a field the doc refuses: other JSON types, and just outside its range."""
    # null is refused for every field: an optional one is left out instead.
    other_types: list[Any] = [[], {}, None]
    if type_ == "integer 1":
        return [*other_types, True, 1.0, "1", 2, 0]
    if (bounds := re.fullmatch(r"integer (\d+)–(\d+)", type_)) is not None:
        low, high = int(bounds[1]), int(bounds[2])
        return [*other_types, True, float(low), str(low), low - 1, high + 1]
    if (low_match := re.fullmatch(r"integer ≥ (\d+)", type_)) is not None:
        low = int(low_match[1])
        return [*other_types, True, float(low), str(low), low - 1, INT64_MAX + 1]
    if type_ == "number ≥ 0":
        return [*other_types, True, "1.5", -0.5, -1]
    if type_ == "number":
        return [*other_types, True, "1.5"]
    if (span := re.fullmatch(r"number (\d+)–(\d+)", type_)) is not None:
        low, high = int(span[1]), int(span[2])
        return [*other_types, True, str(low), low - 0.5, high + 0.5, high + 1]
    if type_ == "boolean":
        return [*other_types, 1, 0, "true", "false"]
    if type_ in PATTERNS:
        return [*other_types, 1, True, "", "a/b", "a b", "桃园"]
    if type_ == "timestamp":
        return [*other_types, True, *_TIMESTAMPS_REFUSED]
    if type_ == "kind":
        return [[], {}, None, 1, True, "sofa"]
    if type_ == "one line":
        return [*other_types, 1, True, "", "a\nb", "x" * 301]
    if type_ == "config report":
        return [[], {}, None, 1, True, "applied"]
    if (choices := _quoted(type_)) is not None:
        return [*other_types, 1, True, "nope", choices[0].upper() + "x"]
    if type_.startswith("array of "):
        refused: list[Any] = [{}, "x", 1, True, None, [1]]
        if type_ == "array of reading, 1–1000":
            refused.append([])
        return refused
    raise AssertionError(f"docs/mqtt.md uses a type this test does not know: {type_!r}")


def wrong_field_cases(name: str) -> list[tuple[str, Any]]:
    """(field, refused value) for every field of a table (``kind`` aside for readings)."""
    return [
        (field.name, value)
        for field in model_fields(name)
        if not (field.name == "kind" and name not in ("batch", "refusal", "status"))
        for value in refused_values(field.type)
    ]


__all__ = [
    "AT_LEAST_ONE",
    "DOC",
    "EARLIEST",
    "LATEST",
    "PATTERNS",
    "READING_KINDS",
    "TABLES",
    "Field",
    "model_fields",
    "payloads",
    "refused_values",
    "timestamps",
    "valid_values",
    "wrong_field_cases",
]
