"""``qihe stats held``: minutes held while empty (占座) and away within stays (暂离) per site and
day, against a real InfluxDB loaded with readings worked out by hand. Times are local (Hebi).

淇河书屋·馨苑二区站, seats A1 and A2 with a presence channel, A3 without:
  A1: 11-29 20:00 free, nobody | 11-30 09:00 taken, someone | 11:40 taken, nobody (lunch: the
      grace is 90 min, held at 13:10) | 13:40 taken, someone | 15:00 free, nobody
  A2: 11-30 10:00 taken, nobody (grace 30 min: held at 10:30) | 10:50 free, nobody
  A3: 11-30 09:00 occupied | 12:00 free (no presence field: not counted)
Day 11-30: occupied 360 + 50 = 410 min; away 120 + 50 = 170 (41.46 %); held 30 + 20 = 50 min,
in 2 holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from central.influx import Point, datetime_to_ns, encode_line
from central.sites import SiteDirectory
from central.usage.client import InfluxQLClient, StatsInfluxConfig
from central.usage.figures import FIGURES, Ask, compute
from devstack import InfluxdProcess
from qihe_cli.main import build_parser

pytestmark = pytest.mark.integration

SH = ZoneInfo("Asia/Shanghai")
SITE = "shancheng-xinyuan2"
DIRECTORY = SiteDirectory.model_validate(
    {
        "sites": [
            {
                "id": SITE,
                "name": "淇河书屋·馨苑二区站",
                "opening_hours": {"daily": "08:30-21:30"},
                "seat_grids": [
                    {
                        "gateway": "gw1",
                        "device": "xinyuan2-a",
                        "count": 3,
                        "cols": 3,
                        "label_prefix": "A",
                    }
                ],
            }
        ]
    }
)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SH)


def seat(n: int, moment: datetime, occupied: int, presence: int | None) -> Point:
    tags = {"site": SITE, "gateway": "gw1", "device": "xinyuan2-a", "sensor": f"xinyuan2-a.{n}"}
    fields = {"occupied": occupied, **({} if presence is None else {"presence": presence})}
    return Point("seat", tags, fields, datetime_to_ns(moment))


READINGS = [
    seat(1, at(29, 20), 0, 0),
    seat(1, at(30, 9), 1, 1),
    seat(1, at(30, 11, 40), 1, 0),
    seat(1, at(30, 13, 40), 1, 1),
    seat(1, at(30, 15), 0, 0),
    seat(2, at(30, 10), 1, 0),
    seat(2, at(30, 10, 50), 0, 0),
    seat(3, at(30, 9), 1, None),
    seat(3, at(30, 12), 0, None),
]


@pytest.fixture
def client(influxd: InfluxdProcess, influx_db: str) -> Iterator[InfluxQLClient]:
    body = "\n".join(encode_line(p) for p in READINGS)
    params = {"db": influx_db, "precision": "ns"}
    httpx.post(f"{influxd.url}/write", params=params, content=body).raise_for_status()
    with InfluxQLClient(StatsInfluxConfig(url=influxd.url, database=influx_db)) as reader:
        yield reader


def held(client: InfluxQLClient, start: datetime, end: datetime) -> list[dict[str, object]]:
    sites = DIRECTORY.sites
    table = compute(FIGURES["held"], client, DIRECTORY, sites, start, end, Ask(), now=at(30, 23))
    return [{k: v for k, v in row.items() if k not in ("site", "site_name")} for row in table.rows]


def test_a_day_of_away_and_held_seats(client: InfluxQLClient) -> None:
    rows = held(client, at(30, 0), at(30, 23))

    assert rows == [
        {
            "period": at(30, 0),
            "presence_seats": 2,
            "occupied_min": 410.0,
            "away_min": 170.0,
            "away_share": 41.46,
            "held_min": 50.0,
            "holds": 2,
        }
    ]


def test_a_range_begun_while_a_seat_was_away_counts_its_grace_from_when_it_left(
    client: InfluxQLClient,
) -> None:
    rows = held(client, at(30, 12), at(30, 14))

    assert rows[0]["away_min"] == 100.0  # 12:00-13:40 of A1
    assert rows[0]["held_min"] == 30.0  # 13:10-13:40: held 90 min after 11:40, not after 12:00
    assert rows[0]["holds"] == 1


def test_a_site_without_presence_data_says_so(client: InfluxQLClient) -> None:
    table = compute(
        FIGURES["held"], client, DIRECTORY, DIRECTORY.sites, at(28, 0), at(28, 23), now=at(30, 23)
    )

    assert table.rows[0]["presence_seats"] == 0
    assert table.rows[0]["away_share"] is None
    assert any("no seat with a presence channel" in note for note in table.notes)


def test_qihe_stats_has_the_held_figure_by_day() -> None:
    args = build_parser().parse_args(
        ["stats", "held", "--config", "stats.yaml", "--from", "2026-11-30", "--to", "2026-11-30"]
    )
    assert (args.by, args.handler.__name__) == ("day", "_figure")
