"""The statistics' reader: each sensor's readings of a site and a range, read with InfluxQL.

It reads through :class:`central.influx.reader.InfluxQLReader` (``GET /query``, any InfluxDB
version; how it asks and how failures are reported is said there); authentication is basic auth
(1.x users; 2.x and 3.x also take a token as the password) or ``Authorization: Token …`` (2.x,
3.x).

What InfluxDB does here, and what it does not:

- **InfluxDB selects**: one site's points of one measurement in ``[start, end)``, per sensor
  (``GROUP BY "gateway", "sensor"``), and the **last point before** ``start`` of each sensor
  (``SELECT LAST(...) … WHERE time < start``), so a state or a counter total carried into the
  range counts. ``LAST`` is a selector InfluxQL gets exactly right.
- **Python computes** everything on top (:mod:`central.usage.figures`): a seat's or a door's
  state holds until its next reading (boards report on change), so ``MEAN``/``INTEGRAL`` over
  ``GROUP BY time()`` buckets — which weigh readings, not the time between them, and know nothing
  of the state carried into a bucket — are wrong for it; counter totals fall back to 0 at a board
  reset, which ``NON_NEGATIVE_DIFFERENCE`` skips and ``SPREAD`` misreads; and stays are intervals
  between two readings. ``docs/statistics.md`` lists every query text this module sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from central.errors import CentralError, InfluxError
from central.influx.config import InfluxServer
from central.influx.reader import InfluxQLReader, Series
from qihe.configtypes import Duration, Name

__all__ = [
    "InfluxQLClient",
    "QueryError",
    "ReadingsSource",
    "SelectionError",
    "SensorReadings",
    "StatsInfluxConfig",
    "UsageError",
    "readings_queries",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UsageError(CentralError):
    """Base of the usage statistics' errors; its text is one line an operator can act on."""


class QueryError(UsageError, InfluxError):
    """An InfluxQL query failed: InfluxDB unreachable, refused, or answered with an error (the
    fields of :class:`~central.errors.InfluxError`; ``statement`` is the query)."""


class SelectionError(UsageError, ValueError):
    """What was asked for does not exist or makes no sense: an unknown site, an empty range."""


class StatsInfluxConfig(InfluxServer):
    """Where the statistics read from: any InfluxDB that answers InfluxQL on ``/query``."""

    #: 1.x database; 2.x: the database of the bucket's DBRP mapping; 3.x: the database.
    database: Name
    #: The ``rp`` parameter; the database's default retention policy when omitted.
    retention_policy: Name | None = None
    timeout: Duration = timedelta(seconds=30)
    #: How far before a range the last reading of a sensor is looked for (the state or total
    #: carried into the range). Bounded so the query never scans all history (InfluxDB 3.x
    #: refuses queries that touch too many files); a seat free for longer than this reads as
    #: "no data", which counts the same as free.
    lookback: Duration = timedelta(days=31)


@dataclass(frozen=True, slots=True)
class SensorReadings:
    """One sensor's readings of one measurement, from InfluxDB, in time order.

    ``carried`` is its last reading before the range (None when there is none within the
    lookback); ``points`` are its readings inside ``[start, end)``. Each reading is
    ``(time, {field: value})`` with the time in UTC.
    """

    site: str
    gateway: str
    sensor: str
    carried: tuple[datetime, dict[str, float]] | None
    points: tuple[tuple[datetime, dict[str, float]], ...] = field(default=())


class ReadingsSource(Protocol):
    """What the figures need from InfluxDB (a fake in unit tests, :class:`InfluxQLClient` live)."""

    def readings(
        self, measurement: str, fields: Sequence[str], site: str, start: datetime, end: datetime
    ) -> list[SensorReadings]: ...


def _influx_time(moment: datetime) -> str:
    """An InfluxQL time literal (RFC 3339, UTC, microseconds): ``'2025-03-04T16:00:00Z'``."""
    if moment.tzinfo is None:
        raise SelectionError(f"time {moment.isoformat()} has no time zone")
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return f"'{text}Z'"


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def readings_queries(
    measurement: str,
    fields: Sequence[str],
    site: str,
    start: datetime,
    end: datetime,
    lookback: timedelta,
) -> tuple[str, str]:
    """The two InfluxQL statements behind :meth:`InfluxQLClient.readings`: the last reading of
    each sensor before ``start`` (no earlier than ``start - lookback``), and every reading in
    ``[start, end)``."""
    where = f'"site" = {_literal(site)}'
    last = ", ".join(f"LAST({_ident(f)}) AS {_ident(f)}" for f in fields)
    raw = ", ".join(_ident(f) for f in fields)
    group = 'GROUP BY "gateway", "sensor"'
    carried = (
        f"SELECT {last} FROM {_ident(measurement)} WHERE {where} "
        f"AND time >= {_influx_time(start - lookback)} AND time < {_influx_time(start)} {group}"
    )
    inside = (
        f"SELECT {raw} FROM {_ident(measurement)} WHERE {where} "
        f"AND time >= {_influx_time(start)} AND time < {_influx_time(end)} {group}"
    )
    return carried, inside


def _time_of(value: Any) -> datetime:
    # epoch=ns: exact integers. Readings carry microseconds, so nothing is lost below that.
    if not isinstance(value, int):
        raise TypeError(f"time {value!r} is not an integer (asked for epoch=ns)")
    return _EPOCH + timedelta(microseconds=value // 1000)


def _fields_of(row: dict[str, Any], fields: Sequence[str]) -> dict[str, float] | None:
    out: dict[str, float] = {}
    for name in fields:
        value = row.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None  # a point without this field (another writer): not a reading of it
        # As InfluxDB answered: integer fields (states, totals) stay integers, air's floats
        # stay floats (a float 870.0 comes back as 870: the same number).
        out[name] = value
    return out


def _by_sensor(
    answer: list[Series], fields: Sequence[str]
) -> dict[tuple[str, str], list[tuple[datetime, dict[str, float]]]]:
    """The readings of ``fields`` in each series, by (gateway, sensor), in the answer's order."""
    out: dict[tuple[str, str], list[tuple[datetime, dict[str, float]]]] = {}
    for series in answer:
        points = out.setdefault((series.tags.get("gateway", ""), series.tags.get("sensor", "")), [])
        for row in series.rows():
            values = _fields_of(row, fields)
            if values is not None:
                points.append((_time_of(row["time"]), values))
    return out


class InfluxQLClient(InfluxQLReader):
    """The statistics' :class:`ReadingsSource` on InfluxDB; no I/O until a query; failures
    raise :class:`QueryError`.

    Use as a context manager (or call :meth:`close`). ``transport`` lets tests answer requests
    without a server (``httpx.MockTransport``).
    """

    error = QueryError

    def __init__(
        self, config: StatsInfluxConfig, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__(
            config,
            database=config.database,
            retention_policy=config.retention_policy,
            transport=transport,
        )
        self.lookback = config.lookback

    def readings(
        self, measurement: str, fields: Sequence[str], site: str, start: datetime, end: datetime
    ) -> list[SensorReadings]:
        """Each sensor's readings of ``fields`` at ``site`` in ``[start, end)``, with the reading
        carried into the range. Sorted by (gateway, sensor)."""
        carried_q, inside_q = readings_queries(measurement, fields, site, start, end, self.lookback)
        carried = {
            key: points[-1]
            for key, points in _by_sensor(self.query(carried_q), fields).items()
            if points
        }
        inside = _by_sensor(self.query(inside_q), fields)
        return [
            SensorReadings(
                site=site,
                gateway=gateway,
                sensor=sensor,
                carried=carried.get((gateway, sensor)),
                points=tuple(sorted(inside.get((gateway, sensor), []), key=lambda p: p[0])),
            )
            for gateway, sensor in sorted(carried.keys() | inside.keys())
        ]
