"""Payload models of the MQTT wire contract (``docs/mqtt.md``), shared by gateway and central.

Every payload is JSON with ``"schema": 1``. Readings carry their own identity
(site, gateway, device, sensor, timestamp stamped at the source in UTC), so a
message delivered twice maps to the same InfluxDB point.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from qihe.contract.errors import PayloadError

__all__ = [
    "ID_PATTERN",
    "READING_KINDS",
    "SCHEMA_VERSION",
    "DeviceReading",
    "DoorReading",
    "FaultReading",
    "GatewayStatus",
    "HeartbeatReading",
    "Ident",
    "LinkReading",
    "PeopleReading",
    "Reading",
    "ReadingBatch",
    "SeatReading",
    "SystemReading",
    "encode_batch",
    "encode_payload",
    "parse_batch",
    "parse_reading",
    "parse_status",
]

SCHEMA_VERSION = 1

#: Identifiers end up in MQTT topic levels and InfluxDB tags: ASCII slugs only.
#: Human names (Chinese included) live in site metadata, never in ids.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Ident = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class _WireModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_version: Literal[1] = Field(default=1, alias="schema")


class _ReadingBase(_WireModel):
    site: Ident
    gateway: Ident
    device: Ident
    sensor: Ident
    ts: UtcDatetime
    #: The device's frame sequence number, when the reading came from a serial frame.
    seq: Annotated[int, Field(ge=0, le=0xFFFF)] | None = None


class SeatReading(_ReadingBase):
    kind: Literal["seat"] = "seat"
    occupied: bool


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
    target_kind: Literal["seat", "people", "door"] | None = None
    target: Ident | None = None


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


#: A finite measurement that cannot be negative (NaN and infinity have no JSON form).
_FiniteNonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class SystemReading(_ReadingBase):
    """The gateway's own host, every ``link_report_interval``: disk, memory, CPU.

    ``device`` is ``gateway`` and ``sensor`` the gateway's id. The disk is the filesystem
    holding the gateway's ``state_dir`` (the SD card, where the outbox lives); free bytes are
    those an unprivileged process may still write (``df``'s "Avail"). Memory is
    ``/proc/meminfo``'s MemAvailable and MemTotal. ``cpu_temp_c`` is absent when the machine
    has no thermal zone (or it could not be read); ``load_1m`` is the 1-minute load average.
    """

    kind: Literal["system"] = "system"
    disk_free_bytes: NonNegativeInt
    disk_total_bytes: NonNegativeInt
    mem_available_bytes: NonNegativeInt
    mem_total_bytes: NonNegativeInt
    cpu_temp_c: _FiniteNonNegative | None = None
    load_1m: _FiniteNonNegative


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
    | SystemReading,
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
)

_READING_ADAPTER: TypeAdapter[Reading] = TypeAdapter(Reading)


class GatewayStatus(_WireModel):
    """Retained availability of a gateway; also its MQTT Last Will (``state="offline"``).

    ``session`` grows with every broker connection, so a consumer can tell a late
    Will of an old session from the current state.
    """

    site: Ident
    gateway: Ident
    state: Literal["online", "offline"]
    session: NonNegativeInt
    ts: UtcDatetime


#: Most readings packed into one backlog message (keeps a message well under 1 MB).
MAX_BATCH = 1000


class ReadingBatch(_WireModel):
    """Readings replayed from a gateway's outbox after an outage, packed into one message.

    ``historical`` says they are not live: a late subscriber's view of the present
    comes from the retained per-sensor topics, never from a batch.
    """

    kind: Literal["batch"] = "batch"
    site: Ident
    gateway: Ident
    historical: bool = True
    readings: Annotated[tuple[Reading, ...], Field(min_length=1, max_length=MAX_BATCH)]


def encode_payload(model: BaseModel) -> bytes:
    """Serialise a wire model exactly as it goes on the wire."""
    return model.model_dump_json(by_alias=True, exclude_none=True).encode()


def parse_reading(payload: bytes | str) -> Reading:
    """Validate a reading payload; raise :class:`PayloadError` naming what is wrong."""
    try:
        return _READING_ADAPTER.validate_json(payload)
    except ValidationError as exc:
        raise PayloadError(_describe(exc)) from exc


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
        raise PayloadError(_describe(exc)) from exc
    for index, reading in enumerate(batch.readings):
        if (reading.site, reading.gateway) != (batch.site, batch.gateway):
            raise PayloadError(
                f"readings.{index}: site/gateway {reading.site}/{reading.gateway} "
                f"differs from the batch's {batch.site}/{batch.gateway}"
            )
    return batch


def parse_status(payload: bytes | str) -> GatewayStatus:
    try:
        return GatewayStatus.model_validate_json(payload)
    except ValidationError as exc:
        raise PayloadError(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
