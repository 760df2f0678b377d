"""Usage figures against a real InfluxDB, with synthetic readings whose answers are worked out
by hand in the comments. All times below are local (Asia/Shanghai, UTC+8, no DST).

The readings (``READINGS``), site by site:

淇河书屋·馨苑二区站 (shancheng-xinyuan2, 山城区), open daily 08:30-21:30, seats A1..A4
(xinyuan2-a.1 .. .4):
  typical weeks, Tuesdays 10:00-11:00: 02-11 A1; 02-18 nobody; 02-25 A1+A2; 03-04 A1+A2+A3
  Wed 03-05: A3 occupied 09:00-11:30 (a repeated "occupied" at 10:00) and 14:00-15:00
             A4 occupied 07:00-09:30 (opens 08:30: 1.0 h of it inside opening hours)
  entrance counter gate.1 (in_total, out_total):
    03-04 20:00 (100,100) | 03-05 10:00 (130,110) | 12:00 (0,0) reset | 15:00 (12,2)
    | 18:00 (12,12) | 03-06 09:00 (22,12) | 10:00 (22,22)
  doors: front 03-04 22:00 closed; 03-05 08:30 open, 08:31 closed, 10:00 open, 10:00:30 open
         (repeat), 10:01 closed, 15:00 open, 15:02 closed
         back  03-04 23:00 open (carried in open); 03-05 01:00 closed, 02:00 open, 02:05 closed
淇河书屋·夜读厅 (shancheng-yedu, 山城区), open 00:00-24:00, seats Y1, Y2:
  Y1 occupied 03-05 23:00 -> 03-06 01:00 (crosses midnight); Y2 never reports
淇县淇园社区日间照料中心 (qixian-qiyuan-daycare, day_care), counter entrance:
  03-04 18:30 (50,50) | 03-05 12:00 (80,60) | 18:00 (95,95) | 03-06 09:00 (10,0) reset
  | 17:00 (38,38)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from central.influx import Point, datetime_to_ns, encode_line
from central.sites import SiteDirectory, load_directory
from central.usage.client import (
    InfluxQLClient,
    QueryError,
    SelectionError,
    StatsInfluxConfig,
    readings_queries,
)
from central.usage.figures import (
    ATTENDANCE,
    DOORS,
    OCCUPANCY,
    PEAKS,
    STAYS,
    TYPICAL,
    UTILISATION,
    VISITORS,
    Ask,
    compute,
    sites_in,
)
from central.usage.formats import _width, render_csv, render_table
from central.usage.run_figures import load_stats_setup, table_for
from central.usage.steps import Granularity, buckets, percentile
from central.usage.table import Table, Value
from devstack import InfluxdProcess, free_port
from qihe_cli.main import build_parser

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
SH = ZoneInfo("Asia/Shanghai")
X, N, DC = "shancheng-xinyuan2", "shancheng-yedu", "qixian-qiyuan-daycare"
X_NAME = "淇河书屋·馨苑二区站"

SITES_YAML = """\
timezone: Asia/Shanghai
sites:
  - id: shancheng-xinyuan2
    name: 淇河书屋·馨苑二区站
    name_en: Qihe Book House, Xinyuan No. 2
    kind: book_house
    district: 山城区
    district_en: Shancheng
    opening_hours:
      daily: "08:30-21:30"
    seat_grids:
      - {gateway: gw1, device: xinyuan2-a, count: 4, cols: 2, label_prefix: "A"}
  - id: shancheng-yedu
    name: 淇河书屋·夜读厅
    kind: book_house
    district: 山城区
    district_en: Shancheng
    opening_hours:
      daily: "00:00-24:00"
    seat_grids:
      - {gateway: gw1, device: yedu-a, count: 2, cols: 2, label_prefix: "Y"}
  - id: qixian-qiyuan-daycare
    name: 淇县淇园社区日间照料中心
    kind: day_care
    district: 淇县
    district_en: Qi County
    opening_hours:
      daily: "07:30-18:00"
"""


def at(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, second, tzinfo=SH)


def _seat(site: str, sensor: str, month: int, day: int, hh: int, mm: int, occupied: int) -> Point:
    device = sensor.rsplit(".", 1)[0]
    tags = {"site": site, "gateway": "gw1", "device": device, "sensor": sensor}
    return Point("seat", tags, {"occupied": occupied}, datetime_to_ns(at(month, day, hh, mm)))


def _people(site: str, sensor: str, moment: datetime, in_total: int, out_total: int) -> Point:
    tags = {"site": site, "gateway": "gw1", "device": "gate", "sensor": sensor}
    fields = {"in_total": in_total, "out_total": out_total}
    return Point("people", tags, fields, datetime_to_ns(moment))


def _door(sensor: str, moment: datetime, is_open: int) -> Point:
    tags = {"site": X, "gateway": "gw1", "device": "gpio", "sensor": sensor}
    return Point("door", tags, {"open": is_open}, datetime_to_ns(moment))


def _readings() -> list[Point]:
    points: list[Point] = []
    # Typical weeks: Tuesdays 10:00-11:00, 1, 0, 2 and 3 of the four seats.
    weeks = {(2, 11): [1], (2, 18): [], (2, 25): [1, 2], (3, 4): [1, 2, 3]}
    for (month, day), seats in weeks.items():
        for n in seats:
            points.append(_seat(X, f"xinyuan2-a.{n}", month, day, 10, 0, 1))
        for n in range(1, 5):  # every seat reports free at 11:00
            points.append(_seat(X, f"xinyuan2-a.{n}", month, day, 11, 0, 0))
    for hh, mm, occupied in ((9, 0, 1), (10, 0, 1), (11, 30, 0), (14, 0, 1), (15, 0, 0)):
        points.append(_seat(X, "xinyuan2-a.3", 3, 5, hh, mm, occupied))
    points.append(_seat(X, "xinyuan2-a.4", 3, 5, 7, 0, 1))
    points.append(_seat(X, "xinyuan2-a.4", 3, 5, 9, 30, 0))
    points.append(_seat(N, "yedu-a.1", 3, 5, 23, 0, 1))
    points.append(_seat(N, "yedu-a.1", 3, 6, 1, 0, 0))
    for moment, i, o in (
        (at(3, 4, 20), 100, 100),
        (at(3, 5, 10), 130, 110),
        (at(3, 5, 12), 0, 0),
        (at(3, 5, 15), 12, 2),
        (at(3, 5, 18), 12, 12),
        (at(3, 6, 9), 22, 12),
        (at(3, 6, 10), 22, 22),
    ):
        points.append(_people(X, "gate.1", moment, i, o))
    for moment, i, o in (
        (at(3, 4, 18, 30), 50, 50),
        (at(3, 5, 12), 80, 60),
        (at(3, 5, 18), 95, 95),
        (at(3, 6, 9), 10, 0),
        (at(3, 6, 17), 38, 38),
    ):
        points.append(_people(DC, "entrance", moment, i, o))
    for moment, is_open in (
        (at(3, 4, 22), 0),
        (at(3, 5, 8, 30), 1),
        (at(3, 5, 8, 31), 0),
        (at(3, 5, 10), 1),
        (at(3, 5, 10, 0, 30), 1),
        (at(3, 5, 10, 1), 0),
        (at(3, 5, 15), 1),
        (at(3, 5, 15, 2), 0),
    ):
        points.append(_door("front", moment, is_open))
    for moment, is_open in ((at(3, 4, 23), 1), (at(3, 5, 1), 0), (at(3, 5, 2), 1)):
        points.append(_door("back", moment, is_open))
    points.append(_door("back", at(3, 5, 2, 5), 0))
    return points


READINGS = _readings()


def _write(influxd: InfluxdProcess, db: str, points: list[Point], rp: str | None = None) -> None:
    params = {"db": db, "precision": "ns", **({"rp": rp} if rp else {})}
    body = "\n".join(encode_line(p) for p in points)
    httpx.post(f"{influxd.url}/write", params=params, content=body).raise_for_status()


@pytest.fixture
def sites_file(tmp_path: Path) -> Path:
    path = tmp_path / "sites.yaml"
    path.write_text(SITES_YAML, encoding="utf-8")
    return path


@pytest.fixture
def directory(sites_file: Path) -> SiteDirectory:
    return load_directory(sites_file, sites_file)


@pytest.fixture
def loaded(influxd: InfluxdProcess, influx_db: str) -> str:
    _write(influxd, influx_db, READINGS)
    return influx_db


@pytest.fixture
def client(influxd: InfluxdProcess, loaded: str) -> Iterator[InfluxQLClient]:
    with InfluxQLClient(StatsInfluxConfig(url=influxd.url, database=loaded)) as reader:
        yield reader


def only(table: Table, **match: Value) -> dict[str, Value]:
    rows = [r for r in table.rows if all(r.get(k) == v for k, v in match.items())]
    assert len(rows) == 1, rows
    return rows[0]


# --- the figures ----------------------------------------------------------------------------


def test_visitors_count_across_a_counter_reset(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    # 100 (carried in from 03-04) -> 130: +30; -> 0: reset, +0; -> 12: +12; -> 12: +0 = 42.
    table = compute(
        VISITORS, client, directory, sites_in(directory, [X]), at(3, 5), at(3, 6), Ask(by="day")
    )
    assert table.rows == ({"site": X, "site_name": X_NAME, "period": at(3, 5), "visitors": 42},)
    assert any("reset 1×" in note for note in table.notes)


def test_visitors_by_hour_land_in_the_hour_of_the_reading(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    table = compute(
        VISITORS, client, directory, sites_in(directory, [X]), at(3, 5), at(3, 6), Ask(by="hour")
    )
    by_hour = {row["period"]: row["visitors"] for row in table.rows}
    assert len(by_hour) == 24
    assert {p: v for p, v in by_hour.items() if v} == {at(3, 5, 10): 30, at(3, 5, 15): 12}


def test_visitors_by_week_and_month_start_on_monday_and_the_first(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    # 03-05 42 + 03-06 (12 -> 22) 10 = 52, in the ISO week of Monday 03-03 and in March.
    site = sites_in(directory, [X])
    week = compute(VISITORS, client, directory, site, at(3, 5), at(3, 7), Ask(by="week"))
    month = compute(VISITORS, client, directory, site, at(3, 5), at(3, 7), Ask(by="month"))
    assert [(r["period"], r["visitors"]) for r in week.rows] == [(at(3, 3), 52)]
    assert [(r["period"], r["visitors"]) for r in month.rows] == [(at(3, 1), 52)]


def test_visitors_of_a_district_include_sites_without_a_counter(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    sites = sites_in(directory, district="山城区")
    table = compute(VISITORS, client, directory, sites, at(3, 5), at(3, 7), Ask(by="day"))
    assert [(r["site"], r["period"], r["visitors"]) for r in table.rows] == [
        (X, at(3, 5), 42),
        (X, at(3, 6), 10),
        (N, at(3, 5), None),
        (N, at(3, 6), None),
    ]
    assert "淇河书屋·夜读厅: 无入口计数器数据 / no entrance counter data" in table.notes


def test_seat_hours_count_only_within_opening_hours(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    # A3: 09:00-11:30 + 14:00-15:00 = 3.5 seat-hours; A4: 07:00-09:30, open from 08:30: 1.0.
    # Open 08:30-21:30 = 13 h; 4 seats: 52 seat-hours available; 4.5 / 52 = 8.65 %.
    sites = sites_in(directory, [X])
    per_seat = compute(UTILISATION, client, directory, sites, at(3, 5), at(3, 6), Ask(per="seat"))
    assert [(r["seat"], r["occupied_seat_hours"], r["utilisation"]) for r in per_seat.rows] == [
        ("A1", 0.0, 0.0),
        ("A2", 0.0, 0.0),
        ("A3", 3.5, 26.92),  # 3.5 / 13
        ("A4", 1.0, 7.69),  # 1 / 13
    ]
    per_site = compute(UTILISATION, client, directory, sites, at(3, 5), at(3, 6))
    assert per_site.rows == (
        {
            "site": X,
            "site_name": X_NAME,
            "seats": 4,
            "open_hours": 13.0,
            "occupied_seat_hours": 4.5,
            "available_seat_hours": 52.0,
            "utilisation": 8.65,
        },
    )


def test_a_seat_occupied_across_midnight_splits_into_two_days(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    # Y1 23:00-01:00: 1 h on 03-05, 1 h on 03-06. Open all day, 2 seats: 48 seat-hours a day,
    # 1 / 48 = 2.08 %. Y2 never reports: available, never occupied (said in a note).
    table = compute(
        UTILISATION, client, directory, sites_in(directory, [N]), at(3, 5), at(3, 7), Ask(by="day")
    )
    assert [
        (r["period"], r["open_hours"], r["occupied_seat_hours"], r["utilisation"])
        for r in table.rows
    ] == [(at(3, 5), 24.0, 1.0, 2.08), (at(3, 6), 24.0, 1.0, 2.08)]
    assert any("1 seats without data" in note and "Y2" in note for note in table.notes)


def test_occupancy_is_time_weighted(client: InfluxQLClient, directory: SiteDirectory) -> None:
    # People inside (in - out): 20 from 10:00 to 12:00, 10 from 15:00 to 18:00, else 0:
    # (20*2 + 10*3) / 24 = 2.92, max 20. Seats: A4 2.5 h + A3 3.5 h = 6 seat-hours / 24 h
    # = 0.25; both A3 and A4 from 09:00 to 09:30: max 2.
    sites = sites_in(directory, [X])
    day = compute(OCCUPANCY, client, directory, sites, at(3, 5), at(3, 6), Ask(by="day"))
    assert day.rows == (
        {
            "site": X,
            "site_name": X_NAME,
            "period": at(3, 5),
            "people_avg": 2.92,
            "people_max": 20,
            "seats_occupied_avg": 0.25,
            "seats_occupied_max": 2,
        },
    )
    # 09:00-10:00: A3 all hour, A4 until 09:30: 1.5 on average, 2 at most; nobody counted in.
    hour = compute(OCCUPANCY, client, directory, sites, at(3, 5, 9), at(3, 5, 11), Ask(by="hour"))
    assert [
        (r["period"], r["people_avg"], r["people_max"], r["seats_occupied_avg"]) for r in hour.rows
    ] == [(at(3, 5, 9), 0.0, 0, 1.5), (at(3, 5, 10), 20.0, 20, 1.0)]


def test_peak_hour_and_busiest_weekday(client: InfluxQLClient, directory: SiteDirectory) -> None:
    # People inside per hour over 03-05 and 03-06: 10:00 (20 + 0)/2 = 10 and 11:00 10 (the
    # earlier wins a tie); 09:00 (0 + 10)/2 = 5. Visitors: Wed 42, Thu 10.
    # The reading room has no counter: its peak comes from seats, 23:00 and 00:00 each
    # (1 + 0)/2 = 0.5, the earlier hour wins.
    table = compute(PEAKS, client, directory, sites_in(directory, [X, N]), at(3, 5), at(3, 7))
    assert only(table, site=X) == {
        "site": X,
        "site_name": X_NAME,
        "peak_hour": "10:00-11:00",
        "peak_people_avg": 10.0,
        "busiest_weekday": "周三 Wed",
        "busiest_weekday_visitors": 42.0,
    }
    yedu = only(table, site=N)
    assert (yedu["peak_hour"], yedu["peak_people_avg"], yedu["busiest_weekday"]) == (
        "00:00-01:00",
        0.5,
        None,
    )


def test_stays_of_a_day(client: InfluxQLClient, directory: SiteDirectory) -> None:
    # A4 07:00-09:30 150 min; A3 09:00-11:30 150 min (the repeat at 10:00 does not split it),
    # 14:00-15:00 60 min: 3 visits, mean 120, median 150.
    table = compute(STAYS, client, directory, sites_in(directory, [X, DC]), at(3, 5), at(3, 6))
    # The day-care centre has no seats: no visits to count (not 0), said in a note.
    assert only(table, site=DC)["visits"] is None
    assert "淇县淇园社区日间照料中心: 目录中没有座位 / no seats in the directory" in table.notes
    assert table.rows[:1] == (
        {
            "site": X,
            "site_name": X_NAME,
            "visits": 3,
            "avg_stay_min": 120.0,
            "median_stay_min": 150.0,
        },
    )


def test_a_stay_cut_by_the_range_counts_its_inside_part(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    # Range 10:00-14:30: A3 occupied since 09:00 (carried in) until 11:30 -> 90 min; 14:00 until
    # the range ends at 14:30 -> 30 min. Mean and median 60.
    table = compute(
        STAYS, client, directory, sites_in(directory, [X]), at(3, 5, 10), at(3, 5, 14, 30)
    )
    assert only(table, site=X)["visits"] == 2
    assert only(table, site=X)["avg_stay_min"] == 60.0
    # Y1 23:00-01:00 is one visit of 120 min over both days, 60 min when the range ends at 24:00.
    both = compute(STAYS, client, directory, sites_in(directory, [N]), at(3, 5), at(3, 7))
    first = compute(STAYS, client, directory, sites_in(directory, [N]), at(3, 5), at(3, 6))
    assert (only(both, site=N)["visits"], only(both, site=N)["avg_stay_min"]) == (1, 120.0)
    assert (only(first, site=N)["visits"], only(first, site=N)["avg_stay_min"]) == (1, 60.0)


def test_door_openings_are_closed_to_open_transitions(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    # front: 08:30, 10:00 (10:00:30 repeats "open"), 15:00 = 3; back: carried in open (not an
    # opening), closed 01:00, open 02:00 = 1. 4 on 03-05, one each at 02, 08, 10 and 15 h.
    sites = sites_in(directory, [X])
    day = compute(DOORS, client, directory, sites, at(3, 5), at(3, 6), Ask(by="day"))
    assert [(r["period"], r["openings"]) for r in day.rows] == [(at(3, 5), 4)]
    hour = compute(DOORS, client, directory, sites, at(3, 5), at(3, 6), Ask(by="hour"))
    assert {r["period"]: r["openings"] for r in hour.rows if r["openings"]} == {
        at(3, 5, 2): 1,
        at(3, 5, 8): 1,
        at(3, 5, 10): 1,
        at(3, 5, 15): 1,
    }


def test_attendance_of_a_day_care_centre(client: InfluxQLClient, directory: SiteDirectory) -> None:
    # 50 -> 80 -> 95: 45 on 03-05; reset overnight: 10, then -> 38: +28 = 38 on 03-06.
    # The book house asked for as well is left out with a note.
    table = compute(ATTENDANCE, client, directory, sites_in(directory, [DC, X]), at(3, 5), at(3, 7))
    assert [(r["site"], r["date"], r["attendance"]) for r in table.rows] == [
        (DC, "2025-03-05", 45),
        (DC, "2025-03-06", 38),
    ]
    assert f"{X_NAME}: 不是日间照料中心，未列出 / not a day-care centre, left out" in table.notes


def test_typical_busy_times_are_percentiles_over_four_weeks(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    # Tuesdays 10:00-11:00 of the 4 weeks before Wed 03-05: 1, 0, 2, 3 of 4 seats = 25, 0, 50,
    # 75 %. Sorted 0, 25, 50, 75: P25 = 0 + 0.75*25 = 18.75, P50 = 37.5, P75 = 50 + 0.25*25
    # = 56.25. Every other hour of those weeks nobody sat: 0.
    table = compute(
        TYPICAL, client, directory, sites_in(directory, [X]), at(3, 5), at(3, 5), Ask(weeks=4)
    )
    assert len(table.rows) == 7 * 24
    tuesday_10 = only(table, weekday=1, hour=10)
    assert (tuesday_10["low"], tuesday_10["typical"], tuesday_10["high"]) == (18.75, 37.5, 56.25)
    others = [r for r in table.rows if (r["weekday"], r["hour"]) != (1, 10)]
    assert {(r["low"], r["typical"], r["high"]) for r in others} == {(0.0, 0.0, 0.0)}


def test_typical_of_a_site_without_seats_is_people_inside(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    # The centre has no seats; in the 4 weeks before 03-06 its counter shows people inside
    # only on Wed 03-05: 12:00-18:00, 80 - 60 = 20. So Wednesdays 12..17 h: samples 0, 0, 0,
    # 20 -> P25 0, P50 0, P75 5 (= 0 + 0.25 * 20).
    table = compute(
        TYPICAL, client, directory, sites_in(directory, [DC]), at(3, 6), at(3, 6), Ask(weeks=4)
    )
    assert (only(table, weekday=2, hour=12)["high"], only(table, weekday=2, hour=17)["high"]) == (
        5.0,
        5.0,
    )
    assert any("no seats: values are people inside" in note for note in table.notes)


def test_a_range_reaching_past_now_stops_at_now(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    # With "now" at 03-05 12:30, A3 has been occupied 09:00-11:30 only: 2.5 h of 4 h open
    # (08:30-12:30) for A3, and the hours after 12:30 have not begun.
    now = at(3, 5, 12, 30)
    sites = sites_in(directory, [X])
    table = compute(
        UTILISATION, client, directory, sites, at(3, 5), at(3, 6), Ask(per="seat"), now=now
    )
    assert only(table, seat="A3")["occupied_seat_hours"] == 2.5
    assert only(table, seat="A3")["open_hours"] == 4.0
    hourly = compute(
        VISITORS, client, directory, sites, at(3, 5), at(3, 6), Ask(by="hour"), now=now
    )
    assert hourly.rows[-1]["period"] == at(3, 5, 12)


# --- local midnights: the day, the month and the year turn at 16:00 UTC ------------------------

MIDNIGHTS = [
    pytest.param(datetime(2026, 11, 28, 16, tzinfo=UTC), id="local-midnight"),
    pytest.param(datetime(2026, 11, 30, 16, tzinfo=UTC), id="month-end"),
    pytest.param(datetime(2026, 12, 31, 16, tzinfo=UTC), id="year-end"),
]


def around(influxd: InfluxdProcess, db: str, midnight: datetime) -> None:
    """Readings around a local ``midnight`` (a UTC time). The counter of 馨苑 (X): 500 the evening
    before (carried in), 510 a second before midnight, 513 at midnight, 520 at 00:20 and 530 at
    00:40. The reading room's Y1 occupied 23:30-00:30."""
    minute = timedelta(minutes=1)
    points = [
        _people(X, "gate.1", midnight - 4 * 60 * minute, 500, 0),
        _people(X, "gate.1", midnight - timedelta(seconds=1), 510, 0),
        _people(X, "gate.1", midnight, 513, 0),
        _people(X, "gate.1", midnight + 20 * minute, 520, 0),
        _people(X, "gate.1", midnight + 40 * minute, 530, 0),
    ]
    tags = {"site": N, "gateway": "gw1", "device": "yedu-a", "sensor": "yedu-a.1"}
    for moment, occupied in ((midnight - 30 * minute, 1), (midnight + 30 * minute, 0)):
        points.append(Point("seat", tags, {"occupied": occupied}, datetime_to_ns(moment)))
    _write(influxd, db, points)


@pytest.fixture
def boundary_client(influxd: InfluxdProcess, influx_db: str) -> Iterator[InfluxQLClient]:
    with InfluxQLClient(StatsInfluxConfig(url=influxd.url, database=influx_db)) as reader:
        yield reader


@pytest.mark.parametrize("midnight", MIDNIGHTS)
def test_visitors_land_on_the_local_day_month_and_year_of_their_reading(
    influxd: InfluxdProcess,
    influx_db: str,
    boundary_client: InfluxQLClient,
    directory: SiteDirectory,
    midnight: datetime,
) -> None:
    # +10 up to 23:59:59 on the day before; +3 at 00:00 and +7 at 00:20 on the new day; 00:40
    # comes after "now" (00:30) and is not counted yet.
    around(influxd, influx_db, midnight)
    before, after = (midnight - timedelta(days=1)).astimezone(SH), midnight.astimezone(SH)
    sites, now = sites_in(directory, [X]), midnight + timedelta(minutes=30)
    two_days = (before, after + timedelta(days=1))

    def table(by: Granularity) -> list[tuple[Value, Value]]:
        found = compute(VISITORS, boundary_client, directory, sites, *two_days, Ask(by=by), now=now)
        return [(r["period"], r["visitors"]) for r in found.rows]

    assert table("day") == [(before, 10), (after, 10)]
    hours = table("hour")
    assert len(hours) == 25  # the day before, and the new day's hour that has begun
    assert [(p, v) for p, v in hours if v] == [(after - timedelta(hours=1), 10), (after, 10)]
    months = [(before.replace(day=1), 10), (after.replace(day=1), 10)]
    same_month = before.month == after.month
    assert table("month") == ([(before.replace(day=1), 20)] if same_month else months)
    later = compute(
        VISITORS,
        boundary_client,
        directory,
        sites,
        *two_days,
        Ask(by="day"),
        now=now + timedelta(hours=1),
    )
    assert [r["visitors"] for r in later.rows] == [10, 20]


@pytest.mark.parametrize("midnight", MIDNIGHTS)
def test_a_seat_occupied_across_a_local_midnight_counts_on_both_days_until_now(
    influxd: InfluxdProcess,
    influx_db: str,
    boundary_client: InfluxQLClient,
    directory: SiteDirectory,
    midnight: datetime,
) -> None:
    # Y1 23:30-00:30; "now" is 00:15: 0.5 h on the day before (of 48 seat-hours), 0.25 h on
    # the new day, open (all day) for the 0.25 h that has passed.
    around(influxd, influx_db, midnight)
    before, after = (midnight - timedelta(days=1)).astimezone(SH), midnight.astimezone(SH)
    now = midnight + timedelta(minutes=15)
    table = compute(
        UTILISATION,
        boundary_client,
        directory,
        sites_in(directory, [N]),
        before,
        after + timedelta(days=1),
        Ask(by="day"),
        now=now,
    )
    assert [
        (r["period"], r["open_hours"], r["occupied_seat_hours"], r["utilisation"])
        for r in table.rows
    ] == [(before, 24.0, 0.5, 1.04), (after, 0.25, 0.25, 50.0)]


@pytest.mark.parametrize(
    ("by", "periods"),
    [("day", ["2026-12-31", "2027-01-01"]), ("month", ["2026-12-01", "2027-01-01"])],
)
def test_the_command_counts_new_years_eve_and_new_years_day_apart(
    tmp_path: Path,
    sites_file: Path,
    influxd: InfluxdProcess,
    influx_db: str,
    boundary_client: InfluxQLClient,
    by: str,
    periods: list[str],
) -> None:
    """``qihe stats visitors --from 2026-12-31 --to 2027-01-01`` run at 00:30 on New Year's Day
    in Hebi (2026-12-31 16:30 UTC): local dates, and the range stops at that moment."""
    new_year = datetime(2026, 12, 31, 16, tzinfo=UTC)
    around(influxd, influx_db, new_year)
    _, directory = load_stats_setup(_stats_config(tmp_path, sites_file, influxd.url, influx_db))
    args = build_parser().parse_args(
        ["stats", "visitors", "--config", "unused.yaml", "--site", X,
         "--from", "2026-12-31", "--to", "2027-01-01", "--by", by]
    )  # fmt: skip

    table = table_for(args, directory, boundary_client, now=new_year + timedelta(minutes=30))

    assert [(r["period"], r["visitors"]) for r in table.rows] == [
        (datetime.fromisoformat(f"{p}T00:00:00+08:00"), 10) for p in periods
    ]


def test_retention_policy_is_sent_as_rp(influxd: InfluxdProcess, influx_db: str) -> None:
    influxd.query(f'CREATE RETENTION POLICY "short" ON "{influx_db}" DURATION INF REPLICATION 1')
    points = [_people(X, "gate.1", at(3, 5, 9), 5, 0), _people(X, "gate.1", at(3, 5, 11), 9, 0)]
    _write(influxd, influx_db, points, rp="short")
    directory = SiteDirectory.model_validate(
        {"sites": [{"id": X, "name": X_NAME, "district": "山城区"}]}
    )
    config = StatsInfluxConfig(url=influxd.url, database=influx_db, retention_policy="short")
    with InfluxQLClient(config) as short:
        table = compute(
            VISITORS, short, directory, directory.sites, at(3, 5), at(3, 6), Ask(by="day")
        )
    assert table.values("visitors") == [4]


# --- selection, client errors, interval arithmetic --------------------------------------------


def test_sites_are_chosen_by_id_and_by_district(directory: SiteDirectory) -> None:
    assert [s.id for s in sites_in(directory, district="山城区")] == [X, N]
    assert [s.id for s in sites_in(directory, district="shancheng")] == [X, N]
    assert [s.id for s in sites_in(directory, [N], district="山城区")] == [N]
    with pytest.raises(SelectionError, match="unknown site nowhere"):
        sites_in(directory, ["nowhere"])
    with pytest.raises(SelectionError, match="unknown district 火星区"):
        sites_in(directory, district="火星区")
    with pytest.raises(SelectionError, match="none of the sites"):
        sites_in(directory, [DC], district="山城区")


def test_query_error_names_the_query_and_the_server(influxd: InfluxdProcess) -> None:
    config = StatsInfluxConfig(url=influxd.url, database="no_such_db")
    with InfluxQLClient(config) as client, pytest.raises(QueryError) as caught:
        client.query('SELECT "occupied" FROM "seat"')
    assert str(caught.value) == (
        f'InfluxDB at {influxd.url}: database not found: no_such_db (query: SELECT "occupied" '
        f'FROM "seat")'
    )


def test_client_sends_the_token_or_basic_auth_and_explains_401() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"error": "authorization failed"})

    token = StatsInfluxConfig.model_validate(
        {"url": "http://influx.test:8086", "database": "qihe", "token": "read-token"}
    )
    refused = r"HTTP 401: not authorised \(authorization failed\)"
    with (
        InfluxQLClient(token, transport=httpx.MockTransport(answer)) as client,
        pytest.raises(QueryError, match=refused),
    ):
        client.query("SHOW MEASUREMENTS")
    assert seen[0].headers["Authorization"] == "Token read-token"
    assert seen[0].url.params["db"] == "qihe"
    assert seen[0].url.params["epoch"] == "ns"
    basic = StatsInfluxConfig.model_validate(
        {"url": "http://influx.test:8086", "database": "qihe", "username": "u", "password": "p"}
    )
    with (
        InfluxQLClient(basic, transport=httpx.MockTransport(answer)) as client,
        pytest.raises(QueryError),
    ):
        client.query("SHOW MEASUREMENTS")
    assert seen[1].headers["Authorization"] == "Basic dTpw"


def test_a_truncated_answer_is_refused() -> None:
    body = {"results": [{"statement_id": 0, "series": [], "partial": True}]}
    config = StatsInfluxConfig(url="http://influx.test:8086", database="qihe")
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=body))
    with (
        InfluxQLClient(config, transport=transport) as client,
        pytest.raises(QueryError, match="cut short"),
    ):
        client.query("SELECT * FROM seat")


def test_the_documented_queries_are_the_ones_sent() -> None:
    doc = (ROOT / "docs" / "statistics.md").read_text(encoding="utf-8")
    carried, inside = readings_queries(
        "people", ("in_total", "out_total"), X, at(3, 5), at(3, 6), timedelta(days=31)
    )
    assert carried in doc
    assert inside in doc


def test_days_follow_local_midnight_across_a_dst_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2025, 3, 29, tzinfo=berlin).astimezone(UTC)
    stop = datetime(2025, 4, 1, tzinfo=berlin).astimezone(UTC)
    days = buckets(start, stop, "day", berlin)
    assert [b.period.day for b in days] == [29, 30, 31]
    assert [b.seconds / 3600 for b in days] == [24, 23, 24]
    hours = buckets(start, stop, "hour", berlin)
    assert len(hours) == 71


def test_percentiles_interpolate_linearly() -> None:
    assert [percentile([75, 0, 50, 25], q) for q in (25, 50, 75)] == [18.75, 37.5, 56.25]
    assert percentile([7], 75) == 7


# --- output -----------------------------------------------------------------------------------


def test_the_table_aligns_chinese_names(client: InfluxQLClient, directory: SiteDirectory) -> None:
    table = compute(
        VISITORS,
        client,
        directory,
        sites_in(directory, district="山城区"),
        at(3, 5),
        at(3, 7),
        Ask(by="day"),
    )
    text = render_table(table)
    lines = text.splitlines()
    assert lines[0] == "访客人次 Visitors"
    rows = [line for line in lines if line.startswith("shancheng-")]
    assert len(rows) == 4
    # The dates start in the same terminal column on every row, Chinese names before them.
    assert len({_width(line[: line.index("2025-03-0")]) for line in rows}) == 1
    assert "淇河书屋·馨苑二区站" in rows[0]
    assert rows[0].endswith("42")


def test_csv_has_a_bom_and_iso_local_times(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    table = compute(
        VISITORS, client, directory, sites_in(directory, [X]), at(3, 5), at(3, 6), Ask(by="day")
    )
    assert (
        render_csv(table)
        == (
            "\ufeff站点编号 Site ID,站点 Site,时段 Period,访客 Visitors (人次)\r\n"
            "shancheng-xinyuan2,淇河书屋·馨苑二区站,2025-03-05T00:00:00+08:00,42\r\n"
        ).encode()
    )


# --- the command ------------------------------------------------------------------------------


def _stats_config(tmp_path: Path, sites_file: Path, url: str, db: str) -> Path:
    path = tmp_path / "stats.yaml"
    path.write_text(
        f"sites: {sites_file.name}\ninflux:\n  url: {url}\n  database: {db}\n  timeout: 5\n",
        encoding="utf-8",
    )
    return path


def qihe(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONUTF8": "1"}
    command = [sys.executable, "-m", "qihe_cli.main", "stats", *map(str, args)]
    return subprocess.run(command, capture_output=True, cwd=ROOT, env=env, timeout=60)


def test_cli_writes_exact_csv(
    tmp_path: Path, sites_file: Path, influxd: InfluxdProcess, loaded: str
) -> None:
    config = _stats_config(tmp_path, sites_file, influxd.url, loaded)
    done = qihe(
        "visitors",
        "--config",
        config,
        "--district",
        "山城区",
        "--from",
        "2025-03-05",
        "--to",
        "2025-03-06",
        "--format",
        "csv",
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode("utf-8") == (
        "\ufeff站点编号 Site ID,站点 Site,时段 Period,访客 Visitors (人次)\r\n"
        "shancheng-xinyuan2,淇河书屋·馨苑二区站,2025-03-05T00:00:00+08:00,42\r\n"
        "shancheng-xinyuan2,淇河书屋·馨苑二区站,2025-03-06T00:00:00+08:00,10\r\n"
        "shancheng-yedu,淇河书屋·夜读厅,2025-03-05T00:00:00+08:00,\r\n"
        "shancheng-yedu,淇河书屋·夜读厅,2025-03-06T00:00:00+08:00,\r\n"
    )
    assert "注 note: 淇河书屋·夜读厅: 无入口计数器数据" in done.stderr.decode("utf-8")


def test_cli_prints_a_table_and_writes_json(
    tmp_path: Path, sites_file: Path, influxd: InfluxdProcess, loaded: str
) -> None:
    config = _stats_config(tmp_path, sites_file, influxd.url, loaded)
    shown = qihe(
        "utilisation", "--config", config, "--site", X, "--from", "2025-03-05", "--to", "2025-03-05"
    )
    assert shown.returncode == 0, shown.stderr.decode()
    text = shown.stdout.decode("utf-8")
    assert text.splitlines()[0] == "座位利用率 Seat utilisation"
    assert X_NAME in text and "8.65" in text
    out = tmp_path / "attendance.json"
    written = qihe(
        "attendance",
        "--config",
        config,
        "--site",
        DC,
        "--from",
        "2025-03-05",
        "--to",
        "2025-03-06",
        "--format",
        "json",
        "--out",
        out,
    )
    assert written.returncode == 0, written.stderr.decode()
    assert json.loads(out.read_text(encoding="utf-8")) == [
        {
            "site": DC,
            "site_name": "淇县淇园社区日间照料中心",
            "date": "2025-03-05",
            "attendance": 45,
        },
        {
            "site": DC,
            "site_name": "淇县淇园社区日间照料中心",
            "date": "2025-03-06",
            "attendance": 38,
        },
    ]


def test_cli_typical_by_weekday_and_hour_in_json(
    tmp_path: Path, sites_file: Path, influxd: InfluxdProcess, loaded: str
) -> None:
    config = _stats_config(tmp_path, sites_file, influxd.url, loaded)
    done = qihe(
        "typical", "--config", config, "--site", X, "--to", "2025-03-04", "--format", "json"
    )
    assert done.returncode == 0, done.stderr.decode()
    rows = json.loads(done.stdout)
    assert {
        "site": X,
        "site_name": X_NAME,
        "weekday": 1,
        "hour": 10,
        "low": 18.75,
        "typical": 37.5,
        "high": 56.25,
    } in rows


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2025-02-30", "--to", "2025-03-05"), "--from '2025-02-30' is not a date"),
        (("--from", "2025-03-07", "--to", "2025-03-05"), "--from 2025-03-07 is after --to"),
        (
            ("--site", "nowhere", "--from", "2025-03-05", "--to", "2025-03-05"),
            "unknown site nowhere",
        ),
        (
            ("--district", "火星区", "--from", "2025-03-05", "--to", "2025-03-05"),
            "unknown district 火星区",
        ),
    ],
    ids=["bad-date", "from-after-to", "unknown-site", "unknown-district"],
)
def test_cli_refuses_bad_input_in_one_line(
    tmp_path: Path, sites_file: Path, args: tuple[str, ...], message: str
) -> None:
    # Refused before any query: the URL points nowhere.
    config = _stats_config(tmp_path, sites_file, f"http://127.0.0.1:{free_port()}", "qihe")
    done = qihe("visitors", "--config", config, *args)
    err = done.stderr.decode("utf-8")
    assert done.returncode == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert done.stdout == b""


def test_cli_reports_unreachable_influxdb_in_one_line(tmp_path: Path, sites_file: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    config = _stats_config(tmp_path, sites_file, url, "qihe")
    done = qihe("visitors", "--config", config, "--from", "2025-03-05", "--to", "2025-03-05")
    err = done.stderr.decode("utf-8")
    assert done.returncode == 1
    assert err.startswith(f"qihe stats: InfluxDB at {url}: unreachable")
    assert err.count("\n") == 1 and "(query: SELECT LAST(" in err and "Traceback" not in err


def test_cli_reports_a_missing_config_in_one_line(tmp_path: Path) -> None:
    done = qihe(
        "peaks", "--config", tmp_path / "nope.yaml", "--from", "2025-03-05", "--to", "2025-03-05"
    )
    assert done.returncode == 2
    assert done.stderr.decode().strip().endswith("nope.yaml: config file not found")


def test_sample_config_loads() -> None:
    config, directory = load_stats_setup(ROOT / "config" / "stats.yaml")
    assert config.influx.database == "qihe"
    assert config.influx.lookback == timedelta(days=31)
    assert any(site.district == "山城区" for site in directory.sites)


def test_cli_writes_a_districts_monthly_report_with_charts_and_progress(
    tmp_path: Path, sites_file: Path, influxd: InfluxdProcess, loaded: str
) -> None:
    config = _stats_config(tmp_path, sites_file, influxd.url, loaded)
    out = tmp_path / "report"

    done = qihe(
        "report", "--config", config, "--district", "山城区", "--month", "2025-03", "--out", out
    )

    assert done.returncode == 0, done.stderr.decode()
    report = Path(done.stdout.decode().strip())
    assert report == out / "report.html"
    html = report.read_text(encoding="utf-8")
    assert "山城区" in html and X_NAME in html
    assert html.count("data:image/png;base64,") >= 3  # visitors, utilisation, an hourly profile
    progress = [line for line in done.stderr.decode().splitlines() if line.startswith("[")]
    steps = [tuple(map(int, line[1:].split("]")[0].split("/"))) for line in progress]
    assert [n for n, _ in steps] == list(range(1, len(steps) + 1))
    assert steps[-1][0] == steps[-1][1]
    assert (out / "daily-visitors.png").read_bytes().startswith(b"\x89PNG")


def test_cli_refuses_a_bad_month_in_one_line(tmp_path: Path, sites_file: Path) -> None:
    config = _stats_config(tmp_path, sites_file, "http://127.0.0.1:9", "x")

    done = qihe(
        "report",
        "--config",
        config,
        "--district",
        "山城区",
        "--month",
        "2025-13",
        "--out",
        tmp_path,
    )

    assert done.returncode == 2
    assert "is not a month: use YYYY-MM" in done.stderr.decode()
    assert b"Traceback" not in done.stderr
