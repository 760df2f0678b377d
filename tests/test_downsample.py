"""Downsampling (``qihe stats-setup``) against a real InfluxDB 1.6.7.

Continuous queries run on InfluxDB's own schedule, so the tests never wait for one: they check
that each CQ exists with its exact text, and run the very same SELECT ... INTO through the
backfill (which is what a CQ executes, with a time range) on a synthetic day.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Self

import httpx
import pytest

from central.usage.downsample.apply import (
    DownsampleConfig,
    PolicyState,
    ServerState,
    plan_changes,
)
from central.usage.downsample.backfill import backfill_days
from central.usage.downsample.cli import stats_setup
from central.usage.downsample.plan import (
    CQ_PREFIX,
    DAILY,
    HOURLY,
    LOCAL_TZ,
    QUERIES,
    RAW,
    RETENTION_POLICIES,
    ROLLUPS,
)
from central.usage.downsample.ql import format_duration, ident, same_query
from central.visitors import increases
from devstack import InfluxdProcess, free_port
from qihe.configfile import load_config_file
from qihe_cli.main import build_parser, main

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parent.parent / "docs" / "downsampling.md"


@pytest.fixture
def day(influxd: InfluxdProcess) -> date:
    """The synthetic day: three local days before the server's (inside raw's 90 days, outside
    the CQs' own recent windows, so a CQ that fires during the test never touches it). The
    server's clock, not this process's: raw keeps points by the server's clock."""
    return influxd.server_now().astimezone(LOCAL_TZ).date() - timedelta(days=3)


def local(day: date, hh_mm: str) -> datetime:
    """A local (Hebi) time on ``day``."""
    return datetime.combine(day, time.fromisoformat(hh_mm), LOCAL_TZ)


def at(hh_mm: str, day: date) -> datetime:
    """A UTC time on the synthetic day (its 09:00 UTC is 17:00 in Hebi, inside the local day)."""
    hours, minutes = (int(part) for part in hh_mm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=UTC)


def hour(hh: int, day: date) -> int:
    """The epoch-ns timestamp of a UTC hour on the synthetic day, as rows return it."""
    return int(at(f"{hh}:00", day).timestamp()) * 10**9


def write(influxd: InfluxdProcess, database: str, lines: list[str]) -> None:
    response = httpx.post(
        f"{influxd.url}/write",
        params={"db": database, "rp": RAW.name, "precision": "s"},
        content="\n".join(lines).encode(),
    )
    assert response.status_code == 204, response.text


def line(measurement: str, tags: str, fields: str, moment: datetime) -> str:
    return f"{measurement},{tags} {fields} {int(moment.timestamp())}"


def write_config(path: Path, url: str, database: str) -> Path:
    # Keys of the statistics' own config (sites, lookback) are there and ignored.
    path.write_text(
        "sites: sites.yaml\n"
        f"influx:\n  url: {url}\n  database: {database}\n  timeout: 30\n  lookback: P31D\n"
    )
    return path


@pytest.fixture
def config(tmp_path: Path, influxd: InfluxdProcess, influx_db: str) -> Path:
    return write_config(tmp_path / "stats.yaml", influxd.url, influx_db)


def setup(config: Path, *args: str) -> int:
    return main(["stats-setup", "--config", str(config), *args])


def setup_at(now: datetime, config: Path, *args: str) -> int:
    """``stats-setup`` with its clock stopped at ``now``."""
    parsed = build_parser().parse_args(["stats-setup", "--config", str(config), *args])
    return stats_setup(parsed, clock=lambda: now)


def policies(influxd: InfluxdProcess, database: str) -> dict[str, tuple[Any, ...]]:
    rows = influxd.rows(f"SHOW RETENTION POLICIES ON {ident(database)}", database)
    return {
        r["name"]: (r["duration"], r["shardGroupDuration"], r["replicaN"], r["default"])
        for r in rows
    }


def queries(influxd: InfluxdProcess, database: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for series in influxd.query("SHOW CONTINUOUS QUERIES")["results"][0].get("series", []):
        if series["name"] == database:
            out.update({name: text for name, text in series.get("values") or []})
    return out


def rows(influxd: InfluxdProcess, database: str, q: str) -> dict[tuple[str, int], dict[str, Any]]:
    """Rows keyed by (sensor or gateway, time)."""
    return {(r.get("sensor") or r["gateway"], r["time"]): r for r in influxd.rows(q, database)}


# -- reading rollups: the rules of docs/downsampling.md, applied to what the rollups hold --------


@dataclass(frozen=True, slots=True)
class StateRow:
    """A state rollup's fields for one interval of one sensor."""

    on_minutes: float
    known_minutes: int
    last: int

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any], state: str) -> Self:
        return cls(
            on_minutes=float(fields[f"{state}_minutes"] or 0),
            known_minutes=int(fields["known_minutes"] or 0),
            last=int(fields[f"{state}_last"] or 0),
        )


def state_minutes(
    rows: Sequence[StateRow | None], *, interval_minutes: int = 60, before: int = 0
) -> list[float]:
    """Minutes in state 1 in each of consecutive intervals, from a state rollup's rows.

    ``rows`` has one entry per interval, ``None`` where the rollup has no row (no reading in any
    range that computed it: the state did not change). The minutes of an interval before its
    first known minute are in the state the previous interval ended in; ``before`` is the state
    before the first interval (free, 0, unless known otherwise). Exact to the minute whatever
    range a continuous query or the backfill computed each row in.
    """
    out: list[float] = []
    state = before
    for row in rows:
        if row is None:
            out.append(float(state * interval_minutes))
            continue
        out.append(row.on_minutes + state * (interval_minutes - row.known_minutes))
        state = row.last
    return out


def counter_increase(previous_last: int | None, maximum: int, last: int) -> int:
    """Counted in one interval by a cumulative counter, from the rollup's ``max`` and ``last``.

    ``previous_last`` is the last total of the interval before (``None``: counting from a
    reset). A maximum below it means the counter restarted before this interval's first
    reading; a last value below the maximum means it restarted within the interval, and the last
    value is what it counted since. Equal to :func:`central.visitors.increases` over the raw
    totals when the counter resets at most once per interval and does not climb back above its
    old total within the same interval.
    """
    base = previous_last if previous_last is not None and maximum >= previous_last else 0
    return maximum - base + (last if last < maximum else 0)


# -- setup --------------------------------------------------------------------------------------


def test_setup_creates_the_policies_and_every_query_with_its_exact_text(
    influxd: InfluxdProcess, influx_db: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup(config) == 0
    assert policies(influxd, influx_db) == {
        "autogen": ("0s", "168h0m0s", 1, False),
        "raw": ("2160h0m0s", "24h0m0s", 1, True),
        "hourly": ("17520h0m0s", "168h0m0s", 1, False),
        "daily": ("0s", "720h0m0s", 1, False),
    }
    assert queries(influxd, influx_db) == {q.name: q.statement(influx_db) for q in QUERIES}
    out = capsys.readouterr().out
    assert (
        "retention policy raw: created (90d, shard 1d, default; "
        "the default was autogen, whose points stay there)"
    ) in out
    assert f"降采样设置 / downsampling: {3 + len(QUERIES)} changed, 1 unchanged" in out


def test_a_second_run_changes_nothing_and_says_so(
    influxd: InfluxdProcess, influx_db: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup(config) == 0
    before = (policies(influxd, influx_db), queries(influxd, influx_db))
    capsys.readouterr()
    assert setup(config) == 0
    assert (policies(influxd, influx_db), queries(influxd, influx_db)) == before
    items = [ln.strip() for ln in capsys.readouterr().out.splitlines() if ln.startswith("  ")]
    assert len(items) == 1 + len(RETENTION_POLICIES) + len(QUERIES)
    assert all(": unchanged" in item for item in items), items
    assert "retention policy hourly: unchanged (730d, shard 1w)" in items


def test_a_changed_duration_is_altered(
    influxd: InfluxdProcess, influx_db: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup(config) == 0
    influxd.query(f"ALTER RETENTION POLICY hourly ON {ident(influx_db)} DURATION 30d")
    influxd.query(f"ALTER RETENTION POLICY autogen ON {ident(influx_db)} DEFAULT")
    capsys.readouterr()
    assert setup(config) == 0
    out = capsys.readouterr().out
    assert "retention policy hourly: altered (duration 30d → 730d)" in out
    assert "retention policy raw: altered (made the default (was autogen))" in out
    found = policies(influxd, influx_db)
    assert found["hourly"] == ("17520h0m0s", "168h0m0s", 1, False)
    assert found["raw"][3] is True and found["autogen"][3] is False


def test_a_longer_duration_on_the_server_is_shortened_with_a_warning(
    influxd: InfluxdProcess, influx_db: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup(config) == 0
    influxd.query(f"ALTER RETENTION POLICY raw ON {ident(influx_db)} DURATION 120d")
    capsys.readouterr()
    assert setup(config) == 0
    assert (
        "retention policy raw: altered (duration 120d → 90d: older points are deleted)"
        in capsys.readouterr().out
    )
    assert policies(influxd, influx_db)["raw"][0] == "2160h0m0s"


def test_a_changed_query_is_replaced_a_retired_one_dropped_and_others_left_alone(
    influxd: InfluxdProcess, influx_db: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup(config) == 0
    db = ident(influx_db)
    influxd.query(f"DROP CONTINUOUS QUERY qihe_hourly_door ON {db}")
    influxd.query(
        f"CREATE CONTINUOUS QUERY qihe_hourly_door ON {db} BEGIN SELECT count(open) AS openings "
        f"INTO {db}.hourly.door FROM {db}.raw.door GROUP BY time(1h), * END"
    )
    retired = f"{CQ_PREFIX}hourly_fault"
    for name in (retired, "their_own_cq"):
        influxd.query(
            f"CREATE CONTINUOUS QUERY {name} ON {db} BEGIN SELECT count(active) AS n "
            f"INTO {db}.hourly.fault FROM {db}.raw.fault GROUP BY time(1h), * END"
        )
    capsys.readouterr()
    assert setup(config) == 0
    out = capsys.readouterr().out
    assert "continuous query qihe_hourly_door: replaced (text differed)" in out
    assert f"continuous query {retired}: dropped (no longer in the plan)" in out
    assert "their_own_cq" not in out
    found = queries(influxd, influx_db)
    door = next(q for q in QUERIES if q.name == "qihe_hourly_door")
    assert found["qihe_hourly_door"] == door.statement(influx_db)
    assert retired not in found and "their_own_cq" in found


def test_dry_run_prints_the_statements_and_changes_nothing(
    influxd: InfluxdProcess, influx_db: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (policies(influxd, influx_db), queries(influxd, influx_db))
    assert setup(config, "--dry-run") == 0
    assert (policies(influxd, influx_db), queries(influxd, influx_db)) == before
    printed = {ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith("--")}
    statements = {RAW.create_statement(influx_db) + ";"}
    statements |= {p.create_statement(influx_db) + ";" for p in (HOURLY, DAILY)}
    statements |= {q.statement(influx_db) + ";" for q in QUERIES}
    assert statements <= printed
    assert f"降采样设置 / downsampling: {len(statements)} to change, 1 unchanged" in printed


def test_a_missing_database_is_created_with_raw_as_its_only_default(
    influxd: InfluxdProcess, unique_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = f"new_{unique_name}"
    config = write_config(tmp_path / "stats.yaml", influxd.url, database)
    assert setup(config) == 0
    assert policies(influxd, database) == {
        "raw": ("2160h0m0s", "24h0m0s", 1, True),
        "hourly": ("17520h0m0s", "168h0m0s", 1, False),
        "daily": ("0s", "720h0m0s", 1, False),
    }
    out = capsys.readouterr().out
    assert f"database {database}: created (raw is its default)" in out
    assert "retention policy raw: created (with the database: 90d, shard 1d, default)" in out


# -- backfill: the CQs' SELECT on a synthetic day --------------------------------------------------

SEAT = "site=qibin-taoyuan,gateway=gw1,device=board-a,sensor=board-a.{n}"
COUNTER = "site=qibin-taoyuan,gateway=gw1,device=board-a,sensor=board-a.1"
DOOR = "site=qibin-taoyuan,gateway=gw1,device=gpio,sensor=back-door"
BOARD = "site=qibin-taoyuan,gateway=gw1,device=board-a,sensor=board-a"
GATEWAY = "site=qibin-taoyuan,gateway=gw1"

#: Entrance counter totals (in, out); the board restarts at 10:30 and counts from 0 again.
TOTALS = [
    ("09:05", 100, 90),
    ("09:20", 105, 95),
    ("09:40", 110, 99),
    ("10:05", 112, 100),
    ("10:30", 2, 1),
    ("10:50", 5, 3),
    ("11:10", 9, 6),
]


def synthetic_day(day: date) -> list[str]:
    seat = SEAT.format
    lines = [
        # seat 1: taken 09:00-09:30 (two readings: on change, as boards report)
        line("seat", seat(n=1), "occupied=1i", at("09:00", day)),
        line("seat", seat(n=1), "occupied=0i", at("09:30", day)),
        # seat 2: taken 09:10-10:40, across an hour boundary
        line("seat", seat(n=2), "occupied=1i", at("09:10", day)),
        line("seat", seat(n=2), "occupied=0i", at("10:40", day)),
    ]
    # seat 3: taken 09:00-09:30 again, but a reading every minute of the hour
    lines += [
        line("seat", seat(n=3), f"occupied={1 if m < 30 else 0}i", at(f"09:{m:02d}", day))
        for m in range(60)
    ]
    lines += [
        line("people", COUNTER, f"in_total={i}i,out_total={o}i", at(t, day)) for t, i, o in TOTALS
    ]
    lines += [
        line("door", DOOR, f"open={state}i", at(t, day))
        for t, state in [("09:05", 1), ("09:06", 0), ("09:30", 1), ("09:45", 0), ("10:10", 1)]
    ]
    lines += [
        line("heartbeat", BOARD, f"uptime_s={up}i,supply_mv={mv}i", at(t, day))
        for t, up, mv in [("09:00", 100, 3700), ("09:20", 1300, 3650), ("09:40", 2500, 3720)]
    ]
    lines += [
        line("gateway_status", GATEWAY, f"online={on}i,session=7i", at(t, day))
        for t, on in [("08:30", 1), ("09:15", 0), ("09:45", 1)]
    ]
    return lines


@dataclass(frozen=True)
class Backfilled:
    database: str
    output: str
    day: date


@pytest.fixture
def backfilled(
    influxd: InfluxdProcess,
    influx_db: str,
    config: Path,
    day: date,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Backfilled]:
    """The synthetic day backfilled by ``stats-setup`` run three days later at 11:40 local."""
    assert setup(config) == 0
    write(influxd, influx_db, synthetic_day(day))
    capsys.readouterr()
    now = local(day + timedelta(days=3), "11:40")
    assert setup_at(now, config, "--backfill-from", day.isoformat()) == 0
    yield Backfilled(influx_db, capsys.readouterr().out, day)


def progress_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith("backfill ")]


def test_backfill_reports_progress_a_day_at_a_time(backfilled: Backfilled) -> None:
    day = backfilled.day
    progress = progress_lines(backfilled.output)
    # Three whole days, and the 11 complete hours of the fourth (local 00:00-11:00).
    assert [ln.split(":")[0] for ln in progress] == [
        f"backfill {day + timedelta(days=n)} ({n + 1}/4)" for n in range(4)
    ]
    assert progress[-1].endswith("points, complete hours so far")
    assert "回填完成 / backfill done: " in backfilled.output


@pytest.mark.parametrize(
    ("now", "days", "last"),
    [
        # 00:30 in Hebi: the new local day has no complete hour yet; the one before is whole.
        ("00:30", 3, "points"),
        ("00:59", 3, "points"),
        ("01:00", 4, "points, complete hours so far"),
        ("23:59", 4, "points, complete hours so far"),
    ],
    ids=["half-past-local-midnight", "last-minute-of-the-first-hour", "first-hour-done", "late"],
)
def test_backfill_run_just_after_local_midnight_ends_with_the_whole_day_before(
    influxd: InfluxdProcess,
    influx_db: str,
    config: Path,
    day: date,
    capsys: pytest.CaptureFixture[str],
    now: str,
    days: int,
    last: str,
) -> None:
    """The hour from 16:00 to 17:00 UTC is the first of a day in Hebi (the suite once failed
    then, reading the wall clock)."""
    assert setup(config) == 0
    capsys.readouterr()
    assert setup_at(local(day + timedelta(days=3), now), config, "--backfill-from", str(day)) == 0
    progress = progress_lines(capsys.readouterr().out)
    assert len(progress) == days
    assert progress[-1].startswith(f"backfill {day + timedelta(days=days - 1)} ({days}/{days}): ")
    assert progress[-1].endswith(f" {last}")


@pytest.mark.parametrize(
    ("now", "first", "refused"),
    [
        # 2026-12-31 16:10 UTC is 00:10 on New Year's Day in Hebi: that day has begun.
        (datetime(2026, 12, 31, 16, 10, tzinfo=UTC), date(2027, 1, 1), False),
        (datetime(2026, 12, 31, 15, 50, tzinfo=UTC), date(2027, 1, 1), True),
        (datetime(2026, 11, 30, 16, 0, tzinfo=UTC), date(2026, 12, 1), False),
        (datetime(2026, 11, 30, 15, 59, 59, tzinfo=UTC), date(2026, 12, 1), True),
    ],
    ids=["new-year-begun", "new-year-ahead", "month-begun", "month-ahead"],
)
def test_a_backfill_from_a_local_day_not_begun_is_refused(
    influxd: InfluxdProcess,
    influx_db: str,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    now: datetime,
    first: date,
    refused: bool,
) -> None:
    code = setup_at(now, config, "--backfill-from", first.isoformat())
    out, err = capsys.readouterr()
    if refused:
        assert (code, out) == (2, "")
        assert err == f"qihe: stats-setup: --backfill-from {first} is in the future\n"
    else:
        # Begun, but with no complete hour yet: nothing to compute, and said so.
        assert (code, err) == (0, "")
        assert progress_lines(out) == []
        assert "回填完成 / backfill done: 0 points written" in out


def test_each_rollup_writes_the_fields_it_declares(
    influxd: InfluxdProcess, backfilled: Backfilled
) -> None:
    for rollup in ROLLUPS:
        if rollup.measurement in ("motion", "link", "outbox", "system"):
            continue  # not in the synthetic day
        for tier in ("hourly", "daily"):
            found = influxd.rows(
                f"SHOW FIELD KEYS FROM {tier}.{rollup.measurement}", backfilled.database
            )
            assert sorted(r["fieldKey"] for r in found) == sorted(rollup.fields), rollup.measurement


def test_seat_hours_are_minutes_in_state_whatever_the_readings_cadence(
    influxd: InfluxdProcess, backfilled: Backfilled
) -> None:
    db, day = backfilled.database, backfilled.day
    got = rows(influxd, db, "SELECT * FROM hourly.seat")
    fields = ("occupied_minutes", "known_minutes", "occupied_last")

    def cell(n: int, hh: int) -> tuple[Any, ...] | None:
        row = got.get((f"board-a.{n}", hour(hh, backfilled.day)))
        return None if row is None else tuple(row[f] for f in fields)

    # 09:00-09:30 is half the hour, from two readings or from sixty.
    assert cell(1, 9) == cell(3, 9) == (30, 60, 0)
    assert [cell(1, hh) for hh in (8, 10, 15)] == [None, (0, 60, 0), (0, 60, 0)]
    # 09:10-10:40: the first 10 minutes of 09:00 are before any reading of the day (unknown).
    assert (cell(2, 9), cell(2, 10)) == ((50, 50, 1), (40, 60, 0))
    series = [got.get(("board-a.2", hour(hh, backfilled.day))) for hh in (8, 9, 10, 11)]
    minutes = state_minutes(
        [None if r is None else StateRow.from_fields(r, "occupied") for r in series]
    )
    assert minutes == [0, 50, 40, 0]
    # The mean of the readings themselves says 1.0 and 0.0: a reading is a change, not a sample.
    means = rows(
        influxd,
        db,
        f"SELECT mean(occupied) FROM raw.seat WHERE sensor = 'board-a.2' AND "
        f"time >= '{at('09:00', day):%Y-%m-%dT%H:%M:%SZ}' "
        f"AND time < '{at('11:00', day):%Y-%m-%dT%H:%M:%SZ}' "
        "GROUP BY time(1h), sensor",
    )
    assert [means[("board-a.2", hour(hh, backfilled.day))]["mean"] for hh in (9, 10)] == [1.0, 0.0]


def test_the_cq_range_that_starts_at_an_hour_gives_the_same_minutes(
    influxd: InfluxdProcess, backfilled: Backfilled
) -> None:
    """The last CQ run that computes an hour starts its range at that hour, so the state held
    since before it is unknown there; the previous hour's last state fills it in."""
    db = backfilled.database
    seat = next(q for q in QUERIES if q.name == "qihe_hourly_seat")
    influxd.query(
        seat.select(db, start=at("10:00", backfilled.day), end=at("12:00", backfilled.day)), db
    )
    got = rows(influxd, db, "SELECT * FROM hourly.seat WHERE sensor = 'board-a.2'")
    hour10 = got[("board-a.2", hour(10, backfilled.day))]
    assert (hour10["occupied_minutes"], hour10["known_minutes"]) == (0, 20)
    series = [
        StateRow.from_fields(got[("board-a.2", hour(hh, backfilled.day))], "occupied")
        for hh in (9, 10)
    ]
    assert state_minutes(series) == [50, 40]


def test_gateway_online_minutes_use_the_same_state_rollup(
    influxd: InfluxdProcess, backfilled: Backfilled
) -> None:
    got = rows(influxd, backfilled.database, "SELECT * FROM hourly.gateway_status")
    cells = [
        (r["online_minutes"], r["known_minutes"], r["online_last"])
        for r in (got[("gw1", hour(hh, backfilled.day))] for hh in (8, 9, 10))
    ]
    assert cells == [(30, 30, 1), (30, 60, 1), (60, 60, 1)]


def test_counter_rollup_keeps_what_a_reset_within_an_hour_needs(
    influxd: InfluxdProcess, backfilled: Backfilled
) -> None:
    got = rows(influxd, backfilled.database, "SELECT * FROM hourly.people")
    cells = [got[("board-a.1", hour(hh, backfilled.day))] for hh in (9, 10, 11)]
    assert [(r["in_total_max"], r["in_total_last"]) for r in cells] == [
        (110, 110),
        (112, 5),
        (9, 9),
    ]
    assert [(r["out_total_max"], r["out_total_last"]) for r in cells] == [
        (99, 99),
        (100, 3),
        (6, 6),
    ]
    # Visitors per hour from the rollup equal those from the raw totals.
    from_rollup = [
        counter_increase(prev, r["in_total_max"], r["in_total_last"])
        for prev, r in zip([None, 110, 5], cells, strict=True)
    ]
    raw = [t[1] for t in TOTALS]
    assert from_rollup == [110, 7, 4]
    assert from_rollup[1:] == [sum(increases([110, 112, 2, 5])), sum(increases([5, 9]))]
    assert sum(from_rollup) == raw[0] + sum(increases(raw))


def test_door_openings_are_the_readings_that_say_open(
    influxd: InfluxdProcess, backfilled: Backfilled
) -> None:
    got = rows(influxd, backfilled.database, "SELECT * FROM hourly.door")
    cells = [got[("back-door", hour(hh, backfilled.day))] for hh in (9, 10)]
    assert [(r["openings"], r["readings"]) for r in cells] == [(2, 4), (1, 1)]


def test_heartbeat_rollup_keeps_the_lowest_supply_and_the_restart(
    influxd: InfluxdProcess, backfilled: Backfilled
) -> None:
    row = rows(influxd, backfilled.database, "SELECT * FROM hourly.heartbeat")[
        ("board-a", hour(9, backfilled.day))
    ]
    assert (row["supply_mv_min"], row["supply_mv_mean"], row["heartbeats"]) == (3650, 3690, 3)
    assert row["uptime_s_min"] == 100


def test_daily_rows_are_local_days(influxd: InfluxdProcess, backfilled: Backfilled) -> None:
    db = backfilled.database
    midnight = int(datetime.combine(backfilled.day, time(0), LOCAL_TZ).timestamp()) * 10**9
    seats = rows(influxd, db, "SELECT * FROM daily.seat")
    # From 09:00 UTC (the day's first reading) to local midnight (16:00 UTC): 420 minutes known.
    assert [
        (r["occupied_minutes"], r["known_minutes"], r["occupied_last"])
        for r in (seats[(f"board-a.{n}", midnight)] for n in (1, 2))
    ] == [(30, 420, 0), (90, 410, 0)]
    people = rows(influxd, db, "SELECT * FROM daily.people")[("board-a.1", midnight)]
    assert counter_increase(None, people["in_total_max"], people["in_total_last"]) == 121
    door = rows(influxd, db, "SELECT * FROM daily.door")[("back-door", midnight)]
    assert door["openings"] == 3


# -- errors -------------------------------------------------------------------------------------


def test_a_bad_config_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "stats.yaml"
    path.write_text("influx:\n  database: qihe\n")
    assert setup(path) == 2
    err = capsys.readouterr().err
    assert err == f"qihe: {path}: invalid configuration: influx.url: Field required\n"
    assert setup(tmp_path / "missing.yaml") == 2
    assert capsys.readouterr().err == f"qihe: {tmp_path / 'missing.yaml'}: config file not found\n"


def test_an_unreachable_server_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert setup(write_config(tmp_path / "stats.yaml", url, "qihe")) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"qihe: stats-setup: InfluxDB at {url}: unreachable (")
    assert err.count("\n") == 1


# -- the plan, without a server -----------------------------------------------------------------


def test_hourly_keeps_a_year_of_monthly_reports_and_raw_the_last_two_months() -> None:
    assert HOURLY.duration is not None and HOURLY.duration >= timedelta(days=13 * 31)
    assert RAW.duration is not None and RAW.duration >= timedelta(days=31 + 31 + 28)
    assert DAILY.duration is None
    assert [p.name for p in RETENTION_POLICIES if p.default] == ["raw"]


def test_every_query_is_named_for_its_tier_and_measurement_and_writes_there() -> None:
    for query in QUERIES:
        text = query.statement("qihe")
        assert query.name == f"qihe_{query.tier.name}_{query.rollup.measurement}"
        assert f" INTO qihe.{query.tier.policy.name}.{query.rollup.measurement} " in text
        assert f"qihe.raw.{query.rollup.measurement}" in text
        assert text.endswith(", * END")


def test_durations_print_as_influxql_does() -> None:
    assert [
        format_duration(d)
        for d in (
            timedelta(days=7),
            timedelta(days=90),
            timedelta(hours=12),
            timedelta(hours=-8),
            timedelta(minutes=90),
            None,
        )
    ] == ["1w", "90d", "12h", "-8h", "90m", "INF"]


def test_identifiers_are_quoted_only_when_they_must_be() -> None:
    assert [ident(n) for n in ("qihe", "qihe-prod", "select", 'a"b')] == [
        "qihe",
        '"qihe-prod"',
        '"select"',
        '"a\\"b"',
    ]


def test_queries_compare_equal_up_to_quoting_but_not_literals() -> None:
    assert same_query('SELECT MEAN("x") FROM "db"."raw"."m"', "SELECT mean(x) FROM db.raw.m")
    assert not same_query("SELECT x FROM m WHERE a = 'Qi'", "SELECT x FROM m WHERE a = 'qi'")


def test_a_server_matching_the_plan_needs_no_statement() -> None:
    found = plan_changes(
        ServerState(
            True,
            {
                p.name: PolicyState(p.name, p.duration, p.shard_duration, 1, p.default)
                for p in RETENTION_POLICIES
            },
            {q.name: q.statement("qihe").replace("qihe.", '"qihe".') for q in QUERIES},
        ),
        "qihe",
    )
    assert {c.outcome for c in found} == {"unchanged"}
    assert not any(c.statements for c in found)


def test_state_minutes_carry_the_state_across_intervals_without_a_row() -> None:
    rows_ = [StateRow(20, 40, 1), None, None, StateRow(0, 15, 0), StateRow(5, 60, 1)]
    assert state_minutes(rows_) == [20, 60, 60, 45, 5]
    assert state_minutes([None, StateRow(0, 0, 0)], before=1) == [60, 60]


@pytest.mark.parametrize(
    ("previous", "maximum", "last", "expected"),
    [
        (100, 130, 130, 30),  # no reset
        (100, 130, 4, 34),  # reset within the interval after 130: 30 + 4 since
        (100, 7, 7, 7),  # reset before the interval's first reading
        (None, 12, 12, 12),  # first interval: counting from the reset
    ],
)
def test_counter_increase(previous: int | None, maximum: int, last: int, expected: int) -> None:
    assert counter_increase(previous, maximum, last) == expected


def test_backfill_days_are_local_and_only_complete_hours() -> None:
    now = datetime(2026, 11, 28, 3, 40, tzinfo=UTC)  # 11:40 in Hebi
    days = backfill_days(date(2026, 11, 27), now)
    assert [d.day for d in days] == [date(2026, 11, 27), date(2026, 11, 28)]
    assert days[0].whole_day == (
        datetime(2026, 11, 26, 16, tzinfo=UTC),
        datetime(2026, 11, 27, 16, tzinfo=UTC),
    )
    assert days[1].hours == (
        datetime(2026, 11, 27, 16, tzinfo=UTC),
        datetime(2026, 11, 28, 3, tzinfo=UTC),
    )
    assert days[1].whole_day is None


@pytest.mark.parametrize(
    ("first", "now", "whole", "partial"),
    [
        # Hebi's midnight is 16:00 UTC: at 16:30 the new day has no complete hour yet.
        (date(2026, 11, 26), datetime(2026, 11, 28, 16, 30, tzinfo=UTC), 3, None),
        (date(2026, 11, 26), datetime(2026, 11, 28, 17, 0, tzinfo=UTC), 3, (16, 17)),
        (date(2026, 11, 26), datetime(2026, 11, 28, 15, 59, tzinfo=UTC), 2, (16, 15)),
        # A month end: 2026-11-30 16:00 UTC is 1 December in Hebi.
        (date(2026, 11, 29), datetime(2026, 11, 30, 16, 0, tzinfo=UTC), 2, None),
        (date(2026, 11, 29), datetime(2026, 11, 30, 18, 5, tzinfo=UTC), 2, (16, 18)),
        # A year end: 2026-12-31 16:00 UTC is New Year's Day 2027 in Hebi.
        (date(2026, 12, 30), datetime(2026, 12, 31, 16, 10, tzinfo=UTC), 2, None),
        (date(2026, 12, 30), datetime(2026, 12, 31, 17, 10, tzinfo=UTC), 2, (16, 17)),
    ],
    ids=[
        "local-midnight-plus-30min",
        "local-01:00",
        "a-minute-before-local-midnight",
        "month-end",
        "month-end-two-hours",
        "year-end",
        "year-end-one-hour",
    ],
)
def test_backfill_days_split_at_local_midnight(
    first: date, now: datetime, whole: int, partial: tuple[int, int] | None
) -> None:
    days = backfill_days(first, now)
    assert [d.day for d in days] == [
        first + timedelta(days=n) for n in range(whole + (partial is not None))
    ]
    for d in days[:whole]:
        midnight = datetime.combine(d.day, time(0), LOCAL_TZ)
        assert d.whole_day == d.hours == (midnight, midnight + timedelta(days=1))
    if partial is None:
        return
    last = days[-1]
    assert last.whole_day is None
    assert last.hours is not None
    assert [(t.hour, t.tzinfo) for t in last.hours] == [(partial[0], UTC), (partial[1], UTC)]
    assert last.hours[0] == datetime.combine(last.day, time(0), LOCAL_TZ)


def test_the_docs_show_every_statement_of_the_plan() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for policy in RETENTION_POLICIES:
        assert policy.create_statement("qihe") in text, policy.name
    for query in QUERIES:
        assert query.statement("qihe") in text, query.name


def test_one_query_per_tier_and_measurement() -> None:
    names = [q.name for q in QUERIES]
    assert len(names) == len(set(names)) == 18


def test_state_rollup_matches_a_minute_by_minute_reference(
    influxd: InfluxdProcess, influx_db: str, config: Path, day: date
) -> None:
    """Random seats over a day against a plain-Python sampling of the same readings.

    Guards the subquery: InfluxDB 1.x mixes up series when an outer query merges series that
    an inner ``fill()`` produced (influxdata/influxdb#16960); the rollup keeps every series
    apart (``GROUP BY *`` inside and out), which must stay exact.
    """
    assert setup(config) == 0
    rng = random.Random(20261128)
    start = datetime.combine(day, time(0), LOCAL_TZ).astimezone(UTC)
    readings: dict[str, list[tuple[datetime, int]]] = {}
    lines = []
    for n in range(1, 7):
        moments = sorted(start + timedelta(seconds=rng.randrange(86_400)) for _ in range(24))
        state = rng.randrange(2)
        for moment in moments:
            state = state if rng.random() < 0.2 else 1 - state  # some repeats, mostly changes
            readings.setdefault(f"board-a.{n}", []).append((moment, state))
            lines.append(line("seat", SEAT.format(n=n), f"occupied={state}i", moment))
    write(influxd, influx_db, lines)
    seat = next(q for q in QUERIES if q.name == "qihe_hourly_seat")
    window = (start + timedelta(hours=5), start + timedelta(hours=24))  # starts mid-stream
    influxd.query(seat.select(influx_db, start=window[0], end=window[1]), influx_db)
    got = rows(influxd, influx_db, "SELECT * FROM hourly.seat")
    expected: dict[tuple[str, int], tuple[int, int, int]] = {}
    for sensor, points in readings.items():
        samples: list[int | None] = []
        for minute in range(int((window[1] - window[0]).total_seconds() // 60)):
            minute_end = window[0] + timedelta(minutes=minute + 1)
            inside = [s for t, s in points if window[0] <= t < minute_end]
            samples.append(inside[-1] if inside else None)
        for h in range(len(samples) // 60):
            known = [s for s in samples[h * 60 : h * 60 + 60] if s is not None]
            if known:
                hour_ns = int((window[0] + timedelta(hours=h)).timestamp()) * 10**9
                expected[(sensor, hour_ns)] = (sum(known), len(known), known[-1])
    assert {
        key: (r["occupied_minutes"], r["known_minutes"], r["occupied_last"])
        for key, r in got.items()
    } == expected


def test_the_statistics_sample_config_is_enough_for_stats_setup() -> None:
    config = load_config_file(DOCS.parent.parent / "config" / "stats.yaml", DownsampleConfig)
    assert (config.influx.url, config.influx.database) == ("http://localhost:8086", "qihe")
    assert config.influx.timeout == timedelta(seconds=30)
