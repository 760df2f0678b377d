"""Faults with real processes: every reading the board produced lands in InfluxDB once, in order.

Each test runs one scenario of ``tests/fault_harness.py`` (its own Mosquitto,
InfluxDB, gateway and consumer processes, and a scripted board on a pty): a
steady stream of readings, a real fault (SIGKILL, a stopped server, a pulled
cable), and a comparison of what the board produced with the points in
InfluxDB, matched by sensor and by the board's frame number. The table of these
runs is in docs/reliability.md (``python -m bench.reliability``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from devstack import MosquittoProcess
from tests.fault_harness import (
    DURABLE_BROKER,
    SCENARIOS,
    Landed,
    Produced,
    ScenarioResult,
    board_before_gateway,
    broker_down_60s,
    broker_killed,
    broker_killed_while_consumer_away,
    broker_refuses_a_kind,
    compare,
    consumer_killed,
    database_locked,
    gateway_killed_before_commit,
    gateway_killed_board_resending_slowly,
    gateway_killed_repeatedly,
    influxd_restarted,
    sd_card_full,
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


@pytest.mark.integration
async def test_readings_published_before_a_commit_the_sigkill_prevented_land_once_in_order(
    tmp_path: Path,
) -> None:
    result = await gateway_killed_before_commit(tmp_path, kills=10)
    assert len(result.faults) == 10
    # Every kill struck with readings published and not stored: the window was hit.
    assert len(result.uncommitted_at_kills) == 10, result.describe()
    assert min(result.uncommitted_at_kills) > 0, result.uncommitted_at_kills
    assert_every_reading_landed_once_in_order(result)


# -- the SD card refuses commits: a full filesystem, a locked outbox ----------------------------

#: The gateway's memory bound in these tests: small, so a short fault passes it.
SMALL_BOUND = 100
BOARD_KINDS = ("seat", "door", "people", "heartbeat", "device", "fault")


def assert_every_reading_not_dropped_landed_once_in_order(result: ScenarioResult) -> None:
    """Readings dropped from the gateway's memory are lost, and exactly those: counted by kind
    in its store, reported in its outbox health reading; the rest landed once, in order."""
    dropped = result.gateway_dropped
    board_dropped = sum(dropped.get(kind, 0) for kind in BOARD_KINDS)
    assert board_dropped > 0, result.describe()  # the fault outlasted the bound
    counts = (result.landed, result.lost, result.duplicated, result.unexpected)
    assert counts == (result.produced - board_dropped, board_dropped, 0, 0), result.describe()
    assert result.out_of_order == 0, result.describe()
    # Periodic telemetry goes first: the heartbeats made while the store failed are among them.
    assert dropped.get("heartbeat", 0) > 0, result.describe()
    # Reported, not silent: the outbox health reading counts every drop (its own kind,
    # the host's and the links' reports dropped too), and the gateway said so in two lines.
    assert result.gateway_reported_dropped == sum(dropped.values()), result.describe()
    log = result.logs[0].read_text(encoding="utf-8")
    assert log.count("outbox holds its bound of 100 readings in memory") == 1, result.describe()
    assert log.count("outbox commits work again") == 1, result.describe()
    assert result.broker_errors == (), result.describe()


@pytest.mark.integration
@pytest.mark.timeout(180)
@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a size-limited tmpfs: needs root (CI is)")
async def test_readings_held_while_the_sd_card_is_full_land_once_or_are_counted_dropped(
    tmp_path: Path,
) -> None:
    # 15 s of a full card (the bench scenario: 60 s) at ~17 readings/s pass a bound of 100,
    # the broker down meanwhile: readings published before their commit would not wait.
    result = await sd_card_full(
        tmp_path, down=15, max_pending=SMALL_BOUND, drain_timeout=40, broker_down=True
    )
    assert_every_reading_not_dropped_landed_once_in_order(result)


@pytest.mark.integration
@pytest.mark.timeout(180)
async def test_readings_held_while_the_outbox_is_locked_land_once_or_are_counted_dropped(
    tmp_path: Path,
) -> None:
    # 10 s of a lock (the bench scenario: 30 s) at ~17 readings/s pass a bound of 100, the
    # broker down meanwhile (as above).
    result = await database_locked(
        tmp_path, down=10, max_pending=SMALL_BOUND, drain_timeout=40, broker_down=True
    )
    assert_every_reading_not_dropped_landed_once_in_order(result)


@pytest.mark.integration
@pytest.mark.timeout(180)
async def test_readings_of_a_kind_the_broker_refuses_land_once_in_order_once_it_allows_them(
    tmp_path: Path,
) -> None:
    # 5 s of refusals (the bench scenario: 10 s): door readings wait, the others flow.
    result = await broker_refuses_a_kind(tmp_path, refused_for=5)
    assert_every_reading_landed_once_in_order(result)
    (refusal,) = result.faults
    assert refusal.produced_during > 0
    gateway_log = (tmp_path / "gateway.log").read_text(errors="replace")
    assert "/door/taoyuan-a.1: 0x87 Not authorized" in gateway_log


# -- a board that gave reports up, a board that talked before the gateway ------------------------


@pytest.mark.integration
@pytest.mark.timeout(180)
async def test_reports_a_board_resending_after_2_s_gave_up_are_all_the_lost_and_all_reported(
    tmp_path: Path,
) -> None:
    result = await gateway_killed_board_resending_slowly(tmp_path)
    missing = {(r.sensor, r.seq) for r in result.comparison.missing}
    assert len(result.faults) == 10
    assert (result.duplicated, result.unexpected, result.out_of_order) == (0, 0, 0), (
        result.describe()
    )
    # landed + given up and not landed = produced: every missing reading is one the board
    # gave up (its window overflowed while the gateway was killed again and again) ...
    assert missing <= result.given_up, result.describe()
    assert result.landed + len(missing) == result.produced, result.describe()
    # ... and the gateway published exactly the board's own count of what it gave up.
    assert len(result.given_up) == result.board_dropped, result.describe()
    assert result.reported_board_dropped == result.board_dropped, result.describe()
    assert result.broker_errors == (), result.describe()


@pytest.mark.integration
async def test_readings_a_board_made_before_the_gateway_started_all_land_once_in_order(
    tmp_path: Path,
) -> None:
    result = await board_before_gateway(tmp_path)
    assert_every_reading_landed_once_in_order(result)
    (start,) = result.faults
    assert start.produced_during > 0  # made before the gateway held the port: all landed
    assert (result.board_dropped, result.reported_board_dropped) == (0, 0), result.describe()
