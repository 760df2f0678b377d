"""The air of a site's rooms per period (issue 16): CO₂ (mean, peak, minutes over a threshold),
mean temperature and humidity, from the ``air`` readings of its air sensors.

Air readings are samples (a Modbus sensor polled every few seconds, a Zigbee sensor on change),
not states, so the means and the peak are of the readings taken in the period, over all of the
site's air sensors together. The minutes over the threshold need time: each CO₂ reading stands
for the time until the sensor's next one, at most :data:`HOLD` (a sensor that stopped
reporting is not taken as high, or low, for ever); a minute counts when any room is over it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from central.sites import SiteSpec
from central.usage.client import SensorReadings
from central.usage.figures.base import PERIOD, Ask, Figure, Row, SiteRows, Span, rounded
from central.usage.steps import Bucket, Segment, integrate, total
from central.usage.table import Column

__all__ = ["AIR"]

#: How long one CO₂ reading stands for at most, when the sensor's next one is later or missing.
HOLD = timedelta(minutes=15)

_FIELDS = ("co2_ppm", "temperature_c", "humidity_pct")


def _samples(found: Sequence[SensorReadings], name: str, b: Bucket) -> list[float]:
    """The values of ``name`` read in the bucket, over every sensor."""
    return [f[name] for r in found for t, f in r.points if b.start <= t < b.end]


def _over(reading: SensorReadings, threshold: float, span: Span) -> list[Segment]:
    """1 while the sensor's CO₂ is over ``threshold`` (each reading held until the next one,
    at most :data:`HOLD`), on ``[span.start, span.stop)``."""
    points = [(t, f["co2_ppm"]) for t, f in reading.points]
    if reading.carried is not None:
        points.insert(0, (reading.carried[0], reading.carried[1]["co2_ppm"]))
    out: list[Segment] = []
    for i, (moment, ppm) in enumerate(points):
        following = points[i + 1][0] if i + 1 < len(points) else span.stop
        lo, hi = max(moment, span.start), min(following, moment + HOLD, span.stop)
        if hi > lo and ppm > threshold:
            out.append(Segment(lo, hi, 1.0))
    return out


def _air_rows(span: Span, site: SiteSpec) -> SiteRows:
    bs = span.periods()
    read: dict[str, list[SensorReadings]] = {
        name: (
            span.client.readings("air", (name,), site.id, span.start, span.stop)
            if span.begun
            else []
        )
        for name in _FIELDS
    }
    if not any(r.points or r.carried for found in read.values() for r in found):
        return [_empty(b.period) for b in bs], [
            f"{site.name}: 无空气传感器数据 / no air sensor data"
        ]
    co2 = read["co2_ppm"]
    threshold = span.ask.co2_ppm
    # Any room over: the sum of the rooms' 0/1 functions is above 0.
    anyone = [
        Segment(s.start, s.end, 1.0 if s.value > 0 else 0.0)
        for s in total([_over(r, threshold, span) for r in co2], span.start, span.stop)
    ]
    over_s = integrate(anyone, [(b.start, b.end) for b in bs])
    rows: list[Row] = []
    for i, b in enumerate(bs):
        ppm = _samples(co2, "co2_ppm", b)
        temps = _samples(read["temperature_c"], "temperature_c", b)
        humid = _samples(read["humidity_pct"], "humidity_pct", b)
        rows.append(
            {
                "period": b.period,
                "co2_mean": round(sum(ppm) / len(ppm)) if ppm else None,
                "co2_max": round(max(ppm)) if ppm else None,
                "co2_over_min": rounded(over_s[i] / 60, 1) if co2 else None,
                "temperature_mean": rounded(sum(temps) / len(temps), 1) if temps else None,
                "humidity_mean": rounded(sum(humid) / len(humid), 1) if humid else None,
            }
        )
    notes = [] if co2 else [f"{site.name}: 无二氧化碳数据 / no CO₂ data"]
    return rows, notes


def _empty(period: datetime) -> Row:
    return {"period": period, **dict.fromkeys(_COLUMN_KEYS)}


def _columns(ask: Ask) -> tuple[Column, ...]:
    over = f"{ask.co2_ppm:g} ppm"
    return (
        PERIOD,
        Column("co2_mean", "平均二氧化碳", "Mean CO₂", "ppm", "int"),
        Column("co2_max", "最高二氧化碳", "Peak CO₂", "ppm", "int"),
        Column("co2_over_min", f"二氧化碳超过 {over}", f"CO₂ over {over}", "min", "float"),
        Column("temperature_mean", "平均温度", "Mean temperature", "°C", "float"),
        Column("humidity_mean", "平均湿度", "Mean humidity", "%", "float"),
    )


_COLUMN_KEYS = [c.key for c in _columns(Ask())[1:]]

#: The air of a site's rooms per period (default: hour): mean and peak CO₂ of the readings,
#: minutes with CO₂ over ``Ask.co2_ppm`` in any room, mean temperature and humidity.
AIR = Figure("air", "室内空气", "Indoor air", columns=_columns, rows=_air_rows, by="hour")
