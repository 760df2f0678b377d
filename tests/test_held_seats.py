"""``seat_held_empty``: a gentle notice for a seat held while empty (占座), rule by rule.

The rules are evaluated at given moments over facts built from readings; the whole pipe with the
real engine is ``tests/test_seat_presence_pipe.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from central.alerts.config import AlertsConfig
from central.alerts.rules import Condition, Context, evaluate
from central.facts import FactStore
from central.sites import SiteDirectory
from qihe.contract import FaultReading, GatewayStatus, SeatReading

HEBI = ZoneInfo("Asia/Shanghai")
SITE = "shancheng-xinyuan2"
IDS = {"site": SITE, "gateway": "gw1", "device": "xinyuan2-a"}


def directory(**hold: object) -> SiteDirectory:
    return SiteDirectory.model_validate(
        {
            "sites": [
                {
                    "id": SITE,
                    "name": "淇河书屋·馨苑二区站",
                    "seat_grids": [
                        {
                            "gateway": "gw1",
                            "device": "xinyuan2-a",
                            "count": 4,
                            "cols": 4,
                            "label_prefix": "A",
                        }
                    ],
                    **({"seat_hold": hold} if hold else {}),
                }
            ]
        }
    )


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 30, hour, minute, tzinfo=HEBI)


def seat(n: int, occupied: bool, presence: bool | None, moment: datetime) -> SeatReading:
    return SeatReading(
        sensor=f"xinyuan2-a.{n}", occupied=occupied, presence=presence, ts=moment, **IDS
    )


def held(
    facts: FactStore, now: datetime, sites: SiteDirectory | None = None, **rules: object
) -> list[Condition]:
    status = GatewayStatus(site=SITE, gateway="gw1", state="online", session=1, ts=now)
    facts.apply(status, now, retained=False)
    config = AlertsConfig.model_validate({"sites": "unused.yaml", "rules": rules})
    ctx = Context(
        rules=config.rules,
        directory=sites or directory(),
        facts=facts,
        now=now,
        listening_since=now - timedelta(hours=1),
        active=frozenset(),
    )
    return [c for c in evaluate(ctx) if c.rule == "seat_held_empty"]


def facts_of(*readings: SeatReading | FaultReading) -> FactStore:
    facts = FactStore()
    for reading in readings:
        facts.apply(reading, reading.ts, retained=False)
    return facts


def test_an_away_seat_is_noticed_once_its_grace_is_over_naming_the_seat() -> None:
    facts = facts_of(seat(2, True, True, at(9)), seat(2, True, False, at(9, 40)))

    assert held(facts, at(10, 9)) == []
    [notice] = held(facts, at(10, 10))

    assert notice.severity == "info"
    assert notice.labels == {"site": SITE, "gateway": "gw1", "sensor": "xinyuan2-a.2"}
    assert (
        notice.summary_zh == "温馨提示：座位 A2 自 09:40 起有物品但无人（已 30 分钟），可能被占座"
    )
    assert notice.summary_en == (
        "gentle notice: seat A2 has had things on it and nobody there since 09:40 (30 min): "
        "held while empty?"
    )


def test_a_seat_left_at_lunch_has_ninety_minutes() -> None:
    facts = facts_of(seat(1, True, False, at(12, 5)))

    assert held(facts, at(13, 34)) == []
    assert len(held(facts, at(13, 35))) == 1


def test_the_notice_resolves_when_someone_is_back_or_the_books_are_taken() -> None:
    back = facts_of(seat(1, True, False, at(9)), seat(1, True, True, at(10)))
    taken = facts_of(seat(1, True, False, at(9)), seat(1, False, False, at(10)))

    assert held(back, at(10, 1)) == []
    assert held(taken, at(10, 1)) == []


def test_a_seat_without_a_presence_channel_is_never_noticed() -> None:
    facts = facts_of(seat(3, True, None, at(7)))

    assert held(facts, at(21)) == []


def test_a_faulty_seat_or_a_silent_gateway_raises_no_notice() -> None:
    stuck = FaultReading(
        sensor="xinyuan2-a.seat.4", code="stuck", active=True, target_kind="seat",
        target="xinyuan2-a.4", ts=at(9, 5), **IDS,
    )  # fmt: skip
    facts = facts_of(seat(4, True, False, at(9)), stuck)
    assert held(facts, at(11)) == []

    quiet = facts_of(seat(1, True, False, at(9)))
    config = {"gateway_offline": {"silent_after": 60}}
    ctx_now = at(11)
    status = GatewayStatus(site=SITE, gateway="gw1", state="online", session=1, ts=at(9))
    quiet.apply(status, at(9), retained=False)  # heard last at 09:00
    rules = AlertsConfig.model_validate({"sites": "unused.yaml", "rules": config}).rules
    ctx = Context(
        rules=rules, directory=directory(), facts=quiet, now=ctx_now,
        listening_since=at(8), active=frozenset(),
    )  # fmt: skip
    assert [c for c in evaluate(ctx) if c.rule == "seat_held_empty"] == []


def test_a_site_sets_its_own_grace_and_the_rule_can_be_switched_off() -> None:
    facts = facts_of(seat(1, True, False, at(9)))
    quick = directory(grace="PT10M")

    assert len(held(facts, at(9, 10), quick)) == 1
    assert held(facts, at(9, 10)) == []
    assert held(facts, at(12), quick, seat_held_empty={"enabled": False}) == []


def test_a_misspelt_rule_setting_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"seat_held_empty\.grace"):
        AlertsConfig.model_validate(
            {"sites": "unused.yaml", "rules": {"seat_held_empty": {"grace": 60}}}
        )
