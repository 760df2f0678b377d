"""Map wire-contract readings and gateway status to InfluxDB points (``docs/influxdb.md``).

Tags hold only bounded identifiers (site, gateway, device, sensor): every new tag
value is a new series. Measured values are fields. Booleans are written as
integers 0/1 so InfluxQL ``MEAN``/``SUM`` give occupancy ratios and counts
directly. The timestamp is the reading's own ``ts`` (stamped at the source), so a
message delivered twice writes the same point twice, which InfluxDB stores once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import assert_never

from central.influx.line_protocol import (
    FieldValue,
    Point,
    datetime_to_ns,
    encode_fields,
    encode_line,
    encode_timestamp,
    series_key,
)
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
    PeopleReading,
    Reading,
    SeatReading,
    SystemReading,
)

__all__ = [
    "reading_line",
    "reading_point",
    "status_line",
    "status_point",
]

STATUS_MEASUREMENT = "gateway_status"

#: Series whose escaped line start is kept. Hebi's 65 book houses have a few thousand; the city
#: scale benchmark (400 gateways × 80 seats, plus their boards' telemetry) about 34,000. An LRU
#: cache smaller than the set of sensors that report in turn would miss every time; the bound
#: only matters against a flood of made-up sensor ids (about 20 MB when full).
SERIES_CACHE = 65_536


def reading_point(reading: Reading) -> Point:
    """The point of one reading: measurement = its ``kind``."""
    fields: dict[str, FieldValue] = _reading_fields(reading)
    if reading.seq is not None:
        fields["seq"] = reading.seq
    return Point(
        measurement=reading.kind,
        tags={
            "site": reading.site,
            "gateway": reading.gateway,
            "device": reading.device,
            "sensor": reading.sensor,
        },
        fields=fields,
        time_ns=datetime_to_ns(reading.ts),
    )


def reading_line(reading: Reading) -> str:
    """``encode_line(reading_point(reading))``, byte for byte, without the per-point churn.

    The measurement and tags of a sensor are the same in every point it writes: they are
    checked and escaped once per series (:func:`_reading_series`), not once per point. Seat
    readings, most of what a city sends, have their two possible field sets ready.
    """
    head = _reading_series(
        reading.kind, reading.site, reading.gateway, reading.device, reading.sensor
    )
    if type(reading) is SeatReading:
        fields = _SEAT_FIELDS[reading.occupied, reading.presence]
    else:
        fields = encode_fields(_reading_fields(reading))
    if reading.seq is not None:
        # An integer field, last as in reading_point (the contract bounds it to 0..65535).
        fields += f",seq={reading.seq}i"
    return f"{head} {fields} {encode_timestamp(datetime_to_ns(reading.ts))}"


def status_line(status: GatewayStatus) -> str:
    """``encode_line(status_point(status))``: statuses are few, they take the general path."""
    return encode_line(status_point(status))


@lru_cache(maxsize=SERIES_CACHE)
def _reading_series(kind: str, site: str, gateway: str, device: str, sensor: str) -> str:
    # The same tags as reading_point, through the same checks and escapes.
    tags = {"site": site, "gateway": gateway, "device": device, "sensor": sensor}
    return series_key(kind, tags)


def status_point(status: GatewayStatus) -> Point:
    """The point of a gateway's availability (online/offline and its session number)."""
    return Point(
        measurement=STATUS_MEASUREMENT,
        tags={"site": status.site, "gateway": status.gateway},
        fields={"online": int(status.state == "online"), "session": status.session},
        time_ns=datetime_to_ns(status.ts),
    )


def _reading_fields(reading: Reading) -> dict[str, FieldValue]:
    match reading:
        case SeatReading():
            if reading.presence is None:  # a seat without a presence channel
                return {"occupied": int(reading.occupied)}
            return {"occupied": int(reading.occupied), "presence": int(reading.presence)}
        case PeopleReading():
            return {"in_total": reading.in_total, "out_total": reading.out_total}
        case DoorReading():
            return {"open": int(reading.open)}
        case MotionReading():
            return {"motion": int(reading.motion)}
        case HeartbeatReading():
            return {"uptime_s": reading.uptime_s, "supply_mv": reading.supply_mv}
        case FaultReading():
            fault: dict[str, FieldValue] = {"code": reading.code, "active": int(reading.active)}
            if reading.target_kind is not None:
                fault["target_kind"] = reading.target_kind
            if reading.target is not None:
                fault["target"] = reading.target
            return fault
        case DeviceReading():
            return {
                "firmware": reading.firmware,
                "report_interval_s": reading.report_interval_s,
                "sensors": ",".join(reading.sensors),
            }
        case LinkReading():
            link: dict[str, FieldValue] = {
                "frames": reading.frames,
                "crc_errors": reading.crc_errors,
                "malformed": reading.malformed,
                "lost": reading.lost,
                "duplicates": reading.duplicates,
                "reconnects": reading.reconnects,
            }
            if reading.board_dropped is not None:
                link["board_dropped"] = reading.board_dropped
            return link
        case OutboxReading():
            outbox: dict[str, FieldValue] = {
                "queued": reading.queued,
                "dropped_periodic": reading.dropped_periodic,
                "dropped_state": reading.dropped_state,
                "dropped_clock": reading.dropped_clock,
            }
            if "refused" in reading.model_fields_set:  # not from gateways before issue 13
                outbox["refused"] = reading.refused
                outbox["refused_held"] = reading.refused_held
            # Kinds and reason codes are a small fixed set: fields, never tags (no new series).
            for refusal in reading.refusals:
                outbox[f"refused_{refusal.kind}_{refusal.reason}"] = refusal.count
            return outbox
        case SystemReading():
            system: dict[str, FieldValue] = {
                "disk_free_bytes": reading.disk_free_bytes,
                "disk_total_bytes": reading.disk_total_bytes,
                "mem_available_bytes": reading.mem_available_bytes,
                "mem_total_bytes": reading.mem_total_bytes,
            }
            if reading.cpu_temp_c is not None:
                system["cpu_temp_c"] = reading.cpu_temp_c
            system["load_1m"] = reading.load_1m
            return system
        case AirReading():
            # Floats always (a sensor's 870 ppm and 870.5 ppm are one field type in InfluxDB),
            # and only what the sensor measured.
            air: dict[str, FieldValue] = {}
            if reading.temperature_c is not None:
                air["temperature_c"] = float(reading.temperature_c)
            if reading.humidity_pct is not None:
                air["humidity_pct"] = float(reading.humidity_pct)
            if reading.co2_ppm is not None:
                air["co2_ppm"] = float(reading.co2_ppm)
            return air
        case BatteryReading():
            return {"percent": reading.percent}
        case _:
            assert_never(reading)


def _seat_fields() -> dict[tuple[bool, bool | None], str]:
    """A seat reading's field set (``seq`` aside) by its occupancy and presence (``None``: no
    presence channel), as the general path writes it."""
    seat = SeatReading(
        site="s", gateway="g", device="d", sensor="s", ts=datetime(1970, 1, 1, tzinfo=UTC),
        occupied=False,
    )  # fmt: skip
    return {
        (occupied, presence): encode_fields(
            _reading_fields(seat.model_copy(update={"occupied": occupied, "presence": presence}))
        )
        for occupied in (False, True)
        for presence in (None, False, True)
    }


_SEAT_FIELDS = _seat_fields()
