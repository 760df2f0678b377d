"""``AlertEngine``: MQTT in, rules, lifecycle, MQTT and routes out — one asyncio process.

On every (re)connection it first subscribes to its own retained alert topics and waits
``restore_wait`` to collect them, so the alerts it had already sent before a restart are known
and not sent again; then it subscribes to the gateways' status and readings (their retained
state arrives at once). Rules that judge silence give every gateway their full timeout from
that moment, and alerts restored from MQTT are kept until that grace has passed.

Active alerts are published retained to ``{prefix}/v1/_alerts/{site}/{id}``; a resolved alert
is published there once (not retained) and its retained message is then cleared. Notifications
go to each route's own worker (its queue, rate limit and retries), so one slow or failing route
never delays the others or the MQTT side.

Operators' acknowledgements and silences arrive on a second subscription (the control topic,
:mod:`central.alerts.ack_control`), are applied at the start of an evaluation and kept in
``state_dir``. :meth:`AlertEngine.reload` takes a new config (SIGHUP) without losing an alert.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

import aiomqtt

from central.alerts.ack_control import AlertControls
from central.alerts.config import AlertsConfig, Rules
from central.alerts.lifecycle import AlertBook, Dispatcher
from central.alerts.model import Alert
from central.alerts.routes import RouteWorker, build_worker
from central.alerts.rules import Context, evaluate
from central.alerts.sensors import SensorFacts
from central.facts import DEFAULT_REPORT_INTERVAL, FactStore
from central.listen import listen
from central.metrics import alerts_metrics
from central.reload import ReloadRefusedError
from central.site_feed import SiteFeed
from central.sites import SiteDirectory
from qihe.clock import Clock, utc_now
from qihe.contract import GatewayStatus, Reading, SiteSilences, encode_payload
from qihe.mqtt import PublishRefusedError, reason_label
from qihe.once import OncePerInterval

__all__ = ["AlertEngine"]

log = logging.getLogger(__name__)


#: A reason the broker refuses alert publishes with is logged at most this often.
_REFUSAL_LOG_EVERY = timedelta(seconds=60)


class AlertEngine:
    def __init__(
        self,
        config: AlertsConfig,
        directory: SiteDirectory,
        *,
        clock: Clock = utc_now,
        workers: Sequence[RouteWorker] | None = None,
    ) -> None:
        self.config = config
        self.directory = directory
        self._clock = clock
        self._feed = SiteFeed(config.mqtt, name="alerts", logger=log, clock=clock)
        self.facts = FactStore()
        self.sensors = SensorFacts()
        names = {s.id: s.name for s in directory.sites}
        self.controls = AlertControls(
            self._feed.tree, Rules.model_fields, config.state_dir, clock=clock
        )
        self.book = AlertBook(config, directory.zone, names, self.controls)
        self.dispatcher = Dispatcher(config)
        self.workers = (
            list(workers)
            if workers is not None
            else [build_worker(route) for route in config.routes]
        )
        self.connected = asyncio.Event()
        #: Set once the first evaluation after a (re)connection has run.
        self.evaluating = asyncio.Event()
        self.published = 0
        self._client: aiomqtt.Client | None = None
        self._listening_since: datetime | None = None
        self._restoring_until: datetime | None = None
        #: Alert publishes the broker refused (PUBACK 0x80 or above), by reason code.
        self.publish_refused: Counter[int] = Counter()
        self._refusal_logged = OncePerInterval[int](_REFUSAL_LOG_EVERY.total_seconds())
        self._refused_active: dict[str, Alert] = {}
        self._refused_resolved: dict[str, Alert] = {}
        self._settle = _settle_time(config)
        #: ``/metrics`` when the config asks for it (docs/metrics.md; a reload keeps it).
        self.metrics = None if config.metrics is None else alerts_metrics(config.metrics, self)
        self._tg: asyncio.TaskGroup | None = None
        self._worker_tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        """Until cancelled: keep connected, evaluate, publish, notify."""
        await self.controls.load()
        if self.metrics is not None:
            await self.metrics.astart()  # before the tasks: a port in use is one plain error
        async with asyncio.TaskGroup() as tg:
            if self.metrics is not None:
                tg.create_task(self.metrics.serve(), name="alerts-metrics")
            self._tg = tg
            self._start_workers()
            tg.create_task(self._subscribe(), name="alerts-mqtt")
            tg.create_task(self._listen_control(), name="alerts-control")
            tg.create_task(self._evaluate(), name="alerts-evaluate")

    def _start_workers(self) -> None:
        assert self._tg is not None
        self._worker_tasks = [
            self._tg.create_task(worker.run(), name=f"alerts-route-{worker.name}")
            for worker in self.workers
        ]

    def reload(self, config: AlertsConfig, directory: SiteDirectory) -> None:
        """Take a new config and site directory (SIGHUP), keeping every alert, group,
        acknowledgement and silence. The broker connection and the state folder need a
        restart: a config that changes them is refused (:class:`ReloadRefusedError`)."""
        old = self.config
        if config.mqtt != old.mqtt or config.state_dir != old.state_dir:
            raise ReloadRefusedError("mqtt and state_dir take effect only at a restart")
        self.config, self.directory = config, directory
        self.book.reconfigure(config, directory.zone, {s.id: s.name for s in directory.sites})
        self.dispatcher.reconfigure(config)
        self._settle = _settle_time(config)
        if config.routes != old.routes and self._tg is not None:
            # Notifications still queued for the old routes are dropped with them.
            for task in self._worker_tasks:
                task.cancel()
            self.workers = [build_worker(route) for route in config.routes]
            self._start_workers()

    # MQTT ------------------------------------------------------------------------------

    async def _subscribe(self) -> None:
        await self._feed.follow(
            self._take, self._restore, on_connected=self._connected, on_lost=self._lost
        )

    async def _listen_control(self) -> None:
        await listen(
            self.config.mqtt,
            [self._feed.tree.alert_control_filter()],
            self.controls.take,
            name="alerts-control",
        )

    def _connected(self, client: aiomqtt.Client) -> None:
        now = self._clock()
        # Each (re)connection sets every site's retained silences right (some may have
        # ended while the engine was away).
        sites = {s.id for s in self.directory.sites} | self.controls.silences.sites()
        self.controls.sites_to_publish |= sites
        self._restoring_until = now + self.config.restore_wait
        self._listening_since = now
        self._client = client
        self.connected.set()

    def _lost(self) -> None:
        self._client = None
        self.connected.clear()
        self.evaluating.clear()

    def _take(self, message: GatewayStatus | Reading, retained: bool) -> None:
        now = self._clock()
        self.facts.apply(message, now, retained=retained)
        self.sensors.apply(message, now)

    def _restore(self, topic: str, body: bytes, retained: bool) -> None:
        # Only what the broker kept (retained) is restored; the engine's own live publishes
        # and the clearing of a resolved alert come back too, and are not news to it.
        if not (retained and body):
            return
        taken = self._feed.alert(topic, body, "retained alert")
        if taken is not None and taken.alert is not None:
            self.book.restore(taken.alert)
            self.controls.adopt(taken.alert)

    # Evaluation ------------------------------------------------------------------------

    async def _evaluate(self) -> None:
        interval = self.config.evaluation_interval.total_seconds()
        while True:
            await self.connected.wait()
            now = self._clock()
            if self._restoring_until is not None and now < self._restoring_until:
                await asyncio.sleep((self._restoring_until - now).total_seconds())
                continue
            await self.evaluate_once(self._clock())
            self.evaluating.set()
            self._feed.tick()
            self.controls.tick()
            await asyncio.sleep(interval)

    async def evaluate_once(self, now: datetime) -> None:
        """One round: rules → lifecycle → MQTT → routes."""
        listening_since = self._listening_since or now
        self.controls.apply_pending({a.id: a for a in self.book.firing}, now)
        self.controls.expire(now)
        ctx = Context(
            rules=self.config.rules,
            directory=self.directory,
            facts=self.facts,
            now=now,
            listening_since=listening_since,
            active=self.book.active_ids(),
            sensors=self.sensors,
        )
        settled = now - listening_since >= self._settle
        step = self.book.step(evaluate(ctx), now, settled=settled)
        self.controls.resolved(step.resolved)
        if settled:
            self.controls.settled({a.id: a for a in self.book.firing})
        for alert in step.fired:
            log.warning(
                "alert firing: %s · %s / %s", alert.site_name, alert.summary_zh, alert.summary_en
            )
        for alert in step.resolved:
            log.info(
                "alert resolved: %s · %s / %s", alert.site_name, alert.summary_zh, alert.summary_en
            )
        self.dispatcher.resolved(step.resolved)
        notifications = self.dispatcher.due(self.book.firing, now)
        notified: list[Alert] = []
        for notification in notifications:
            for worker in self.workers:
                worker.offer(notification)
            notified.extend(self.book.notified(notification.firing, now))
        latest = {a.id: a for a in (*step.fired, *step.changed, *notified)}
        # Kept on disk before it shows: what an operator saw confirmed survives a restart.
        await self.controls.save_if_changed()
        await self._publish(list(latest.values()), list(step.resolved))
        await self._publish_silences()

    async def _publish_silences(self) -> None:
        """Each site whose silences changed: retained, or cleared when none is left."""
        client = self._client
        pending = self.controls.sites_to_publish
        if client is None or not pending:
            return
        for site in sorted(pending):
            silences = self.controls.silences.of_site(site)
            body = encode_payload(SiteSilences(site=site, silences=silences)) if silences else b""
            try:
                await client.publish(self._feed.tree.silences(site), body, qos=1, retain=True)
            except PublishRefusedError as exc:
                self._publish_refused(exc)
                continue
            except aiomqtt.MqttError as exc:
                log.warning("alerts: could not publish the silences of %s: %s", site, exc)
                return
            pending.discard(site)

    async def _publish(self, active: list[Alert], resolved: list[Alert]) -> None:
        client = self._client
        if client is None:
            return
        # What the broker refused last time goes again, unless a newer state replaced it.
        to_set = {**self._refused_active, **{a.id: a for a in active}}
        to_clear = {**self._refused_resolved, **{a.id: a for a in resolved}}
        for alert_id in to_clear:
            to_set.pop(alert_id, None)
        self._refused_active, self._refused_resolved = {}, {}
        try:
            for alert in to_set.values():
                try:
                    await client.publish(
                        self._feed.tree.alert(alert.site, alert.id),
                        alert.model_dump_json(by_alias=True),
                        qos=1,
                        retain=True,
                    )
                except PublishRefusedError as exc:
                    self._publish_refused(exc)
                    self._refused_active[alert.id] = alert
                    continue
                self.published += 1
            for alert in to_clear.values():
                topic = self._feed.tree.alert(alert.site, alert.id)
                try:
                    await client.publish(topic, alert.model_dump_json(by_alias=True), qos=1)
                    await client.publish(topic, b"", qos=1, retain=True)  # clears the retained one
                except PublishRefusedError as exc:
                    self._publish_refused(exc)
                    self._refused_resolved[alert.id] = alert
                    continue
                self.published += 1
        except aiomqtt.MqttError as exc:
            # The next connection restores from what did reach the broker.
            log.warning("alerts: could not publish alerts: %s", exc)

    def _publish_refused(self, refused: PublishRefusedError) -> None:
        """Count a refused alert publish; log each reason once per ``_REFUSAL_LOG_EVERY``."""
        code = refused.reason_code
        self.publish_refused[code] += 1
        if not self._refusal_logged.due(code, self._clock().timestamp()):
            return
        log.error(
            "alerts: 代理拒绝发布告警,下次评估时重试 the broker refused an alert on %s: %s; "
            "retried at the next evaluation (%d refused so far; check the broker's ACL)",
            refused.topic,
            reason_label(code, refused.reason_name),
            sum(self.publish_refused.values()),
        )


def _settle_time(config: AlertsConfig) -> timedelta:
    """Until then a restored alert cannot be judged: silence needs its full timeout."""
    rules = config.rules
    return (
        max(
            rules.gateway_offline.silent_after,
            DEFAULT_REPORT_INTERVAL * rules.device_silent.missed_reports,
        )
        + rules.gateway_offline.for_
        + config.evaluation_interval
    )
