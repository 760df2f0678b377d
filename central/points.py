"""Map wire-contract readings and gateway status to InfluxDB points (``docs/influxdb.md``).

Tags hold only bounded identifiers (site, gateway, device, sensor): every new tag
value is a new series. Measured values are fields. Booleans are written as
integers 0/1 so InfluxQL ``MEAN``/``SUM`` give occupancy ratios and counts
directly. The timestamp is the reading's own ``ts`` (stamped at the source), so a
message delivered twice writes the same point twice, which InfluxDB stores once.
"""

from __future__ import annotations

from typing import assert_never

from central.influx.line_protocol import FieldValue, Point, datetime_to_ns
from qihe.contract import (
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

__all__ = ["STATUS_MEASUREMENT", "reading_point", "status_point"]

STATUS_MEASUREMENT = "gateway_status"


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
            return {"occupied": int(reading.occupied)}
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
            return {
                "frames": reading.frames,
                "crc_errors": reading.crc_errors,
                "malformed": reading.malformed,
                "lost": reading.lost,
                "duplicates": reading.duplicates,
                "reconnects": reading.reconnects,
            }
        case OutboxReading():
            return {
                "queued": reading.queued,
                "dropped_periodic": reading.dropped_periodic,
                "dropped_state": reading.dropped_state,
                "dropped_clock": reading.dropped_clock,
            }
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
        case _:
            assert_never(reading)
