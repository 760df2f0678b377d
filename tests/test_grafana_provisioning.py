"""Grafana provisioning (deploy/grafana): the files parse, and every panel's InfluxQL runs on the
real InfluxDB 1.6.7 — with Grafana's macros replaced as Grafana would — and shows what it claims."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from central.usage.downsample.plan import LOCAL_TZ
from devstack import InfluxdProcess

pytestmark = pytest.mark.integration

GRAFANA = Path(__file__).resolve().parent.parent / "deploy" / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "qihe.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "qihe.yaml"
DASHBOARD = GRAFANA / "dashboards" / "qihe-usage.json"

SITE = "qibin-taoyuan"
#: A fixed local day, the last of a month (no wall clock: the queries name their range); the
#: day before gives the visitors panel its baseline.
DAY = date(2026, 11, 30)
BEFORE = DAY - timedelta(days=1)
START = datetime.combine(BEFORE, datetime.min.time(), LOCAL_TZ).astimezone(UTC)
END = datetime.combine(DAY + timedelta(days=1), datetime.min.time(), LOCAL_TZ).astimezone(UTC)


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panels() -> list[dict[str, Any]]:
    return list(load_dashboard()["panels"])


def panel(title_en: str) -> dict[str, Any]:
    return next(p for p in panels() if p["title"].endswith(title_en))


def at(hh_mm: str, day: date = DAY) -> datetime:
    hours, minutes = (int(part) for part in hh_mm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=UTC)


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 10**9


def grafana(query: str, *, site: str = SITE, interval: str = "1h") -> str:
    """The query as Grafana sends it for a fixed range, an interval and one site."""
    time_filter = f"time >= '{START:%Y-%m-%dT%H:%M:%SZ}' AND time < '{END:%Y-%m-%dT%H:%M:%SZ}'"
    text = query.replace("$timeFilter", time_filter).replace("$__interval", interval)
    text = text.replace("$site", site)  # ids are slugs: nothing to escape in a regex
    assert not re.search(r"\$[A-Za-z_]", text), text
    return text


def tagged(
    influxd: InfluxdProcess, database: str, query: str, column: str
) -> dict[tuple[tuple[str, ...], int], Any]:
    """``{(tag values, time ns): value}`` of one column of a panel's answer."""
    out: dict[tuple[tuple[str, ...], int], Any] = {}
    for result in influxd.query(query, database)["results"]:
        for series in result.get("series", []):
            tags = tuple(v for _, v in sorted(series.get("tags", {}).items()))
            index = series["columns"].index(column)
            for values in series["values"]:
                out[(tags, values[0])] = values[index]
    return out


LINES = [
    # two seats, taken 09:10-10:40 and 09:20-11:00 UTC on DAY
    (
        "seat,site={s},gateway=gw1,device=board-a,sensor=board-a.1 occupied=1i",
        at("09:10"),
    ),
    ("seat,site={s},gateway=gw1,device=board-a,sensor=board-a.1 occupied=0i", at("10:40")),
    ("seat,site={s},gateway=gw1,device=board-a,sensor=board-a.2 occupied=1i", at("09:20")),
    ("seat,site={s},gateway=gw1,device=board-a,sensor=board-a.2 occupied=0i", at("11:00")),
    # the entrance counter: 80 in by the end of the day before, 120 by the end of DAY
    (
        "people,site={s},gateway=gw1,device=board-a,sensor=board-a.1 in_total=50i,out_total=40i",
        at("10:00", BEFORE),
    ),
    (
        "people,site={s},gateway=gw1,device=board-a,sensor=board-a.1 in_total=80i,out_total=70i",
        at("12:00", BEFORE),
    ),
    (
        "people,site={s},gateway=gw1,device=board-a,sensor=board-a.1 in_total=90i,out_total=85i",
        at("09:00"),
    ),
    (
        "people,site={s},gateway=gw1,device=board-a,sensor=board-a.1 in_total=120i,out_total=100i",
        at("11:00"),
    ),
    *(
        (f"door,site={{s}},gateway=gw1,device=gpio,sensor=back-door open={state}i", at(t))
        for t, state in [("09:05", 1), ("09:06", 0), ("09:30", 1), ("09:45", 0), ("10:10", 1)]
    ),
    ("gateway_status,site={s},gateway=gw1 online=1i,session=7i", at("08:00", BEFORE)),
    ("gateway_status,site={s},gateway=gw1 online=0i,session=7i", at("09:15")),
    ("gateway_status,site={s},gateway=gw1 online=1i,session=8i", at("09:50")),
    (
        "heartbeat,site={s},gateway=gw1,device=board-a,sensor=board-a "
        "uptime_s=100i,supply_mv=3700i",
        at("09:00"),
    ),
    (
        "heartbeat,site={s},gateway=gw1,device=board-a,sensor=board-a "
        "uptime_s=1300i,supply_mv=3650i",
        at("09:20"),
    ),
    *(
        (
            "link,site={s},gateway=gw1,device=board-a,sensor=board-a "
            f"frames={frames}i,crc_errors={crc}i,malformed=0i,lost={lost}i,duplicates=0i,"
            "reconnects=0i",
            at(t),
        )
        for t, frames, crc, lost in [
            ("09:00", 100, 0, 0),
            ("10:00", 160, 6, 2),
            ("11:00", 220, 6, 2),
        ]
    ),
    *(
        (
            "system,site={s},gateway=gw1,device=gateway,sensor=gw1 "
            f"disk_free_bytes={free}i,disk_total_bytes=31268536320i,mem_available_bytes=3221225472i,"
            "mem_total_bytes=4124626944i,load_1m=0.42",
            at(t),
        )
        for t, free in [("09:00", 20_000_000_000), ("09:30", 19_000_000_000)]
    ),
]


@pytest.fixture(scope="module")
def readings(influxd: InfluxdProcess) -> Iterator[str]:
    """A database with the synthetic readings of two sites (the second one to filter out)."""
    database = f"grafana_{os.getpid()}"
    influxd.create_database(database)
    body = "\n".join(
        f"{text.format(s=site)} {int(moment.timestamp())}"
        for site in (SITE, "shancheng-xinyuan2")
        for text, moment in LINES
    )
    response = httpx.post(
        f"{influxd.url}/write", params={"db": database, "precision": "s"}, content=body.encode()
    )
    assert response.status_code == 204, response.text
    yield database
    influxd.query(f'DROP DATABASE "{database}"')


# -- the files ----------------------------------------------------------------------------------


def test_the_data_source_is_influxql_on_the_qihe_database() -> None:
    config = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert (source["type"], source["uid"], source["access"]) == (
        "influxdb",
        "qihe-influxdb",
        "proxy",
    )
    assert source["jsonData"]["version"] == "InfluxQL"
    assert source["jsonData"]["dbName"] == "qihe"
    assert source["url"] == "${QIHE_INFLUX_URL}"
    assert source["secureJsonData"] == {"password": "${QIHE_INFLUX_PASSWORD}"}


def test_the_commented_2x_variant_is_valid_and_sends_a_token() -> None:
    lines = DATASOURCES.read_text(encoding="utf-8").splitlines()
    start = lines.index("#  - name: 淇河书屋 Qihe InfluxDB")
    block = "\n".join(line[1:] for line in lines[start:] if line.startswith("#  "))
    (source,) = yaml.safe_load(block)
    assert source["uid"] == "qihe-influxdb"
    assert source["jsonData"]["version"] == "InfluxQL"
    assert source["jsonData"]["dbName"] == "qihe"
    assert source["jsonData"]["httpHeaderName1"] == "Authorization"
    assert source["secureJsonData"]["httpHeaderValue1"] == "Token ${QIHE_INFLUX_TOKEN}"


def test_the_dashboard_provider_loads_the_mounted_folder() -> None:
    config = yaml.safe_load(PROVIDERS.read_text(encoding="utf-8"))
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/qihe"
    readme = (GRAFANA / "README.md").read_text(encoding="utf-8")
    assert "/var/lib/grafana/dashboards/qihe" in readme
    assert sorted(p.name for p in (GRAFANA / "dashboards").iterdir()) == ["qihe-usage.json"]


def test_every_panel_reads_the_provisioned_source_in_influxql_with_grafanas_macros() -> None:
    dashboard = load_dashboard()
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["site"]
    assert len(panels()) == 8
    for p in panels():
        assert p["datasource"]["uid"] == "qihe-influxdb", p["title"]
        for target in p["targets"]:
            assert target["rawQuery"] is True
            query = target["query"]
            assert "$timeFilter" in query and "tz('Asia/Shanghai')" in query, p["title"]
            assert '"site" =~ /^$site$/' in query, p["title"]
            assert "GROUP BY time($__interval)" in query or "GROUP BY time(1d)" in query


def test_titles_are_chinese_first_then_english() -> None:
    for p in panels():
        zh, en = p["title"].split(" ", 1)
        assert re.fullmatch(r"[\u4e00-\u9fff]+", zh), p["title"]
        assert re.fullmatch(r"[A-Za-z][A-Za-z ]+", en), p["title"]


# -- the queries on InfluxDB 1.6.7 ----------------------------------------------------------------


def test_the_site_variable_lists_every_site(influxd: InfluxdProcess, readings: str) -> None:
    variable = load_dashboard()["templating"]["list"][0]
    values = [r["value"] for r in influxd.rows(variable["query"], readings)]
    assert values == ["qibin-taoyuan", "shancheng-xinyuan2"]


@pytest.mark.parametrize("title", [p["title"] for p in panels()])
def test_every_panel_query_runs(influxd: InfluxdProcess, readings: str, title: str) -> None:
    (p,) = (p for p in panels() if p["title"] == title)
    for target in p["targets"]:
        series = influxd.query(grafana(target["query"]), readings)["results"][0].get("series", [])
        assert series, f"{title}: no series"
        assert {s["tags"]["site"] for s in series} == {SITE}


def test_occupied_seats_stack_to_the_seats_taken(influxd: InfluxdProcess, readings: str) -> None:
    query = grafana(panel("Occupied seats")["targets"][0]["query"])
    per_seat = tagged(influxd, readings, query, "occupied")
    taken = {
        hour: sum(v or 0 for (_, t), v in per_seat.items() if t == ns(at(f"{hour:02d}:00")))
        for hour in (8, 9, 10, 11, 12)
    }
    assert taken == {8: 0, 9: 2, 10: 1, 11: 0, 12: 0}


def test_visitors_per_day_is_the_rise_of_the_days_highest_total(
    influxd: InfluxdProcess, readings: str
) -> None:
    query = grafana(panel("Visitors per day")["targets"][0]["query"])
    day_start = ns(datetime.combine(DAY, datetime.min.time(), LOCAL_TZ))
    # The day before has no baseline and shows nothing; DAY: 120 - 80.
    assert tagged(influxd, readings, query, "visitors") == {(("board-a.1", SITE), day_start): 40}


def test_people_inside_is_in_minus_out(influxd: InfluxdProcess, readings: str) -> None:
    query = grafana(panel("People inside")["targets"][0]["query"])
    inside = tagged(influxd, readings, query, "inside")
    key = ("board-a.1", SITE)
    assert [inside[(key, ns(at(f"{h}:00")))] for h in (9, 10, 11)] == [5, 5, 20]


def test_door_openings_count_the_open_readings(influxd: InfluxdProcess, readings: str) -> None:
    query = grafana(panel("Door openings")["targets"][0]["query"])
    openings = tagged(influxd, readings, query, "openings")
    key = ("back-door", SITE)
    assert [openings[(key, ns(at(f"{h}:00")))] for h in (9, 10, 11)] == [2, 1, 0]


def test_health_panels_show_the_lowest_supply_error_rate_and_disk_free(
    influxd: InfluxdProcess, readings: str
) -> None:
    supply = tagged(
        influxd, readings, grafana(panel("supply voltage")["targets"][0]["query"]), "supply_mv"
    )
    assert supply == {(("board-a", SITE), ns(at("09:00"))): 3650}
    errors = tagged(
        influxd, readings, grafana(panel("errors per hour")["targets"][0]["query"]), "crc_errors"
    )
    board = ("board-a", "gw1", SITE)
    assert [errors[(board, ns(at(f"{h}:00")))] for h in (10, 11)] == [6, 0]
    disk = tagged(
        influxd, readings, grafana(panel("disk free")["targets"][0]["query"]), "disk_free"
    )
    assert disk == {(("gw1", SITE), ns(at("09:00"))): 19_000_000_000}


def test_gateway_online_holds_its_last_state(influxd: InfluxdProcess, readings: str) -> None:
    query = grafana(panel("Gateway online")["targets"][0]["query"], interval="15m")
    online = tagged(influxd, readings, query, "online")
    key = ("gw1", SITE)
    assert [online[(key, ns(at(t)))] for t in ("09:00", "09:15", "09:30", "09:45", "10:00")] == [
        1,
        0,
        0,
        1,
        1,
    ]
