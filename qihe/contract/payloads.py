"""Payload models of the MQTT wire contract (``docs/mqtt.md``), shared by gateway and central.

Every payload is JSON with ``"schema": 1``. Readings carry their own identity
(site, gateway, device, sensor, timestamp stamped at the source in UTC), so a
message delivered twice maps to the same InfluxDB point.

The models are strict (``docs/mqtt.md``, "Types, and what is refused"): a value of the wrong
JSON type is refused, never converted; ``schema`` is required on the wire; timestamps are RFC
3339 strings of one form; optional fields are left out, never ``null``. Python code building a
model may leave ``schema`` out and pass ``None`` for an absent field.
``tests/test_contract_properties.py`` checks the models against the doc's field tables.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from qihe.contract.errors import PayloadError

__all__ = [
    "ID_PATTERN",
    "READING_KINDS",
    "AirReading",
    "BatteryReading",
    "ConfigReport",
    "ConfigState",
    "DeviceReading",
    "DoorReading",
    "FaultReading",
    "GatewayStatus",
    "HeartbeatReading",
    "Ident",
    "LinkReading",
    "PeopleReading",
    "PublishRefusal",
    "Reading",
    "ReadingBatch",
    "RefusedKind",
    "SeatReading",
    "SystemReading",
    "encode_batch",
    "encode_payload",
    "parse_batch",
    "parse_reading",
    "parse_status",
    "restamp_payload",
]

SCHEMA_VERSION = 1

#: Identifiers end up in MQTT topic levels and InfluxDB tags: ASCII slugs only.
#: Human names (Chinese included) live in site metadata, never in ids.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Ident = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


#: Integers go into InfluxDB as 64-bit signed integers; a larger one could never be stored.
INT64_MAX = 2**63 - 1

#: pydantic's ``NonNegativeInt``, bounded by what InfluxDB can store.
NonNegativeInt = Annotated[int, Field(ge=0, le=INT64_MAX)]

#: The only timestamp form on the wire (``docs/mqtt.md``, "Types"): RFC 3339 ``date-time`` with
#: an upper-case ``T``, seconds, at most six fraction digits, and ``Z`` or ``±HH:MM``.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
#: InfluxDB stores nanoseconds since 1970 in 64 bits: its last whole year is 2261.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2262, 1, 1, tzinfo=UTC)


def _utc_timestamp(value: object) -> datetime:
    # pydantic's own datetime parsing also takes unix times in strings, a space for the T,
    # lower case and minutes without seconds; the contract takes one form only. All of it in
    # one validator: it runs for every reading the consumer takes.
    if isinstance(value, str):
        if not _RFC3339.fullmatch(value):
            raise PydanticCustomError(
                "timestamp_parsing",
                "Input should be an RFC 3339 timestamp with seconds and an offset, "
                "like 2026-11-28T01:02:03.456789Z",
            )
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError(
                "timestamp_parsing", "Input should be an RFC 3339 timestamp of a real date"
            ) from None
    elif not isinstance(value, datetime):  # a datetime: built in Python
        raise PydanticCustomError("timestamp_type", "Input should be an RFC 3339 timestamp string")
    if value.tzinfo is None or value.utcoffset() is None:
        raise PydanticCustomError("timezone_aware", "Input should have timezone info")
    utc = value.astimezone(UTC)
    if not _EARLIEST <= utc < _LATEST:
        raise PydanticCustomError(
            "timestamp_range", "Input should be from 1970-01-01T00:00:00Z to before 2262"
        )
    return utc


#: An aware timestamp, held in UTC; on the wire only the RFC 3339 form above. (A plain
#: validator would be one call less, but pydantic then serialises the field as "any".)
UtcDatetime = Annotated[datetime, BeforeValidator(_utc_timestamp)]


def _absent_not_null(value: object, info: ValidationInfo) -> object:
    # An optional field is left out on the wire; Python code may pass None for "absent".
    if value is None and info.mode == "json":
        raise PydanticCustomError("null", "Input should be left out, not null")
    return value


#: Marks an optional field (``X | None = None``): absent on the wire, never ``null``.
NOT_NULL = BeforeValidator(_absent_not_null)

#: The default of a field that must be given on the wire but that Python code may leave out.
NOT_GIVEN: Any = object()


def _wire_required(python_default: object) -> BeforeValidator:
    """For a field defaulting to :data:`NOT_GIVEN` (with ``validate_default``): missing on the
    wire is refused, missing in Python construction is ``python_default``."""

    def given(value: object, info: ValidationInfo) -> object:
        if value is NOT_GIVEN:
            if info.mode == "python":
                return python_default
            raise PydanticCustomError("missing", "Field required")
        return value

    return BeforeValidator(given)


def _schema(value: object, info: ValidationInfo) -> object:
    # One validator for both jobs (it runs for every reading): required on the wire, and
    # exactly 1 — Literal[1] alone would take true and 1.0 (they equal 1), even in strict mode.
    if value is NOT_GIVEN:
        if info.mode == "python":
            return SCHEMA_VERSION
        raise PydanticCustomError("missing", "Field required")
    if type(value) is not int:
        raise PydanticCustomError("schema_type", "Input should be the integer 1")
    if value != SCHEMA_VERSION:
        raise PydanticCustomError("schema_version", "Input should be 1, the only schema version")
    return value


class _WireModel(BaseModel):
    # Strict: a value of the wrong JSON type is refused, never converted ("1" is no integer).
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, strict=True)

    #: Required on the wire; Python code building a model gets the current version.
    schema_version: Annotated[Literal[1], BeforeValidator(_schema)] = Field(
        default=NOT_GIVEN, alias="schema", validate_default=True
    )


class _ReadingBase(_WireModel):
    site: Ident
    gateway: Ident
    device: Ident
    sensor: Ident
    ts: UtcDatetime
    #: The device's frame sequence number, when the reading came from a serial frame.
    seq: Annotated[Annotated[int, Field(ge=0, le=0xFFFF)] | None, NOT_NULL] = None


class SeatReading(_ReadingBase):
    """A seat's occupancy channel (pressure mat, contact) and, for a seat that has one, its
    presence channel (an mmWave radar above the desk): ``presence`` is whether someone is
    there, absent for a seat without a presence channel (``docs/mqtt.md``, "seat")."""

    kind: Literal["seat"] = "seat"
    occupied: bool
    presence: Annotated[bool | None, NOT_NULL] = None


class PeopleReading(_ReadingBase):
    """Cumulative entrance totals since the counter's last reset."""

    kind: Literal["people"] = "people"
    in_total: NonNegativeInt
    out_total: NonNegativeInt


class DoorReading(_ReadingBase):
    kind: Literal["door"] = "door"
    open: bool


class MotionReading(_ReadingBase):
    """A PIR motion detector wired to the gateway's GPIO."""

    kind: Literal["motion"] = "motion"
    motion: bool


class HeartbeatReading(_ReadingBase):
    kind: Literal["heartbeat"] = "heartbeat"
    uptime_s: NonNegativeInt
    supply_mv: NonNegativeInt


class FaultReading(_ReadingBase):
    """A sensor fault raised (``active``) or cleared.

    ``sensor`` names the fault itself, ``{device}.{kind}.{index}``, so every faulty sensor of a
    board has its own retained topic (seat 1 and counter 1 share the index 1). ``target_kind``
    and ``target`` say which sensor it is about, as that sensor's own readings name it.
    """

    kind: Literal["fault"] = "fault"
    code: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]
    active: bool
    target_kind: Annotated[
        Literal["seat", "people", "door", "motion", "air", "battery"] | None, NOT_NULL
    ] = None
    target: Annotated[Ident | None, NOT_NULL] = None


class DeviceReading(_ReadingBase):
    """A board introduced itself (serial HELLO): firmware, report interval, sensors."""

    kind: Literal["device"] = "device"
    #: ASCII digits: ``\d`` would also take full-width and other Unicode digits.
    firmware: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$")]
    report_interval_s: Annotated[int, Field(ge=1, le=0xFFFF)]
    sensors: tuple[Ident, ...] = ()


class LinkReading(_ReadingBase):
    """Cumulative health counters of one serial link since the gateway started."""

    kind: Literal["link"] = "link"
    frames: NonNegativeInt
    crc_errors: NonNegativeInt
    malformed: NonNegativeInt
    lost: NonNegativeInt
    duplicates: NonNegativeInt
    reconnects: NonNegativeInt
    #: Reports the board gave up without an acknowledgement in its current boot, as its
    #: last WINDOW said (docs/protocol.md §8): the board's own count, kept across gateway
    #: restarts, 0 again after the board resets. Absent from gateways without WINDOW.
    board_dropped: Annotated[NonNegativeInt | None, NOT_NULL] = None


#: What a refused publish was: a reading kind, or the gateway's ``backlog``, ``status`` or
#: ``cmd_reply`` topic.
RefusedKind = Literal[
    "seat", "people", "door", "motion", "heartbeat", "fault", "device", "link", "outbox",
    "system", "air", "battery", "backlog", "status", "cmd_reply",
]  # fmt: skip


class PublishRefusal(BaseModel):
    """Refusals of one topic kind with one MQTT 5 reason code (0x87 Not authorized, ...)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: RefusedKind
    reason: Annotated[int, Field(ge=0x80, le=0xFF)]
    count: Annotated[int, Field(ge=1, le=INT64_MAX)]


class OutboxReading(_ReadingBase):
    """The gateway's own outbox, every ``link_report_interval``: what waits, what was dropped.

    ``device`` is ``gateway`` and ``sensor`` the gateway's id. Drops are cumulative over
    the outbox's life (they survive restarts): periodic telemetry, state readings, and
    readings whose time could never be set (``dropped_clock``).
    """

    kind: Literal["outbox"] = "outbox"
    queued: NonNegativeInt
    dropped_periodic: NonNegativeInt
    dropped_state: NonNegativeInt
    dropped_clock: NonNegativeInt
    # Publishes the broker refused (issue 13): optional, so older gateways stay valid.
    #: Publishes refused (PUBACK reason 0x80 or above) since the gateway started.
    refused: NonNegativeInt = 0
    #: Readings held for a retry after a refusal right now (they stay in the outbox).
    refused_held: NonNegativeInt = 0
    #: ``refused`` by topic kind and reason code.
    refusals: tuple[PublishRefusal, ...] = ()


#: A finite measurement that cannot be negative (NaN and infinity have no JSON form).
_FiniteNonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class SystemReading(_ReadingBase):
    """The gateway's own host, every ``link_report_interval``: disk, memory, CPU.

    ``device`` is ``gateway`` and ``sensor`` the gateway's id. The disk is the filesystem
    holding the gateway's ``state_dir`` (the SD card, where the outbox lives); free bytes are
    those an unprivileged process may still write (``df``'s "Avail"). Memory is
    ``/proc/meminfo``'s MemAvailable and MemTotal. ``cpu_temp_c`` is absent when the machine
    has no thermal zone (or it could not be read); ``load_1m`` is the 1-minute load average.
    ``throttled`` is a Raspberry Pi firmware's under-voltage/throttling bit mask (absent off a
    Pi); ``host_uptime_s`` and ``process_uptime_s`` the uptimes of the host and the gateway.
    """

    kind: Literal["system"] = "system"
    disk_free_bytes: NonNegativeInt
    disk_total_bytes: NonNegativeInt
    mem_available_bytes: NonNegativeInt
    mem_total_bytes: NonNegativeInt
    cpu_temp_c: Annotated[_FiniteNonNegative | None, NOT_NULL] = None
    load_1m: _FiniteNonNegative
    # Issue 18 (the fleet view): optional, so older gateways stay valid.
    throttled: Annotated[Annotated[int, Field(ge=0, le=0xFFFF_FFFF)] | None, NOT_NULL] = None
    host_uptime_s: Annotated[NonNegativeInt | None, NOT_NULL] = None
    process_uptime_s: Annotated[NonNegativeInt | None, NOT_NULL] = None


#: A finite measurement of either sign.
_Finite = Annotated[float, Field(allow_inf_nan=False)]


class AirReading(_ReadingBase):
    """The air of a room from an environment sensor (Modbus RTU, Zigbee): any of temperature,
    relative humidity and CO₂, as the sensor measures them; at least one."""

    kind: Literal["air"] = "air"
    temperature_c: Annotated[_Finite | None, NOT_NULL] = None
    humidity_pct: Annotated[
        Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None, NOT_NULL
    ] = None
    co2_ppm: Annotated[_FiniteNonNegative | None, NOT_NULL] = None

    @model_validator(mode="after")
    def _measures_something(self) -> AirReading:
        if self.temperature_c is None and self.humidity_pct is None and self.co2_ppm is None:
            raise ValueError("an air reading carries temperature_c, humidity_pct or co2_ppm")
        return self


class BatteryReading(_ReadingBase):
    """The battery of a wireless sensor (Zigbee), in percent as the sensor reports it."""

    kind: Literal["battery"] = "battery"
    percent: Annotated[int, Field(ge=0, le=100)]


Reading = Annotated[
    SeatReading
    | PeopleReading
    | DoorReading
    | MotionReading
    | HeartbeatReading
    | FaultReading
    | DeviceReading
    | LinkReading
    | OutboxReading
    | SystemReading
    | AirReading
    | BatteryReading,
    Field(discriminator="kind"),
]

READING_KINDS: tuple[str, ...] = (
    "seat",
    "people",
    "door",
    "motion",
    "heartbeat",
    "fault",
    "device",
    "link",
    "outbox",
    "system",
    "air",
    "battery",
)

_READING_ADAPTER: TypeAdapter[Reading] = TypeAdapter(Reading)


#: A package version as pip writes it (PEP 440's characters): ``0.1.0``, ``0.2.0rc1``.
SoftwareVersion = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}$")]
#: One line of text for people (an error), bounded: never a line break or a control character.
OneLine = Annotated[
    str, StringConstraints(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f\x7f]+$")
]
#: What became of the config last pushed to a gateway (``docs/remote-config.md``).
ConfigState = Literal["local", "applying", "applied", "rejected", "rolled_back"]


class ConfigReport(BaseModel):
    """The config a gateway runs (label, short hash) and the outcome of the last push."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    version: Annotated[Ident | None, NOT_NULL] = None
    hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12}$")]
    state: ConfigState
    error: Annotated[OneLine | None, NOT_NULL] = None
    push: Annotated[Ident | None, NOT_NULL] = None
    at: UtcDatetime


class GatewayStatus(_WireModel):
    """Retained availability of a gateway; also its MQTT Last Will (``state="offline"``).

    ``session`` grows with every broker connection, so a consumer can tell a late
    Will of an old session from the current state. ``version`` is the gateway's software,
    ``config`` its config report (issue 18; both optional, older gateways send neither).
    """

    site: Ident
    gateway: Ident
    state: Literal["online", "offline"]
    session: NonNegativeInt
    ts: UtcDatetime
    version: Annotated[SoftwareVersion | None, NOT_NULL] = None
    config: Annotated[ConfigReport | None, NOT_NULL] = None


#: Most readings packed into one backlog message (keeps a message well under 1 MB).
MAX_BATCH = 1000


class ReadingBatch(_WireModel):
    """Readings replayed from a gateway's outbox after an outage, packed into one message.

    ``historical`` says they are not live: a late subscriber's view of the present
    comes from the retained per-sensor topics, never from a batch.
    """

    kind: Annotated[Literal["batch"], _wire_required("batch")] = Field(
        default=NOT_GIVEN, validate_default=True
    )
    site: Ident
    gateway: Ident
    historical: bool = True
    readings: Annotated[tuple[Reading, ...], Field(min_length=1, max_length=MAX_BATCH)]


def encode_payload(model: BaseModel) -> bytes:
    """Serialise a wire model exactly as it goes on the wire."""
    return model.model_dump_json(by_alias=True, exclude_none=True).encode()


#: The contract's timestamp, for :func:`restamp_payload`: checked and written as in a model.
_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)


def restamp_payload(payload: bytes, ts: datetime) -> bytes:
    """A reading's wire JSON with ``ts`` as its timestamp, written in the contract's one form
    (as :func:`encode_payload` writes it: UTC, ``Z``, six fraction digits or none); every
    other field is kept as it is, not validated again."""
    data = json.loads(payload)
    data["ts"] = _TIMESTAMP.dump_python(_TIMESTAMP.validate_python(ts), mode="json")
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def parse_reading(payload: bytes | str) -> Reading:
    """Validate a reading payload; raise :class:`PayloadError` naming what is wrong."""
    try:
        return _READING_ADAPTER.validate_json(payload)
    except ValidationError as exc:
        raise _refusal(exc) from exc


def encode_batch(site: str, gateway: str, readings: list[bytes]) -> bytes:
    """A backlog batch from readings already encoded with :func:`encode_payload`.

    Joins the stored JSON as it is (no re-encoding), so each reading keeps the
    exact identity it was given at the source.
    """
    if not 1 <= len(readings) <= MAX_BATCH:
        raise ValueError(f"a batch holds 1..{MAX_BATCH} readings, not {len(readings)}")
    head = json.dumps(
        {
            "schema": SCHEMA_VERSION,
            "kind": "batch",
            "site": site,
            "gateway": gateway,
            "historical": True,
        },
        separators=(",", ":"),
    )
    return head[:-1].encode() + b',"readings":[' + b",".join(readings) + b"]}"


def parse_batch(payload: bytes | str) -> ReadingBatch:
    """Validate a backlog batch; every reading must belong to the batch's site and gateway."""
    try:
        batch = ReadingBatch.model_validate_json(payload)
    except ValidationError as exc:
        raise _refusal(exc) from exc
    for index, reading in enumerate(batch.readings):
        if (reading.site, reading.gateway) != (batch.site, batch.gateway):
            raise PayloadError(
                f"readings.{index}: site/gateway {reading.site}/{reading.gateway} "
                f"differs from the batch's {batch.site}/{batch.gateway}",
                key="readings.*: site/gateway differs from the batch's",
            )
    return batch


def parse_status(payload: bytes | str) -> GatewayStatus:
    try:
        return GatewayStatus.model_validate_json(payload)
    except ValidationError as exc:
        raise _refusal(exc) from exc


def _refusal(exc: ValidationError) -> PayloadError:
    """The reason (the first errors, each naming its field, and for a value of the wrong JSON
    type the type it had) and the key (the first error's field and type, no values)."""
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors[:3]:
        message = err["msg"]
        if err["type"].endswith("_type"):
            message += f" (got {_json_type(err['input'])})"
        parts.append(f"{_where(err)}: {message}")
    more = exc.error_count() - len(parts)
    reason = "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
    first = errors[0]
    where = _where(first, keyed=True)
    return PayloadError(reason, key=f"{where}: {first['type']}")


def _where(err: ErrorDetails, *, keyed: bool = False) -> str:
    loc = ["schema" if part == "schema_version" else part for part in err["loc"]]
    if keyed:
        # A key must not carry what a sender chose: an index, or an unknown field's name.
        loc = ["*" if isinstance(part, int) else part for part in loc]
        if err["type"] == "extra_forbidden":
            loc[-1] = "(extra field)"
    return ".".join(str(part) for part in loc) or "payload"


def _json_type(value: object) -> str:
    match value:
        case bool():
            return "a boolean"
        case int():
            return "an integer"
        case float():
            return "a number"
        case str():
            return "a string"
        case None:
            return "null"
        case list() | tuple():
            return "an array"
        case dict():
            return "an object"
    return type(value).__name__
