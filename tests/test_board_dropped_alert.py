"""The board_dropped rule: a board that gave reports up before they were stored is alerted.

Pure: link readings go into a :class:`FactStore` with explicit times, and the rules are
evaluated at a given instant (no broker, no clock of the machine).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from central.alerts.config import AlertsConfig
from central.alerts.rules import Condition, Context, evaluate
from central.facts import FactStore
from qihe.contract import LinkReading
from tests.alert_harness import DEVICE, SITE, directory

START = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
LINK = DEVICE  # the gateway names a link after its port's device


def link(at: datetime, board_dropped: int | None) -> LinkReading:
    return LinkReading(
        site=SITE,
        gateway="gw1",
        device=DEVICE,
        sensor=LINK,
        ts=at,
        frames=100,
        crc_errors=0,
        malformed=0,
        lost=0,
        duplicates=0,
        reconnects=0,
        board_dropped=board_dropped,
    )


def board_dropped_after(*counts: int | None) -> list[Condition]:
    """The board_dropped conditions once link readings with these counts came, a minute apart."""
    facts = FactStore()
    at = START
    for count in counts:
        facts.apply(link(at, count), at, retained=False)
        at += timedelta(minutes=1)
    ctx = Context(
        rules=AlertsConfig.model_validate({"sites": "unused.yaml"}).rules,
        directory=directory(),
        facts=facts,
        now=at,
        listening_since=START,
        active=frozenset(),
    )
    return [c for c in evaluate(ctx) if c.rule == "board_dropped"]


def test_a_board_that_gave_reports_up_since_the_last_link_reading_fires_board_dropped() -> None:
    [fired] = board_dropped_after(3, 10)

    assert fired.value == 7
    assert (fired.gateway, fired.device, fired.sensor) == ("gw1", DEVICE, LINK)
    assert fired.summary_zh == (
        f"板子 {DEVICE}（串口 {LINK}）在网关确认前放弃了 7 条报告（本次启动共 10 条），"
        "这些读数可能缺失"
    )
    assert fired.summary_en == (
        f"board {DEVICE} (serial link {LINK}) gave up 7 reports before the gateway "
        "acknowledged them (10 this boot): those readings may be missing"
    )


def test_an_unchanged_count_fires_nothing() -> None:
    assert board_dropped_after(4, 4) == []


def test_the_first_link_reading_seen_fires_nothing_its_growth_is_unknown() -> None:
    assert board_dropped_after(9) == []


def test_a_count_that_fell_means_the_board_reset_and_counts_its_new_boot() -> None:
    [fired] = board_dropped_after(40, 2)

    assert fired.value == 2


def test_a_gateway_without_window_support_fires_nothing() -> None:
    assert board_dropped_after(None, None) == []
