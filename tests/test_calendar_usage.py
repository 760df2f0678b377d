"""Seat utilisation honours the holiday calendar, against a real InfluxDB.

A study room that keeps the working calendar (``on_holidays: closed``, ``on_makeup_workdays:
workday``), open 09:00-17:00 Monday to Friday, two seats, over 2026-02-13 .. 2026-02-28 (local
time, Asia/Shanghai). Worked out by hand:

- open days: Fri 02-13; Sat 02-14 (调休上班); Tue-Fri 02-24..27; Sat 02-28 (调休上班) = 7 days of
  8 h = 56 open hours; 02-15..02-23 (春节, 9 days) and the Sunday 03-01 are closed;
- seat S1 occupied Sat 02-14 10:00-12:00 (2 h, counted), and Mon 02-16 10:00-12:00 (the
  holiday: not counted); seat S2 occupied Sat 02-28 09:00-13:00 (4 h, counted);
- utilisation = 100 × 6 ÷ (2 × 56) = 5.36 %.

Without the calendar the same readings count 11 weekdays (88 h, the nine days off among them)
and no Saturday: 100 × 2 ÷ 176 = 1.14 %.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from central.influx import Point, datetime_to_ns, encode_line
from central.sites import SiteDirectory, load_directory
from central.usage.client import InfluxQLClient, StatsInfluxConfig
from central.usage.figures import UTILISATION, Ask, compute, sites_in
from devstack import InfluxdProcess

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
SH = ZoneInfo("Asia/Shanghai")
SITE = "qibin-yinxing-study"

ROOM: dict[str, Any] = {
    "id": SITE,
    "name": "淇滨区银杏社区自习室",
    "kind": "book_house",
    "opening_hours": {"mon-fri": "09:00-17:00", "sat-sun": "closed"},
    "on_holidays": "closed",
    "on_makeup_workdays": "workday",
    "seats": [
        {"gateway": "gw1", "sensor": "room-a.1", "label": "S1"},
        {"gateway": "gw1", "sensor": "room-a.2", "label": "S2"},
    ],
}


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 2, day, hour, tzinfo=SH)


def seat(n: int, moment: datetime, occupied: int) -> Point:
    tags = {"site": SITE, "gateway": "gw1", "device": "room-a", "sensor": f"room-a.{n}"}
    return Point("seat", tags, {"occupied": occupied}, datetime_to_ns(moment))


READINGS = [
    seat(1, at(14, 10), 1), seat(1, at(14, 12), 0),  # the 调休 Saturday: counted
    seat(1, at(16, 10), 1), seat(1, at(16, 12), 0),  # 春节: closed, not counted
    seat(2, at(28, 9), 1), seat(2, at(28, 13), 0),  # the second 调休 Saturday
]  # fmt: skip


def directory(folder: Path, calendar: bool) -> SiteDirectory:
    document: dict[str, Any] = {"sites": [ROOM]}
    if calendar:
        document["calendar"] = str(ROOT / "config" / "calendar")
    path = folder / "sites.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return load_directory(path, path)


@pytest.fixture
def client(influxd: InfluxdProcess, influx_db: str) -> Iterator[InfluxQLClient]:
    body = "\n".join(encode_line(p) for p in READINGS)
    params = {"db": influx_db, "precision": "ns"}
    httpx.post(f"{influxd.url}/write", params=params, content=body).raise_for_status()
    with InfluxQLClient(StatsInfluxConfig(url=influxd.url, database=influx_db)) as reader:
        yield reader


def utilisation(client: InfluxQLClient, sites: SiteDirectory, by: Any = None) -> Any:
    return compute(
        UTILISATION, client, sites, sites_in(sites), at(13), datetime(2026, 3, 1, tzinfo=SH),
        Ask(by=by), now=datetime(2026, 3, 2, tzinfo=SH),
    )  # fmt: skip


def test_utilisation_counts_the_makeup_saturdays_and_not_the_spring_festival(
    client: InfluxQLClient, tmp_path: Path
) -> None:
    table = utilisation(client, directory(tmp_path, calendar=True))

    [row] = table.rows
    assert row["open_hours"] == 56.0
    assert row["available_seat_hours"] == 112.0
    assert row["occupied_seat_hours"] == 6.0
    assert row["utilisation"] == 5.36
    assert any("法定节假日 9 天、调休上班 2 天、临时闭馆 0 天" in note for note in table.notes)


def test_day_by_day_a_holiday_has_no_available_seat_hours(
    client: InfluxQLClient, tmp_path: Path
) -> None:
    table = utilisation(client, directory(tmp_path, calendar=True), by="day")
    by_day = {row["period"].day: row for row in table.rows}  # type: ignore[union-attr]

    assert (by_day[14]["open_hours"], by_day[14]["utilisation"]) == (8.0, 12.5)
    assert (by_day[16]["open_hours"], by_day[16]["utilisation"]) == (0.0, None)
    assert [day for day, row in by_day.items() if row["open_hours"]] == [13, 14, 24, 25, 26, 27, 28]


def test_without_the_calendar_the_same_readings_count_weekdays_only(
    client: InfluxQLClient, tmp_path: Path
) -> None:
    [row] = utilisation(client, directory(tmp_path, calendar=False)).rows

    assert (row["open_hours"], row["occupied_seat_hours"], row["utilisation"]) == (88.0, 2.0, 1.14)
