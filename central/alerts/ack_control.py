"""Operators' decisions taken at runtime: acknowledgements and silences over MQTT.

The engine listens on ``{prefix}/v1/_alerts_ctl/+`` (only the operator role may write it;
``docs/mqtt.md``, "Alert control"). A message is queued as it arrives and applied at the
start of the next evaluation, on the engine's own task, so it never races the rules. What
it decides is kept in the state folder (:mod:`central.alerts.ack_state`) and shows on MQTT:
the alert republished with ``acknowledged``, the site's silences retained on
``{prefix}/v1/_silences/{site}``.

A message that cannot be taken (not the contract, another site than its topic, an alert
that is not firing, a rule the engine does not know, a silence already over, a retained
message) is logged — a flood as a few lines — and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from pathlib import Path

from central.alerts.ack_state import DecisionsFile, StateFileError, StoredDecisions
from central.alerts.acks import AckBook, StoredAck
from central.alerts.model import Alert
from central.alerts.silences import SilenceBook
from central.refusal_log import RefusalLog
from qihe.clock import Clock
from qihe.contract import (
    Acknowledgement,
    AlertAck,
    AlertSilence,
    AlertUnsilence,
    PayloadError,
    TopicError,
    TopicTree,
    parse_alert_control,
)

__all__ = ["AlertControls"]

log = logging.getLogger("central.alerts")

#: Control messages held between two evaluations; more are refused (counted, logged).
INBOX_SIZE = 1000


class _Refused(ValueError):
    def __init__(self, reason: str, key: str) -> None:
        super().__init__(reason)
        self.key = key


class AlertControls:
    """Acknowledgements and silences: the :class:`~central.alerts.lifecycle.Decisions` the
    alert book asks, fed by control messages, kept in ``state_dir`` (memory only without)."""

    def __init__(
        self, tree: TopicTree, rules: Collection[str], state_dir: Path | None, *, clock: Clock
    ) -> None:
        self.acks = AckBook()
        self.silences = SilenceBook()
        self.applied = 0
        self.refused = 0
        self._tree = tree
        self._rules = frozenset(rules)
        self._file = DecisionsFile(state_dir) if state_dir is not None else None
        self._inbox: deque[tuple[str, bytes]] = deque()
        self._refusals = RefusalLog(log, "alerts control", clock=clock)
        self._dirty = False
        #: Sites whose retained silences must be published (all of them after a connection).
        self.sites_to_publish: set[str] = set()

    # Start, persistence ---------------------------------------------------------------

    async def load(self) -> None:
        if self._file is None:
            log.warning(
                "alerts: 未设置 state_dir，确认和静默在重启后丢失 no state_dir: acknowledgements "
                "and silences are kept in memory only and lost at a restart"
            )
            return
        stored = await asyncio.to_thread(self._file.load)
        for ack in stored.acks:
            self.acks.adopt(ack, from_file=True)
        self.silences.load(stored.silences)
        if stored.acks or stored.silences:
            log.info(
                "alerts: 从 %s 恢复 %d 条确认、%d 条静默 restored %d acknowledgements and %d "
                "silences",
                self._file.path,
                len(stored.acks),
                len(stored.silences),
                len(stored.acks),
                len(stored.silences),
            )

    async def save_if_changed(self) -> None:
        if not self._dirty or self._file is None:
            self._dirty = False
            return
        self._dirty = False
        decisions = StoredDecisions(tuple(self.acks.all()), tuple(self.silences.all()))
        try:
            await asyncio.to_thread(self._file.save, decisions)
        except StateFileError as exc:
            self._dirty = True  # tried again at the next evaluation
            log.error("alerts: 状态文件写入失败 %s", exc)

    def reconfigure(self, rules: Collection[str]) -> None:
        self._rules = frozenset(rules)

    # Decisions (what the alert book asks) ---------------------------------------------

    def silenced(self, alert: Alert, now: datetime) -> bool:
        return self.silences.covers(alert, now)

    def acknowledged(self, alert: Alert) -> Acknowledgement | None:
        return self.acks.get(alert)

    # Messages -------------------------------------------------------------------------

    def take(self, topic: str, body: bytes, retained: bool) -> None:
        """A message on a control topic, as it arrives (never blocks)."""
        if retained:
            # A retained order would be obeyed again at every reconnection.
            self._refuse(topic, "retained control messages are not taken", "retained")
        elif len(self._inbox) >= INBOX_SIZE:
            self._refuse(topic, f"more than {INBOX_SIZE} control messages waiting", "inbox full")
        else:
            self._inbox.append((topic, body))

    def apply_pending(self, firing: Mapping[str, Alert], now: datetime) -> None:
        """Apply the queued messages, given the alerts firing now."""
        while self._inbox:
            topic, body = self._inbox.popleft()
            try:
                self._apply(topic, body, firing, now)
            except _Refused as exc:
                self._refuse(topic, str(exc), exc.key)
            else:
                self.applied += 1

    def _apply(self, topic: str, body: bytes, firing: Mapping[str, Alert], now: datetime) -> None:
        try:
            site = self._tree.parse_site_level(topic, "_alerts_ctl")
            order = parse_alert_control(body)
        except TopicError as exc:
            raise _Refused(str(exc), "topic") from None
        except PayloadError as exc:
            raise _Refused(str(exc), exc.key) from None
        if order.site != site:
            raise _Refused(f"site {order.site!r} is not the topic's {site!r}", "site")
        if isinstance(order, AlertAck):
            self._acknowledge(order, firing)
        elif isinstance(order, AlertSilence):
            self._silence(order, now)
        else:
            self._unsilence(order)

    def _acknowledge(self, order: AlertAck, firing: Mapping[str, Alert]) -> None:
        alert = firing.get(order.alert)
        if alert is None or alert.site != order.site:
            raise _Refused(
                f"告警 {order.alert} 未在触发 no alert {order.alert} is firing at {order.site}",
                "ack: not firing",
            )
        self.acks.acknowledge(alert, order.acknowledgement())
        self._dirty = True
        log.info(
            "alerts: 告警已确认 alert acknowledged: %s · %s by %s: %s [%s]",
            alert.site_name, alert.summary_zh, order.by, order.note or "-", alert.id,
        )  # fmt: skip

    def _silence(self, order: AlertSilence, now: datetime) -> None:
        if order.rule not in self._rules:
            raise _Refused(f"unknown rule {order.rule!r}", "silence: rule")
        if order.until <= now:
            raise _Refused(f"静默已过期 silence already over at {order.until:%Y-%m-%dT%H:%M:%SZ}",
                           "silence: over")  # fmt: skip
        if self.silences.add(order):
            self._dirty = True
            self.sites_to_publish.add(order.site)
            log.info(
                "alerts: 已静默 silenced %s at %s until %s by %s: %s [%s]",
                order.rule, order.site, f"{order.until:%Y-%m-%dT%H:%M:%SZ}", order.by,
                order.note or "-", order.id,
            )  # fmt: skip

    def _unsilence(self, order: AlertUnsilence) -> None:
        removed = self.silences.remove(order.site, order.id)
        if removed is None:
            raise _Refused(f"no silence {order.id} at {order.site}", "unsilence: unknown")
        self._dirty = True
        self.sites_to_publish.add(order.site)
        log.info(
            "alerts: 静默已解除 silence ended: %s at %s by %s [%s]",
            removed.rule, order.site, order.by, order.id,
        )  # fmt: skip

    # Time and the alerts' own changes ------------------------------------------------

    def expire(self, now: datetime) -> None:
        for silence in self.silences.expire(now):
            self._dirty = True
            self.sites_to_publish.add(silence.site)
            log.info(
                "alerts: 静默到期 silence over: %s at %s [%s]",
                silence.rule, silence.site, silence.id,
            )  # fmt: skip

    def adopt(self, alert: Alert) -> None:
        """An alert restored from MQTT: its acknowledgement, if the state file lacks it."""
        if alert.acknowledged is not None:
            self.acks.adopt(
                StoredAck(
                    alert=alert.id, site=alert.site, starts_at=alert.starts_at,
                    ack=alert.acknowledged,
                )
            )  # fmt: skip

    def resolved(self, alerts: Iterable[Alert]) -> None:
        if self.acks.forget(alerts):
            self._dirty = True

    def settled(self, firing: Mapping[str, Alert]) -> None:
        """After the restart grace: acknowledgements of firings that are gone are dropped."""
        if self.acks.prune(firing):
            self._dirty = True

    def tick(self) -> None:
        self._refusals.tick()

    def _refuse(self, topic: str, reason: str, key: str) -> None:
        self.refused += 1
        self._refusals.refused(topic, reason, key)
