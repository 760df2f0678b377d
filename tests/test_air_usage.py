"""The ``air`` usage figure against a real InfluxDB (issue 16), with readings written as the
consumer writes them and answers worked out by hand. All times are local (Asia/Shanghai).

淇河书屋·馨苑二区站 (shancheng-xinyuan2), 2025-03-05, three air sensors:
  room-a (Modbus: CO₂, temperature, humidity)
    09:50 1200 | 10:05 1100 22.0 °C 40 % | 10:30 900 23.0 °C 50 % | 10:45 1000
    | 11:10 1500 | 11:20 800
  room-b (CO₂ only)  10:10 1300 | 10:25 600
  room-c (Zigbee: temperature and humidity only)  10:40 21.5 °C 60 % | 11:40 20.5 °C 55.5 %
Over 1000 ppm (a reading holds until the sensor's next one, at most 15 min):
  room-a 10:00-10:05 (09:50 carried in, held to 10:05), 10:05-10:20 (held 15 min, next 10:30),
         11:10-11:20;  room-b 10:10-10:25.  Any room: 10:00-10:25 = 25 min; 11:10-11:20 = 10.
淇河书屋·夜读厅 (shancheng-yedu): no air sensor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from central.consumer.points import reading_point
from central.influx import encode_line
from central.sites import SiteDirectory, load_directory
from central.usage.client import InfluxQLClient, StatsInfluxConfig, readings_queries
from central.usage.figures import AIR, FIGURES, Ask, compute, sites_in
from devstack import InfluxdProcess, free_port
from qihe.contract import AirReading

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
SH = ZoneInfo("Asia/Shanghai")
X, N = "shancheng-xinyuan2", "shancheng-yedu"

SITES_YAML = """\
timezone: Asia/Shanghai
sites:
  - id: shancheng-xinyuan2
    name: 淇河书屋·馨苑二区站
    district: 山城区
    opening_hours: {daily: "08:30-21:30"}
  - id: shancheng-yedu
    name: 淇河书屋·夜读厅
    district: 山城区
    opening_hours: {daily: "00:00-24:00"}
"""


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, 5, hour, minute, tzinfo=SH)


def air(sensor: str, hour: int, minute: int, **values: float) -> AirReading:
    return AirReading(
        site=X, gateway="gw1", device=sensor, sensor=sensor, ts=at(hour, minute), **values
    )  # type: ignore[arg-type]


READINGS = [
    air("room-a", 9, 50, co2_ppm=1200),
    air("room-a", 10, 5, co2_ppm=1100, temperature_c=22.0, humidity_pct=40),
    air("room-a", 10, 30, co2_ppm=900, temperature_c=23.0, humidity_pct=50),
    air("room-a", 10, 45, co2_ppm=1000),
    air("room-a", 11, 10, co2_ppm=1500),
    air("room-a", 11, 20, co2_ppm=800),
    air("room-b", 10, 10, co2_ppm=1300),
    air("room-b", 10, 25, co2_ppm=600),
    air("room-c", 10, 40, temperature_c=21.5, humidity_pct=60),
    air("room-c", 11, 40, temperature_c=20.5, humidity_pct=55.5),
]


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
    body = "\n".join(encode_line(reading_point(r)) for r in READINGS)
    httpx.post(
        f"{influxd.url}/write", params={"db": influx_db, "precision": "ns"}, content=body
    ).raise_for_status()
    return influx_db


@pytest.fixture
def client(influxd: InfluxdProcess, loaded: str) -> Iterator[InfluxQLClient]:
    with InfluxQLClient(StatsInfluxConfig(url=influxd.url, database=loaded)) as reader:
        yield reader


def rows(client: InfluxQLClient, directory: SiteDirectory, ask: Ask | None = None) -> list[Any]:
    site = sites_in(directory, [X])
    table = compute(AIR, client, directory, site, at(10), at(12), ask or Ask())
    return [
        (r["period"], r["co2_mean"], r["co2_max"], r["co2_over_min"], r["temperature_mean"],
         r["humidity_mean"])
        for r in table.rows
    ]  # fmt: skip


def test_air_is_in_the_figure_registry() -> None:
    assert FIGURES["air"] is AIR


def test_air_per_hour_means_peaks_and_minutes_over_1000_ppm(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    # 10:00: CO₂ 1100, 900, 1000, 1300, 600 → 980, peak 1300; 25 min over; temperature 22.0,
    # 23.0, 21.5 → 22.2; humidity 40, 50, 60 → 50.0. 11:00: 1500, 800 → 1150; 10 min over.
    assert rows(client, directory) == [
        (at(10), 980, 1300, 25.0, 22.2, 50.0),
        (at(11), 1150, 1500, 10.0, 20.5, 55.5),
    ]


def test_a_higher_threshold_counts_only_the_minutes_above_it(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    # Over 1200 (1200 itself is not): room-b 10:10-10:25, room-a 11:10-11:20.
    over = [row[3] for row in rows(client, directory, Ask(co2_ppm=1200))]
    assert over == [15.0, 10.0]
    table = compute(AIR, client, directory, sites_in(directory, [X]), at(10), at(12),
                    Ask(co2_ppm=1200))  # fmt: skip
    assert table.columns[5].en == "CO₂ over 1200 ppm"


def test_air_by_day_takes_every_reading_of_the_day(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    day = compute(AIR, client, directory, sites_in(directory, [X]), at(0), at(0).replace(day=6),
                  Ask(by="day"))  # fmt: skip
    [row] = day.rows
    # Every CO₂ reading of the day, 09:50 included (eight of them).
    co2 = [1200, 1100, 900, 1000, 1500, 800, 1300, 600]
    assert (row["co2_mean"], row["co2_max"]) == (round(sum(co2) / len(co2)), 1500)
    # 09:50-10:05 is over too: 15 + 20 (10:05-10:25) + 10 (11:10-11:20) = 45 min.
    assert row["co2_over_min"] == 45.0


def test_a_site_without_air_sensors_has_empty_rows_and_a_note(
    client: InfluxQLClient, directory: SiteDirectory
) -> None:
    table = compute(AIR, client, directory, sites_in(directory, [N]), at(10), at(12))
    assert [(r["period"], r["co2_mean"], r["co2_over_min"]) for r in table.rows] == [
        (at(10), None, None),
        (at(11), None, None),
    ]
    assert table.notes == ("淇河书屋·夜读厅: 无空气传感器数据 / no air sensor data",)


def test_the_documented_air_queries_are_the_ones_sent() -> None:
    doc = (ROOT / "docs" / "statistics.md").read_text(encoding="utf-8")
    carried, inside = readings_queries(
        "air", ("co2_ppm",), X, at(0), at(0).replace(day=6), StatsInfluxConfig(
            url="http://x", database="qihe").lookback
    )  # fmt: skip
    assert carried in doc
    assert inside in doc


def _stats(tmp_path: Path, sites_file: Path, url: str, db: str) -> Path:
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


def test_the_command_writes_the_air_figure_as_json(
    tmp_path: Path, sites_file: Path, influxd: InfluxdProcess, loaded: str
) -> None:
    config = _stats(tmp_path, sites_file, influxd.url, loaded)
    span = ("--from", "2025-03-05T10:00", "--to", "2025-03-05T12:00")
    done = qihe("air", "--config", config, "--site", X, *span, "--co2-threshold", "1200",
                "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    answer = json.loads(done.stdout)
    assert [(r["period"], r["co2_over_min"]) for r in answer] == [
        ("2025-03-05T10:00:00+08:00", 15.0),
        ("2025-03-05T11:00:00+08:00", 10.0),
    ]


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        ("0", "--co2-threshold 0: must be above 0 and below 100000 ppm"),
        ("-5", "--co2-threshold -5: must be above 0 and below 100000 ppm"),
        ("nan", "--co2-threshold nan: must be above 0 and below 100000 ppm"),
        ("lots", "argument --co2-threshold: invalid float value: 'lots'"),
    ],
)
def test_the_command_refuses_a_bad_threshold_in_one_line(
    tmp_path: Path, sites_file: Path, threshold: str, message: str
) -> None:
    config = _stats(tmp_path, sites_file, f"http://127.0.0.1:{free_port()}", "qihe")
    done = qihe("air", "--config", config, "--from", "2025-03-05", "--to", "2025-03-05",
                "--co2-threshold", threshold)  # fmt: skip
    err = done.stderr.decode("utf-8")
    assert done.returncode == 2
    assert message in err and "Traceback" not in err, err
    assert done.stdout == b""
