"""Alert lifecycle and notification timing, on an injected clock (Alertmanager's semantics)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from central.alerts.config import AlertsConfig
from central.alerts.lifecycle import AlertBook, Dispatcher
from central.alerts.model import Notification
from central.alerts.rules import Condition

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
NAMES = {"qibin-taoyuan": "淇河书屋·桃园站", "qibin-dongfang": "淇河书屋·东方站"}


def config(**extra: object) -> AlertsConfig:
    return AlertsConfig.model_validate(
        {
            "sites": "sites.yaml",
            "group_wait": 30,
            "group_interval": 300,
            "repeat_interval": 3600,
            **extra,
        }
    )


def fault(site: str = "qibin-taoyuan", sensor: str = "board-a.3") -> Condition:
    labels = {"site": site, "gateway": "gw1", "device": "board-a", "sensor": f"seat:{sensor}"}
    return Condition(
        "device_fault", "warning", site, {**labels, "code": "stuck"},
        f"座位传感器 {sensor} 报告故障：卡住", f"seat sensor {sensor} reports a fault: stuck",
        gateway="gw1", device="board-a", sensor=sensor,
    )  # fmt: skip


def offline(site: str = "qibin-taoyuan") -> Condition:
    return Condition(
        "gateway_offline", "critical", site, {"site": site, "gateway": "gw1"},
        "网关 gw1 离线", "gateway gw1 is offline", gateway="gw1",
    )  # fmt: skip


class Run:
    """A book and a dispatcher stepped through time, collecting what would be sent."""

    def __init__(self, cfg: AlertsConfig) -> None:
        self.book = AlertBook(cfg, SHANGHAI, NAMES)
        self.dispatcher = Dispatcher(cfg)
        self.sent: list[Notification] = []

    def at(self, seconds: float, *conditions: Condition) -> list[Notification]:
        now = T0 + timedelta(seconds=seconds)
        step = self.book.step(conditions, now)
        self.dispatcher.resolved(step.resolved)
        due = self.dispatcher.due(self.book.firing, now)
        for notification in due:
            self.book.notified(notification.firing, now)
        self.sent.extend(due)
        return due


def test_an_alert_fires_only_after_its_condition_held_for_its_for_duration() -> None:
    run = Run(config(rules={"device_fault": {"for": 60}}, group_wait=0))

    assert run.at(0, fault()) == []
    assert run.at(59, fault()) == []
    assert run.book.firing == []
    sent = run.at(60, fault())

    assert [n.status for n in sent] == ["firing"]
    assert sent[0].firing[0].starts_at == T0  # since the condition began


def test_a_condition_that_goes_away_while_pending_is_never_sent() -> None:
    run = Run(config(rules={"device_fault": {"for": 60}}, group_wait=0))

    run.at(0, fault())
    run.at(30)
    run.at(90, fault())

    assert run.sent == []


def test_alerts_of_one_site_wait_for_each_other_and_go_out_in_one_message() -> None:
    run = Run(config())

    run.at(0, fault(sensor="board-a.3"))
    run.at(10, fault(sensor="board-a.3"), fault(sensor="board-a.5"))
    run.at(20, fault(sensor="board-a.3"), fault(sensor="board-a.5"), fault("qibin-dongfang"))
    sent = run.at(30, fault(sensor="board-a.3"), fault(sensor="board-a.5"), fault("qibin-dongfang"))

    assert [(n.site, len(n.firing)) for n in sent] == [("qibin-taoyuan", 2)]
    later = run.at(
        50, fault(sensor="board-a.3"), fault(sensor="board-a.5"), fault("qibin-dongfang")
    )
    assert [(n.site, len(n.firing)) for n in later] == [("qibin-dongfang", 1)]


def test_later_changes_wait_for_the_group_interval_and_carry_everything_firing() -> None:
    run = Run(config(group_wait=0))
    run.at(0, fault(sensor="board-a.3"))

    assert run.at(10, fault(sensor="board-a.3"), fault(sensor="board-a.5")) == []
    sent = run.at(300, fault(sensor="board-a.3"), fault(sensor="board-a.5"))

    assert [len(n.firing) for n in sent] == [2]


def test_an_alert_still_firing_is_repeated_every_repeat_interval_and_not_in_between() -> None:
    run = Run(config(group_wait=0))
    run.at(0, fault())

    quiet = [run.at(s, fault()) for s in (60, 600, 3599)]
    repeated = run.at(3600, fault())

    assert quiet == [[], [], []]
    assert [n.status for n in repeated] == ["firing"]
    assert len(run.sent) == 2


def test_a_resolved_alert_that_was_sent_gets_a_resolved_notice_once() -> None:
    run = Run(config(group_wait=0, group_interval=0))
    run.at(0, fault())

    sent = run.at(10)

    assert [(n.status, len(n.firing), len(n.resolved)) for n in sent] == [("resolved", 0, 1)]
    assert sent[0].resolved[0].ends_at == T0 + timedelta(seconds=10)
    assert run.at(20) == []


def test_keep_firing_for_bridges_a_short_gap_without_a_resolved_notice() -> None:
    run = Run(config(rules={"device_fault": {"keep_firing_for": 60}}, group_wait=0))
    run.at(0, fault())

    run.at(10)
    run.at(50, fault())
    run.at(100, fault())

    assert [n.status for n in run.sent] == ["firing"]


def test_a_silenced_alert_is_not_sent_until_its_window_ends() -> None:
    window = {
        "site": "qibin-taoyuan",
        "starts_at": T0.isoformat(),
        "ends_at": (T0 + timedelta(minutes=10)).isoformat(),
        "comment": "更换座位传感器 / replacing a seat sensor",
    }
    run = Run(config(group_wait=0, silences=[window]))

    run.at(0, fault())
    run.at(300, fault())
    assert run.sent == []
    assert run.book.firing[0].silenced is True

    sent = run.at(600, fault())
    assert [n.status for n in sent] == ["firing"]
    assert sent[0].firing[0].silenced is False


def test_a_weekly_maintenance_window_is_read_in_local_time() -> None:
    # 10:00-11:00 Hebi time on Mondays; T0 is Monday 10:00 in Hebi.
    window = {"weekly": {"days": ["mon"], "start": "10:00", "end": "11:00"}}
    run = Run(config(group_wait=0, silences=[window]))

    run.at(0, fault())
    assert run.sent == []
    assert [n.status for n in run.at(3600, fault())] == ["firing"]


def test_a_gateway_that_is_down_inhibits_the_alerts_of_the_sensors_behind_it() -> None:
    run = Run(config(group_wait=0, group_interval=0))

    assert run.at(0, offline(), fault()) == []  # the gateway's own alert is still pending
    sent = run.at(60, offline(), fault())

    assert [[a.rule for a in n.firing] for n in sent] == [["gateway_offline"]]
    inhibited = next(a for a in run.book.firing if a.rule == "device_fault")
    assert inhibited.inhibited_by == offline().id


def test_an_alert_restored_after_a_restart_is_not_sent_again() -> None:
    first = Run(config(group_wait=0))
    first.at(0, fault())
    published = first.book.firing[0]
    assert published.notified_at == T0

    second = Run(config(group_wait=0))
    second.book.restore(published)
    second.book.step([], T0 + timedelta(seconds=100), settled=False)  # rules still in grace
    sent = second.at(120, fault())

    assert sent == []
    assert [a.id for a in second.book.firing] == [published.id]
    assert [n.status for n in second.at(3600, fault())] == ["firing"]  # the repeat is kept


def test_a_restored_alert_whose_fault_is_gone_resolves_once_the_rules_have_settled() -> None:
    first = Run(config(group_wait=0))
    first.at(0, fault())
    second = Run(config(group_wait=0, group_interval=0))
    second.book.restore(first.book.firing[0])

    assert second.book.step([], T0 + timedelta(seconds=10), settled=False).resolved == ()
    sent = second.at(400)

    assert [(n.status, len(n.resolved)) for n in sent] == [("resolved", 1)]


def test_the_same_condition_is_one_alert_whatever_its_value_does() -> None:
    run = Run(config(group_wait=0))
    base = fault()

    run.at(0, base)
    run.at(10, Condition(**{**_fields(base), "value": 2.0}))

    assert len(run.book.firing) == 1
    assert run.book.firing[0].value == 2.0
    assert len(run.sent) == 1


def _fields(cond: Condition) -> dict[str, object]:
    return {
        k: getattr(cond, k)
        for k in ("rule", "severity", "site", "labels", "summary_zh", "summary_en", "value",
                  "gateway", "device", "sensor")
    }  # fmt: skip
