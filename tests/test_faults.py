"""Faults with real processes: every reading the board produced lands in InfluxDB once, in order.

Each test runs one scenario of ``tests/fault_harness.py`` (its own Mosquitto,
InfluxDB, gateway and consumer processes, and a scripted board on a pty): a
steady stream of readings, a real fault (SIGKILL, a stopped server, a pulled
cable), and a comparison of what the board produced with the points in
InfluxDB, matched by sensor and by the board's frame number. The table of these
runs is in docs/reliability.md (``python -m bench.reliability``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qihe.devstack import MosquittoProcess
from tests.fault_harness import (
    DURABLE_BROKER,
    SCENARIOS,
    Landed,
    Produced,
    ScenarioResult,
    broker_down_60s,
    broker_killed,
    broker_killed_while_consumer_away,
    compare,
    consumer_killed,
    gateway_killed_repeatedly,
    influxd_restarted,
    serial_unplugged,
    serial_unplugged_board_resends,
)


def assert_every_reading_landed_once_in_order(result: ScenarioResult) -> None:
    counts = (
        result.landed,
        result.lost,
        result.duplicated,
        result.unexpected,
        result.out_of_order,
    )
    assert counts == (result.produced, 0, 0, 0, 0), result.describe()
    assert result.broker_errors == (), result.describe()
    # The fault hit a live stream: the board went on producing while it lasted.
    assert result.produced_during_faults + result.not_sent > 0, result.describe()


def test_the_comparison_tells_a_lost_reading_a_duplicate_and_a_swap_apart() -> None:
    produced = [
        Produced("seat b.1", 1, (1,)),
        Produced("seat b.1", 3, (0,)),
        Produced("seat b.1", 5, (1,)),
        Produced("seat b.2", 2, (1,)),
        Produced("seat b.2", 4, (0,)),
    ]
    points = [
        Landed("seat b.1", 10, 1, (1,)),
        Landed("seat b.1", 20, 1, (1,)),  # the same reading again, stamped anew: a duplicate
        Landed("seat b.1", 30, 5, (1,)),  # seq 3 never landed
        Landed("seat b.2", 10, 4, (0,)),  # stored before seq 2: out of order
        Landed("seat b.2", 20, 2, (1,)),
        Landed("seat b.2", 30, 6, (1,)),  # no such reading
    ]
    result = compare(produced, points)
    assert (result.produced, result.landed, result.lost) == (5, 4, 1)
    assert (result.duplicated, result.unexpected, result.out_of_order) == (1, 1, 1)
    assert result.missing == (Produced("seat b.1", 3, (0,)),)
    assert compare(produced, [Landed(r.sensor, r.seq, r.seq, r.value) for r in produced]).exact


DOC = (Path(__file__).resolve().parent.parent / "docs" / "reliability.md").read_text("utf-8")


def test_docs_reliability_describes_every_scenario_and_no_other() -> None:
    section = DOC.split("## What each scenario does")[1].split("\n## ")[0]
    documented = re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.MULTILINE)
    assert documented == [scenario.name for scenario in SCENARIOS]


def test_the_scenario_brokers_run_the_broker_setting_docs_reliability_recommends(
    tmp_path: Path,
) -> None:
    match = re.search(r"\*\*Recommended for production\*\*.*?```\n(.*?)```", DOC, re.DOTALL)
    assert match is not None
    recommended = [line.split("#")[0].strip() for line in match[1].splitlines() if line.strip()]
    config = MosquittoProcess(tmp_path, extra_config=DURABLE_BROKER).config_text().splitlines()
    assert [line for line in recommended if line not in config] == []


@pytest.mark.integration
async def test_no_reading_is_lost_or_doubled_when_the_broker_is_sigkilled_mid_stream(
    tmp_path: Path,
) -> None:
    assert_every_reading_landed_once_in_order(await broker_killed(tmp_path))


@pytest.mark.integration
async def test_readings_queued_for_an_absent_consumer_survive_a_broker_sigkill(
    tmp_path: Path,
) -> None:
    assert_every_reading_landed_once_in_order(await broker_killed_while_consumer_away(tmp_path))


@pytest.mark.integration
@pytest.mark.timeout(300)
async def test_readings_of_a_60_s_broker_outage_all_land_after_it_returns_in_order_once(
    tmp_path: Path,
) -> None:
    result = await broker_down_60s(tmp_path)
    assert_every_reading_landed_once_in_order(result)
    (outage,) = result.faults
    # A heartbeat a second at least: the outage held a minute of readings, not a handful.
    assert outage.produced_during >= 60


@pytest.mark.integration
async def test_no_reading_is_lost_or_doubled_when_influxdb_stops_and_restarts(
    tmp_path: Path,
) -> None:
    assert_every_reading_landed_once_in_order(await influxd_restarted(tmp_path))


@pytest.mark.integration
async def test_no_reading_is_lost_or_doubled_when_the_consumer_is_sigkilled(
    tmp_path: Path,
) -> None:
    assert_every_reading_landed_once_in_order(await consumer_killed(tmp_path))


@pytest.mark.integration
async def test_readings_flow_again_once_the_serial_port_is_plugged_back(tmp_path: Path) -> None:
    result = await serial_unplugged(tmp_path)
    assert_every_reading_landed_once_in_order(result)
    # Today's board drops what it produces while unplugged (it cannot resend yet):
    # those reports never reached the wire and are not counted as produced.
    assert result.not_sent > 0


@pytest.mark.integration
async def test_reports_made_while_unplugged_are_resent_and_land_once_in_order(
    tmp_path: Path,
) -> None:
    result = await serial_unplugged_board_resends(tmp_path)
    assert_every_reading_landed_once_in_order(result)
    (unplug,) = result.faults
    assert unplug.produced_during > 0  # made while the cable was out, all landed
    assert result.resent > 0


@pytest.mark.integration
async def test_no_reading_is_lost_or_doubled_when_the_gateway_is_sigkilled_ten_times(
    tmp_path: Path,
) -> None:
    result = await gateway_killed_repeatedly(tmp_path, kills=10)
    assert len(result.faults) == 10
    assert_every_reading_landed_once_in_order(result)
