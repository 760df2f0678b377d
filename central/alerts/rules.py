"""The alert rules: from what is known now (:mod:`central.facts`) to the conditions that hold.

Each rule is a function returning the :class:`Condition` s that are true at ``now``; a condition
absent from the list is false. Rules with a threshold a value can hover around read ``active``
(the ids of alerts already pending or firing) to apply the level that clears instead of the
one that fires (hysteresis). The lifecycle — ``for``, firing, resolving — is
:mod:`central.alerts.lifecycle`'s job, not theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from central.alerts.after_hours import doors_open_after_hours
from central.alerts.config import DiskLow, MemoryLow, Rules, SeatStuck
from central.alerts.held_seats import held_seats
from central.alerts.model import Severity, alert_id
from central.alerts.sensors import SensorFacts
from central.calendar_hours import SiteHours, site_hours
from central.facts import FactStore, GatewayFacts, SiteFacts, Value
from central.sites import SiteDirectory, SiteSpec
from qihe.contract import LinkReading, OutboxReading, SystemReading

__all__ = ["Condition", "Context", "evaluate"]


@dataclass(frozen=True, slots=True)
class Condition:
    rule: str
    severity: Severity
    site: str
    labels: dict[str, str]
    summary_zh: str
    summary_en: str
    value: float | None = None
    gateway: str | None = None
    device: str | None = None
    sensor: str | None = None
    id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", alert_id(self.rule, self.labels))


@dataclass(frozen=True, slots=True)
class Context:
    rules: Rules
    directory: SiteDirectory
    facts: FactStore
    now: datetime
    #: Since when this engine has been listening (silences count from here, not before).
    listening_since: datetime
    #: Ids of alerts pending or firing.
    active: frozenset[str]
    #: Bought sensors' CO₂ and battery levels.
    sensors: SensorFacts = field(default_factory=SensorFacts)

    def spec(self, site: str) -> SiteSpec | None:
        return next((s for s in self.directory.sites if s.id == site), None)

    def hours(self, site: str) -> SiteHours | None:
        """The site's hours with holidays, 调休 and closures (``docs/calendar.md``)."""
        spec = self.spec(site)
        return site_hours(self.directory, spec) if spec is not None else None

    def gateway_state(self, gateway: GatewayFacts) -> tuple[str, datetime | None]:
        return gateway.state(
            self.now,
            silent_after=self.rules.gateway_offline.silent_after,
            started_at=self.listening_since,
        )


def evaluate(ctx: Context) -> list[Condition]:
    """Every condition true at ``ctx.now``, across every enabled rule and site."""
    out: list[Condition] = []
    for name, rule in _RULES.items():
        if ctx.rules.rule(name).enabled:
            for site_id, site in ctx.facts.sites.items():
                out.extend(rule(ctx, site_id, site))
    return out


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f}"


def _ids(site: str, gateway: str, **more: str) -> dict[str, str]:
    return {"site": site, "gateway": gateway, **more}


def _gateway_offline(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    rule = ctx.rules.gateway_offline
    for gw_id, gateway in site.gateways.items():
        state, _since = ctx.gateway_state(gateway)
        if state not in ("offline", "silent"):
            continue
        if state == "offline":
            zh, en = f"网关 {gw_id} 离线", f"gateway {gw_id} is offline"
        else:
            quiet = ctx.now - (gateway.heard or ctx.listening_since)
            zh = f"网关 {gw_id} 已 {_minutes(quiet)} 分钟没有消息"
            en = f"gateway {gw_id} silent for {_minutes(quiet)} min"
        yield Condition(
            "gateway_offline", rule.severity, site_id, _ids(site_id, gw_id), zh, en,
            gateway=gw_id,
        )  # fmt: skip


def _online(ctx: Context, site: SiteFacts, gateway: str) -> bool:
    facts = site.gateways.get(gateway)
    return facts is not None and ctx.gateway_state(facts)[0] == "online"


def _device_silent(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    rule = ctx.rules.device_silent
    for (gw_id, device), facts in site.devices.items():
        if facts.firmware is None and facts.last_heartbeat is None:
            continue  # not a board (a GPIO contact on the gateway itself)
        if not _online(ctx, site, gw_id):
            continue  # the gateway's own alert says it all
        silent_at = facts.silent_at(rule.missed_reports, ctx.listening_since)
        if ctx.now >= silent_at:
            quiet = ctx.now - (facts.heard or ctx.listening_since)
            yield Condition(
                "device_silent", rule.severity, site_id, _ids(site_id, gw_id, device=device),
                f"传感器板 {device} 已 {_minutes(quiet)} 分钟没有上报",
                f"board {device} silent for {_minutes(quiet)} min",
                gateway=gw_id, device=device,
            )  # fmt: skip


def _supply_low(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    rule = ctx.rules.supply_low
    for (gw_id, device), facts in site.devices.items():
        if facts.supply_mv is None:
            continue
        labels = _ids(site_id, gw_id, device=device)
        limit = (
            rule.clear_above_mv if alert_id("supply_low", labels) in ctx.active else rule.below_mv
        )
        if facts.supply_mv < limit:
            volts = facts.supply_mv / 1000
            yield Condition(
                "supply_low", rule.severity, site_id, labels,
                f"传感器板 {device} 供电电压低：{volts:.2f} V",
                f"board {device} supply low: {volts:.2f} V",
                value=volts, gateway=gw_id, device=device,
            )  # fmt: skip


_FAULTS_ZH = {
    "stuck": "卡住",
    "no_response": "无响应",
    "out_of_range": "读数超出范围",
    "supply_low": "供电不足",
    "other": "故障",
    "offline": "离线（设备不可用）",
}
_KINDS_ZH = {
    "seat": "座位传感器", "people": "人数计数器", "door": "门磁", "motion": "人体感应器",
    "air": "空气传感器", "battery": "电池",
}  # fmt: skip


def _device_fault(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    rule = ctx.rules.device_fault
    for (gw_id, kind, sensor), fault in site.faults.items():
        labels = _ids(site_id, gw_id, device=fault.device, sensor=f"{kind}:{sensor}")
        labels["code"] = fault.code
        what_zh = _KINDS_ZH.get(kind, kind)
        yield Condition(
            "device_fault", rule.severity, site_id, labels,
            f"{what_zh} {sensor} 报告故障：{_FAULTS_ZH.get(fault.code, fault.code)}",
            f"{kind} sensor {sensor} reports a fault: {fault.code}",
            gateway=gw_id, device=fault.device, sensor=sensor,
        )  # fmt: skip


def _after_hours(ctx: Context, site_id: str, grace: timedelta) -> timedelta | None:
    """How long the site has been closed, once that is longer than ``grace``."""
    hours = ctx.hours(site_id)
    if hours is None:
        return None
    closed = hours.closed_for(ctx.now.astimezone(ctx.directory.zone))
    return closed if closed is not None and closed >= grace else None


#: The text and value of a sensor held on: ``(sensor, held, too_long)`` to ``(zh, en, value)``.
_Describe = Callable[[str, timedelta, bool], tuple[str, str, float]]


def _held_on(
    ctx: Context,
    site_id: str,
    site: SiteFacts,
    name: str,
    rule: SeatStuck,
    values: dict[tuple[str, str], Value],
    longer_than: timedelta,
    describe: _Describe,
) -> Iterator[Condition]:
    """Sensors on (a seat occupied) for longer than ``longer_than``, or since
    before the site has been closed for the rule's ``closed_grace``; ``describe`` is told
    ``too_long=False`` for the after-hours case."""
    closed = _after_hours(ctx, site_id, rule.closed_grace)
    for (gw_id, sensor), value in values.items():
        if not value.on or not _online(ctx, site, gw_id):
            continue
        held = ctx.now - value.since
        if held >= longer_than:
            too_long = True
        elif closed is not None and value.since <= ctx.now - rule.closed_grace:
            too_long = False
        else:
            continue
        zh, en, number = describe(sensor, held, too_long)
        yield Condition(
            name, rule.severity, site_id, _ids(site_id, gw_id, sensor=sensor), zh, en,
            value=number, gateway=gw_id, device=value.device, sensor=sensor,
        )  # fmt: skip


def _seat_stuck(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    rule = ctx.rules.seat_stuck
    held_on = rule.occupied_longer_than
    return _held_on(ctx, site_id, site, "seat_stuck", rule, site.seats, held_on, _seat_text)


def _seat_text(sensor: str, held: timedelta, too_long: bool) -> tuple[str, str, float]:
    hours = held.total_seconds() / 3600
    if too_long:
        zh = f"座位 {sensor} 已连续占用 {hours:.1f} 小时，传感器可能卡住"
        en = f"seat {sensor} occupied for {hours:.1f} h without a change"
    else:
        zh = f"闭馆后座位 {sensor} 仍显示占用"
        en = f"seat {sensor} still occupied after closing time"
    return zh, en, round(hours, 2)


def _door_open(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    rule = ctx.rules.door_open
    for (gw_id, sensor), value in site.doors.items():
        held = ctx.now - value.since
        if value.on and held >= rule.open_longer_than and _online(ctx, site, gw_id):
            yield Condition(
                "door_open", rule.severity, site_id, _ids(site_id, gw_id, sensor=sensor),
                f"门 {sensor} 已打开 {_minutes(held)} 分钟",
                f"door {sensor} open for {_minutes(held)} min",
                value=round(held.total_seconds() / 60, 1),
                gateway=gw_id, device=value.device, sensor=sensor,
            )  # fmt: skip


def _door_open_after_hours(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    rule = ctx.rules.door_open_after_hours
    hours, zone = ctx.hours(site_id), ctx.directory.zone
    for door in doors_open_after_hours(hours, site.doors, ctx.now, zone, rule.grace):
        if _online(ctx, site, door.gateway):
            yield Condition(
                "door_open_after_hours", rule.severity, site_id,
                _ids(site_id, door.gateway, sensor=door.sensor), door.summary_zh,
                door.summary_en, value=door.minutes, gateway=door.gateway,
                device=door.value.device, sensor=door.sensor,
            )  # fmt: skip


def _seat_held_empty(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    spec = ctx.spec(site_id)
    if spec is None or not site.presence:
        return
    labels = {(s.gateway, s.sensor): s.label or s.sensor for s in spec.all_seats()}
    for seat in held_seats(site, labels, spec.seat_hold, ctx.now, ctx.directory.zone):
        if _online(ctx, site, seat.gateway):
            yield Condition(
                "seat_held_empty", ctx.rules.seat_held_empty.severity, site_id,
                _ids(site_id, seat.gateway, sensor=seat.sensor), seat.summary_zh,
                seat.summary_en, value=seat.minutes, gateway=seat.gateway, device=seat.device,
                sensor=seat.sensor,
            )  # fmt: skip


_R = TypeVar("_R", LinkReading, OutboxReading, SystemReading)


def _reports(site: SiteFacts, kind: type[_R]) -> Iterator[tuple[str, str, _R | None, _R]]:
    """A gateway's periodic reports of one kind: ``(gateway, sensor, previous, latest)``."""
    for gw_id, gateway in site.gateways.items():
        for (_kind, sensor), (previous, latest) in gateway.reports.items():
            if isinstance(latest, kind):
                yield gw_id, sensor, previous if isinstance(previous, kind) else None, latest


def _link_errors(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    rule = ctx.rules.link_errors
    for gw_id, link, previous, latest in _reports(site, LinkReading):
        if previous is None or not _online(ctx, site, gw_id):
            continue
        seconds = (latest.ts - previous.ts).total_seconds()
        errors = (latest.crc_errors + latest.malformed) - (previous.crc_errors + previous.malformed)
        lost = latest.lost - previous.lost
        if seconds <= 0 or errors < 0 or lost < 0:
            continue  # the gateway restarted: its counters began again
        rate = max(errors, lost) / seconds * 60
        labels = _ids(site_id, gw_id, device=latest.device, sensor=link)
        active = alert_id("link_errors", labels) in ctx.active
        if rate > (rule.clear_below_per_minute if active else rule.errors_per_minute):
            yield Condition(
                "link_errors", rule.severity, site_id, labels,
                f"串口 {link}（{latest.device}）每分钟 {rate:.1f} 个错误帧或丢失帧",
                f"serial link {link} ({latest.device}): {rate:.1f} bad or lost frames/min",
                value=round(rate, 2), gateway=gw_id, device=latest.device, sensor=link,
            )  # fmt: skip


def _percent_low(
    ctx: Context,
    site_id: str,
    site: SiteFacts,
    name: str,
    rule: DiskLow | MemoryLow,
    what: tuple[str, str],
    free: Callable[[SystemReading], tuple[int, int]],
) -> Iterator[Condition]:
    """What is left of a gateway's disk or memory, below the rule's percent; ``what`` names
    it (Chinese, English) and ``free`` reads ``(left, total)`` from its system report."""
    what_zh, what_en = what
    for gw_id, _sensor, _previous, latest in _reports(site, SystemReading):
        if not _online(ctx, site, gw_id):
            continue
        left, total = free(latest)
        if total <= 0:
            continue
        percent = left / total * 100
        labels = _ids(site_id, gw_id)
        active = alert_id(name, labels) in ctx.active
        if percent < (rule.clear_above_percent if active else rule.below_percent):
            yield Condition(
                name, rule.severity, site_id, labels,
                f"网关 {gw_id} {what_zh}仅剩 {percent:.1f}%",
                f"gateway {gw_id} {what_en} at {percent:.1f}% free",
                value=round(percent, 1), gateway=gw_id,
            )  # fmt: skip


def _disk_low(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    return _percent_low(
        ctx, site_id, site, "disk_low", ctx.rules.disk_low, ("存储卡空间", "disk"),
        lambda r: (r.disk_free_bytes, r.disk_total_bytes),
    )  # fmt: skip


def _memory_low(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    return _percent_low(
        ctx, site_id, site, "memory_low", ctx.rules.memory_low, ("可用内存", "memory"),
        lambda r: (r.mem_available_bytes, r.mem_total_bytes),
    )  # fmt: skip


def _cpu_hot(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    rule = ctx.rules.cpu_hot
    for gw_id, _sensor, _previous, latest in _reports(site, SystemReading):
        temp = latest.cpu_temp_c
        if temp is None or not _online(ctx, site, gw_id):
            continue
        labels = _ids(site_id, gw_id)
        active = alert_id("cpu_hot", labels) in ctx.active
        if temp > (rule.clear_below_c if active else rule.above_c):
            yield Condition(
                "cpu_hot", rule.severity, site_id, labels,
                f"网关 {gw_id} CPU 温度 {temp:.1f} °C", f"gateway {gw_id} CPU at {temp:.1f} °C",
                value=round(temp, 1), gateway=gw_id,
            )  # fmt: skip


def _outbox_backlog(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    rule = ctx.rules.outbox_backlog
    for gw_id, _sensor, previous, latest in _reports(site, OutboxReading):
        labels = _ids(site_id, gw_id)
        active = alert_id("outbox_backlog", labels) in ctx.active
        dropped = previous is not None and _drops(latest) > _drops(previous)
        if latest.queued > (rule.clear_below if active else rule.queued_above) or dropped:
            zh = f"网关 {gw_id} 待发送读数 {latest.queued} 条" + ("，已开始丢弃" if dropped else "")
            en = f"gateway {gw_id}: {latest.queued} readings waiting" + (
                ", some dropped" if dropped else ""
            )
            yield Condition(
                "outbox_backlog", rule.severity, site_id, labels, zh, en,
                value=float(latest.queued), gateway=gw_id,
            )  # fmt: skip


#: MQTT 5 PUBACK reason codes a broker refuses with, in Chinese (English from paho).
_REFUSALS_ZH = {
    0x80: "未指明错误",
    0x83: "实现特定错误",
    0x87: "未授权",
    0x90: "主题名无效",
    0x91: "报文标识符已占用",
    0x97: "超出配额",
    0x99: "载荷格式无效",
}


def _reason_en(code: int) -> str:
    try:
        return str(ReasonCode(PacketTypes.PUBACK, identifier=code).getName())
    except (KeyError, ValueError):
        return "refused"


def _refusals(report: OutboxReading) -> dict[tuple[str, int], int]:
    """The refusals an outbox report counts, by (kind, reason code)."""
    return {(r.kind, r.reason): r.count for r in report.refusals}


def _publish_refused(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    rule = ctx.rules.publish_refused
    for gw_id, _sensor, previous, latest in _reports(site, OutboxReading):
        now = _refusals(latest)
        if previous is None:
            grew: dict[tuple[str, int], int] = {}  # no growth known yet: only what is held
        elif latest.refused < previous.refused:
            grew = now  # the gateway restarted: its counters began again
        else:
            before = _refusals(previous)
            grew = {k: n - before.get(k, 0) for k, n in now.items() if n > before.get(k, 0)}
        if not grew and latest.refused_held == 0:
            continue
        shown = sorted((grew or now).items())
        zh = "、".join(f"{k} 0x{c:02x} {_REFUSALS_ZH.get(c, '拒绝')} ×{n}" for (k, c), n in shown)
        en = ", ".join(f"{k} 0x{c:02x} {_reason_en(c)} ×{n}" for (k, c), n in shown)
        held = latest.refused_held
        yield Condition(
            "publish_refused", rule.severity, site_id, _ids(site_id, gw_id),
            f"网关 {gw_id} 的发布被 MQTT 代理拒绝：{zh}；{held} 条读数在发件箱中等待重试",
            f"gateway {gw_id}: the broker refused publishes: {en}; {held} readings held",
            value=float(held), gateway=gw_id,
        )  # fmt: skip


def _board_dropped(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    rule = ctx.rules.board_dropped
    for gw_id, link, previous, latest in _reports(site, LinkReading):
        now = latest.board_dropped
        before = None if previous is None else previous.board_dropped
        if now is None or before is None:
            continue  # no growth known yet (or a gateway without WINDOW)
        grew = now - before if now >= before else now  # fewer: the board reset, counts anew
        if grew <= 0:
            continue
        yield Condition(
            "board_dropped", rule.severity, site_id,
            _ids(site_id, gw_id, device=latest.device, sensor=link),
            f"板子 {latest.device}（串口 {link}）在网关确认前放弃了 {grew} 条报告"
            f"（本次启动共 {now} 条），这些读数可能缺失",
            f"board {latest.device} (serial link {link}) gave up {grew} reports before the "
            f"gateway acknowledged them ({now} this boot): those readings may be missing",
            value=float(grew), gateway=gw_id, device=latest.device, sensor=link,
        )  # fmt: skip


def _co2_high(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    rule = ctx.rules.co2_high
    for (gw_id, sensor), level in ctx.sensors.co2(site_id).items():
        if (
            not _online(ctx, site, gw_id)
            or ctx.now - level.heard >= rule.stale_after
            or _faulty(site, gw_id, sensor)
        ):
            continue  # a value that cannot be trusted now (the live page shows it stale)
        labels = _ids(site_id, gw_id, sensor=sensor)
        active = alert_id("co2_high", labels) in ctx.active
        ppm, limit = level.value, rule.threshold_ppm
        if ppm > limit or (active and ppm >= limit - rule.hysteresis_ppm):
            yield Condition(
                "co2_high", rule.severity, site_id, labels,
                f"{sensor} 二氧化碳浓度 {ppm:.0f} ppm，超过 {limit:.0f} ppm，请开窗通风",
                f"CO₂ at {sensor}: {ppm:.0f} ppm, above {limit:.0f} ppm: air the room",
                value=round(ppm), gateway=gw_id, device=level.device, sensor=sensor,
            )  # fmt: skip


def _faulty(site: SiteFacts, gateway: str, sensor: str) -> bool:
    """An active fault names the sensor as its target, of any kind: ``offline`` (Zigbee2MQTT
    says the device is unavailable), ``no_response`` (a Modbus device). Not by device: a
    Zigbee link's or a Modbus port's readings share one."""
    return any(gw == gateway and target == sensor for (gw, _kind, target) in site.faults)


def _battery_low(ctx: Context, site_id: str, site: SiteFacts) -> Iterator[Condition]:
    rule = ctx.rules.battery_low
    for (gw_id, sensor), level in ctx.sensors.battery(site_id).items():
        labels = _ids(site_id, gw_id, sensor=sensor)
        active = alert_id("battery_low", labels) in ctx.active
        if level.value < (rule.clear_above_percent if active else rule.percent):
            yield Condition(
                "battery_low", rule.severity, site_id, labels,
                f"传感器 {sensor} 电池电量低：{level.value:.0f}%，请更换电池",
                f"sensor {sensor} battery low: {level.value:.0f}%: replace it",
                value=level.value, gateway=gw_id, device=level.device, sensor=sensor,
            )  # fmt: skip


def _drops(reading: OutboxReading) -> int:
    return reading.dropped_periodic + reading.dropped_state + reading.dropped_clock


_RULES: dict[str, Callable[[Context, str, SiteFacts], Iterator[Condition]]] = {
    "gateway_offline": _gateway_offline,
    "device_silent": _device_silent,
    "supply_low": _supply_low,
    "device_fault": _device_fault,
    "seat_stuck": _seat_stuck,
    "door_open": _door_open,
    "door_open_after_hours": _door_open_after_hours,
    "seat_held_empty": _seat_held_empty,
    "link_errors": _link_errors,
    "disk_low": _disk_low,
    "memory_low": _memory_low,
    "cpu_hot": _cpu_hot,
    "outbox_backlog": _outbox_backlog,
    "publish_refused": _publish_refused,
    "board_dropped": _board_dropped,
    "co2_high": _co2_high,
    "battery_low": _battery_low,
}
assert set(_RULES) == set(Rules.model_fields), "every configured rule has a function"
