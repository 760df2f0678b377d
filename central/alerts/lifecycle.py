"""Alert lifecycle in the style of Prometheus Alertmanager (sans-IO).

:class:`AlertBook` turns the conditions true at each evaluation into alerts: a new condition is
*pending*; held for its rule's ``for`` it *fires*; gone for its rule's ``keep_firing_for`` it
*resolves* (a pending one just disappears). The same condition is the same alert (its id comes
from rule and labels), so it is never raised twice. Silences and inhibition are marked on the
firing alerts; they change what is sent to people, not what is true.

:class:`Dispatcher` decides what to send and when, per site: a site's first alert waits
``group_wait`` for others to join it, later changes wait ``group_interval`` after the site's last
message, alerts still firing are repeated every ``repeat_interval``, and an alert that was sent
gets a resolved notice. Alerts restored from MQTT after a restart keep their ``notified_at``,
so nothing already sent is sent again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, tzinfo
from typing import Protocol

from central.alerts.config import AlertsConfig, Silence
from central.alerts.model import Alert, Notification
from central.alerts.rules import Condition
from qihe.contract import Acknowledgement

__all__ = ["AlertBook", "Decisions", "Dispatcher", "Step"]


class Decisions(Protocol):
    """What operators decided at runtime (``central/alerts/ack_control.py``)."""

    def silenced(self, alert: Alert, now: datetime) -> bool: ...
    def acknowledged(self, alert: Alert) -> Acknowledgement | None: ...


#: Which firing alert explains away which others: (inhibiting rule, labels that must match).
_INHIBITIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gateway_offline", ("site", "gateway")),
    ("device_silent", ("site", "gateway", "device")),
)


@dataclass(slots=True)
class _Instance:
    condition: Condition
    since: datetime
    last_true: datetime
    alert: Alert | None = None  # set once firing


@dataclass(frozen=True, slots=True)
class Step:
    fired: tuple[Alert, ...] = ()
    resolved: tuple[Alert, ...] = ()
    #: Firing alerts whose published form changed (silence, inhibition, notified_at...).
    changed: tuple[Alert, ...] = ()


class AlertBook:
    def __init__(
        self,
        config: AlertsConfig,
        zone: tzinfo,
        site_names: dict[str, str],
        decisions: Decisions | None = None,
    ) -> None:
        self._config = config
        self._zone = zone
        self._names = site_names
        self._decisions = decisions
        self._instances: dict[str, _Instance] = {}
        self._restored: dict[str, Alert] = {}

    @property
    def firing(self) -> list[Alert]:
        return [i.alert for i in self._instances.values() if i.alert is not None] + list(
            self._restored.values()
        )

    def reconfigure(self, config: AlertsConfig, zone: tzinfo, site_names: dict[str, str]) -> None:
        """A reloaded config (SIGHUP): the alerts and their state are kept."""
        self._config, self._zone, self._names = config, zone, site_names

    def active_ids(self) -> frozenset[str]:
        return frozenset(self._instances) | frozenset(self._restored)

    def restore(self, alert: Alert) -> None:
        """An alert this engine published before a restart, still firing on MQTT."""
        if alert.state == "firing" and alert.id not in self._instances:
            self._restored[alert.id] = alert

    def step(self, conditions: Iterable[Condition], now: datetime, *, settled: bool = True) -> Step:
        """Advance to ``now``. Until ``settled`` (the rules' own grace after a restart, while
        silences cannot be judged yet), alerts restored from MQTT are kept, not resolved."""
        fired: list[Alert] = []
        resolved: list[Alert] = []
        seen: set[str] = set()
        for cond in conditions:
            seen.add(cond.id)
            inst = self._instances.get(cond.id)
            if inst is None:
                restored = self._restored.pop(cond.id, None)
                inst = _Instance(cond, restored.starts_at if restored else now, now, restored)
                self._instances[cond.id] = inst
            inst.condition, inst.last_true = cond, now
            rule = self._config.rules.rule(cond.rule)
            if inst.alert is None and now - inst.since >= rule.for_:
                inst.alert = self._alert(cond, inst.since)
                fired.append(inst.alert)
            elif inst.alert is not None and inst.alert.value != cond.value:
                # The value moves (minutes open, volts): kept current, not a state change.
                inst.alert = inst.alert.model_copy(
                    update={"value": cond.value, "summary_zh": cond.summary_zh,
                            "summary_en": cond.summary_en}
                )  # fmt: skip
        for alert_id, inst in list(self._instances.items()):
            if alert_id in seen:
                continue
            rule = self._config.rules.rule(inst.condition.rule)
            if inst.alert is None:
                del self._instances[alert_id]
            elif now - inst.last_true >= rule.keep_firing_for:
                del self._instances[alert_id]
                resolved.append(inst.alert.model_copy(update={"state": "resolved", "ends_at": now}))
        # Restored alerts whose condition no longer holds, once the rules had their grace.
        for alert_id, alert in list(self._restored.items()):
            if settled and alert_id not in seen:
                del self._restored[alert_id]
                resolved.append(alert.model_copy(update={"state": "resolved", "ends_at": now}))
        changed = self._mark(now)
        return Step(tuple(fired), tuple(resolved), tuple(a for a in changed if a not in fired))

    def notified(self, alerts: Sequence[Alert], at: datetime) -> list[Alert]:
        """Record that ``alerts`` were handed to the routes; return their new form."""
        out = []
        for alert in alerts:
            inst = self._instances.get(alert.id)
            if inst is not None and inst.alert is not None:
                inst.alert = inst.alert.model_copy(update={"notified_at": at})
                out.append(inst.alert)
            elif alert.id in self._restored:
                self._restored[alert.id] = alert.model_copy(update={"notified_at": at})
                out.append(self._restored[alert.id])
        return out

    def _alert(self, cond: Condition, since: datetime) -> Alert:
        # Every field of the condition (its id included) is a field of the alert.
        return Alert(
            **asdict(cond),
            state="firing",
            site_name=self._names.get(cond.site, cond.site),
            starts_at=since,
        )

    def _mark(self, now: datetime) -> list[Alert]:
        """Set ``silenced`` and ``inhibited_by`` on every firing alert; return those changed."""
        firing = [i for i in self._instances.values() if i.alert is not None]
        changed = []
        for inst in firing:
            alert = inst.alert
            assert alert is not None
            silenced = any(_silences(s, alert, now, self._zone) for s in self._config.silences)
            acknowledged = alert.acknowledged
            if self._decisions is not None:
                silenced = silenced or self._decisions.silenced(alert, now)
                acknowledged = self._decisions.acknowledged(alert)
            # A pending inhibitor counts too: a gateway going down must not let the alerts
            # behind it out during its own ``for``.
            inhibited_by = next(
                (
                    other.condition.id
                    for other in self._instances.values()
                    if other is not inst
                    for rule, keys in _INHIBITIONS
                    if other.condition.rule == rule
                    and alert.rule != rule
                    and all(alert.labels.get(k) == other.condition.labels.get(k) for k in keys)
                ),
                None,
            )
            marks = (silenced, inhibited_by, acknowledged)
            if (alert.silenced, alert.inhibited_by, alert.acknowledged) != marks:
                inst.alert = alert.model_copy(
                    update={
                        "silenced": silenced,
                        "inhibited_by": inhibited_by,
                        "acknowledged": acknowledged,
                    }
                )
                changed.append(inst.alert)
        return changed


def _silences(silence: Silence, alert: Alert, now: datetime, zone: tzinfo) -> bool:
    if silence.site is not None and silence.site != alert.site:
        return False
    if silence.gateway is not None and silence.gateway != alert.gateway:
        return False
    if silence.rules and alert.rule not in silence.rules:
        return False
    if silence.starts_at is not None and silence.ends_at is not None:
        return silence.starts_at <= now < silence.ends_at
    return silence.weekly is not None and silence.weekly.covers(now.astimezone(zone))


@dataclass(slots=True)
class _Group:
    last_sent: datetime | None = None
    #: When something to tell first appeared since the last message.
    waiting_since: datetime | None = None
    resolved: list[Alert] = field(default_factory=list)


class Dispatcher:
    """When to tell people what, per site (Alertmanager's group_wait / group_interval /
    repeat_interval), given the book's firing alerts and the resolved ones."""

    def __init__(self, config: AlertsConfig) -> None:
        self._config = config
        self._groups: dict[str, _Group] = {}

    def reconfigure(self, config: AlertsConfig) -> None:
        self._config = config

    def resolved(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            # Only what people were told about gets a resolved notice.
            if alert.notified_at is not None and not alert.silenced and not alert.inhibited_by:
                self._groups.setdefault(alert.site, _Group()).resolved.append(alert)

    def due(self, firing: Iterable[Alert], now: datetime) -> list[Notification]:
        """The notifications to send now, one per site that has something to tell."""
        by_site: dict[str, list[Alert]] = {}
        for alert in firing:
            if not alert.silenced and alert.inhibited_by is None:
                by_site.setdefault(alert.site, []).append(alert)
        out = []
        cfg = self._config
        for site in sorted(set(by_site) | {s for s, g in self._groups.items() if g.resolved}):
            group = self._groups.setdefault(site, _Group())
            alerts = by_site.get(site, [])
            # An acknowledged alert is known to someone already: neither sent nor repeated.
            news = [
                a
                for a in alerts
                if a.acknowledged is None
                and (a.notified_at is None or now - a.notified_at >= cfg.repeat_interval)
            ]
            if not news and not group.resolved:
                group.waiting_since = None
                continue
            if group.waiting_since is None:
                group.waiting_since = now
            ready = now - group.waiting_since >= cfg.group_wait
            if group.last_sent is not None:
                ready = ready and now - group.last_sent >= cfg.group_interval
            if not ready:
                continue
            sample = (alerts or group.resolved)[0]
            out.append(
                Notification(
                    site=site,
                    site_name=sample.site_name,
                    status="firing" if alerts else "resolved",
                    firing=tuple(sorted(alerts, key=lambda a: a.starts_at)),
                    resolved=tuple(group.resolved),
                    created_at=now,
                )
            )
            group.last_sent, group.waiting_since, group.resolved = now, None, []
        return out
