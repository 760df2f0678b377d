"""The gateway: sources → outbox → MQTT publisher, each task owned and supervised."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.clock import AlwaysTrusted, ClockGuard, ClockTrust, KernelClockSync
from edge.commands import CommandHandler
from edge.config import GatewayConfig
from edge.errors import EdgeError
from edge.normalise import LinkCounters
from edge.outbox import Outbox
from edge.publisher import MqttPublisher, PublisherStats
from edge.refusals import STATE_FILE as REFUSALS_FILE
from edge.refusals import RefusalSnapshot, write_refusals
from edge.remote_config import SOFTWARE_VERSION
from edge.sdnotify import Notifier, Watchdog
from edge.sources.base import Source
from edge.sources.gpio import GpioSource
from edge.sources.modbus import ModbusSource
from edge.sources.serial import SerialSource
from edge.sources.zigbee import ZigbeeSource
from edge.stamp_journal import StampJournal
from edge.system import HostProbe, SystemProbe, SystemProbeError
from qihe.clock import Clock, utc_now
from qihe.contract import (
    PERIODIC_KINDS,
    ConfigReport,
    OutboxReading,
    PublishRefusal,
    Reading,
    SystemReading,
    TopicTree,
)

__all__ = ["Gateway"]

log = logging.getLogger(__name__)

_RESTART_DELAY = 5.0


@dataclass(frozen=True, slots=True)
class GatewayStats:
    readings: int
    queued: int
    dropped: dict[str, int]
    links: dict[str, LinkCounters]
    publisher: PublisherStats
    #: ``readings`` by kind (seat, door, link...), for the metrics endpoint.
    readings_by_kind: dict[str, int] = field(default_factory=dict)


class Gateway:
    """Construct with a validated config; ``await run()`` until cancelled."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        pin_factory: Any = None,
        clock: Clock = utc_now,
        clock_trust: ClockTrust | None = None,
        system_probe: SystemProbe | None = None,
        notifier: Notifier | None = None,
        config_report: Callable[[], ConfigReport | None] | None = None,
    ) -> None:
        self.config = config
        outbox = config.outbox
        self.outbox = Outbox(
            config.outbox_path,
            max_readings=outbox.max_readings,
            max_pending=outbox.max_pending,
            commit_interval=outbox.commit_interval.total_seconds(),
            commit_max=outbox.commit_max,
            busy_timeout=outbox.busy_timeout.total_seconds(),
        )
        self.publisher = MqttPublisher(
            config,
            self.outbox,
            clock=clock,
            version=SOFTWARE_VERSION,
            config_report=config_report,  # the supervisor's (edge/supervisor.py)
        )
        self.clock_guard = ClockGuard(
            clock_trust or (KernelClockSync() if config.clock.require_sync else AlwaysTrusted()),
            poll=config.clock.poll.total_seconds(),
            # Held readings get their true time from the same clock that stamps the others.
            wall=lambda: clock().timestamp(),
        )
        self.serial_sources = [
            SerialSource(
                port,
                site=config.site,
                gateway=config.gateway,
                emit=self._emit,
                store=self.outbox,
                clock=clock,
                journal=StampJournal(
                    config.state_dir / f"stamps-{port.device}",
                    trusted=lambda: self.clock_guard.trusted,
                ),
            )
            for port in config.serial
        ]
        self.sources: list[Source] = list(self.serial_sources)
        # Commands to the boards come on the publisher's connection (docs/mqtt.md, Commands).
        self.commands = CommandHandler(
            self.publisher,
            {source.port.device: source for source in self.serial_sources},
            site=config.site,
            gateway=config.gateway,
            topics=TopicTree(config.broker.topic_prefix),
            state_dir=config.state_dir,
            clock=clock,
        )
        if config.gpio:
            self.sources.append(
                GpioSource(
                    config.gpio,
                    site=config.site,
                    gateway=config.gateway,
                    emit=self._emit,
                    pin_factory=pin_factory,
                    clock=clock,
                )
            )
        self.zigbee_source = (
            None
            if config.zigbee is None
            else ZigbeeSource(
                config.zigbee,
                site=config.site,
                gateway=config.gateway,
                emit=self._emit,
                clock=clock,
            )
        )
        if self.zigbee_source is not None:
            self.sources.append(self.zigbee_source)
        self.modbus_sources: list[ModbusSource] = []
        if (modbus := config.modbus) is not None:
            self.modbus_sources = [
                ModbusSource(
                    port,
                    modbus,
                    site=config.site,
                    gateway=config.gateway,
                    emit=self._emit,
                    state_dir=config.state_dir,
                    clock=clock,
                )
                for port in modbus.ports
            ]
        self.sources += self.modbus_sources
        self.system_probe = HostProbe(config.state_dir) if system_probe is None else system_probe
        self._system_failing = False
        self._refusals_written: RefusalSnapshot | None = None
        self._readings: Counter[str] = Counter()  # by kind
        #: ``/metrics`` when the config asks for it (docs/metrics.md).
        self.metrics = None
        if config.metrics is not None:  # prometheus_client only for a gateway that asks
            from edge.metrics import gateway_metrics

            self.metrics = gateway_metrics(config.metrics, self)
        self._clock = clock
        self.notifier = Notifier.from_environ() if notifier is None else notifier
        # The outbox's group commit is the gateway's heartbeat: it runs every
        # commit_interval whether or not readings arrive. Its listener fires on the loop
        # after every attempt that came back, stored or failed: a card that refuses writes
        # (full, locked) keeps the gateway running, readings bounded in memory and retried,
        # since a restart would only lose what memory holds. A commit that never comes
        # back (a hung card) stops the pings, and systemd restarts the gateway.
        self.watchdog = Watchdog(
            self.notifier,
            required=("outbox",),
            stale_after=5 * outbox.commit_interval.total_seconds(),
            status=self._status_line,
        )
        self.outbox.on_attempt(lambda: self.watchdog.alive("outbox"))

    def _emit(self, reading: Reading) -> None:
        self._readings[reading.kind] += 1
        self.outbox.put(reading, untrusted_at=self.clock_guard.untrusted_stamp())

    def stats(self) -> GatewayStats:
        return GatewayStats(
            readings=self._readings.total(),
            queued=len(self.outbox),
            dropped=dict(self.outbox.dropped),
            links={s.port.device: s.counters for s in self.serial_sources}
            | {s.port.name: s.counters for s in self.modbus_sources},
            publisher=self.publisher.stats(),
            readings_by_kind=dict(self._readings),
        )

    async def run(self) -> None:
        log.info(
            "gateway %s/%s starting: %d serial port(s), %d gpio input(s)",
            self.config.site,
            self.config.gateway,
            len(self.config.serial),
            len(self.config.gpio),
        )
        self.notifier.status("正在打开发件箱 opening the outbox")
        await self.outbox.open()
        try:
            if self.metrics is not None:
                await self.metrics.astart()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.outbox.run(), name="outbox-commit")
                tg.create_task(self.clock_guard.run(self.outbox.restamp), name="clock-watch")
                tg.create_task(self.publisher.run(), name="publisher")
                for source in self.sources:
                    tg.create_task(self._supervise(source), name=source.name)
                tg.create_task(self._supervise(self.commands), name="commands")
                tg.create_task(self._report_health(), name="health-report")
                tg.create_task(self.watchdog.run(), name="systemd-watchdog")
                # Ready here: the store is open and every task is started, so each reading
                # from now on is kept. Not later: a broker that is down or a board that is
                # unplugged is normal operation (buffer, retry), not a failed start.
                self.notifier.ready(self._status_line())
        finally:
            self.notifier.stopping("正在停止 stopping: flushing the outbox")
            self.notifier.close()
            if self.metrics is not None:
                await asyncio.shield(self.metrics.astop())
            await asyncio.shield(self.outbox.close())
            for source in self.serial_sources:
                source.close_journal()

    def _status_line(self) -> str:
        """One line for ``systemctl status``: Chinese first, then English."""
        broker = "已连接 connected" if self.publisher.connected.is_set() else "未连接 not connected"
        readings = self._readings.total()
        line = f"代理 broker {broker}; 待发 queued {len(self.outbox)}; 读数 readings {readings}"
        failing = self.outbox.failing_commits
        if failing:  # the card refuses writes: readings wait in memory, bounded
            line += f"; 存储写入失败 store failing ({failing} commits)"
        held = self.publisher.stats().held
        if held:  # the broker refuses some publishes: say so where an operator looks first
            line += f"; 被代理拒绝待重试 refused, held {held}"
        return line

    async def _supervise(self, source: Source) -> None:
        """Keep a source running: an unexpected crash is logged with its traceback and restarted."""
        while True:
            try:
                await source.run()
                return
            except asyncio.CancelledError:
                raise
            except EdgeError as exc:
                # Expected hardware trouble (a pin that cannot be claimed): one line, retry.
                log.error("source %s: %s; retrying in %.0fs", source.name, exc, _RESTART_DELAY)
                await asyncio.sleep(_RESTART_DELAY)
            except Exception:
                log.exception("source %s crashed; restarting in %.0fs", source.name, _RESTART_DELAY)
                await asyncio.sleep(_RESTART_DELAY)

    async def _report_health(self) -> None:
        """Every ``link_report_interval``: each serial link's counters, the outbox's, the host's."""
        interval = self.config.link_report_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            for source in self.serial_sources:
                self._emit(source.link_reading())
            if self.zigbee_source is not None:
                self._emit(self.zigbee_source.link_reading())
            for bus in self.modbus_sources:
                self._emit(bus.link_reading())
            self._emit(self._outbox_reading())
            await self.save_refusals()
            system = await self._system_reading()
            if system is not None:
                self._emit(system)

    def _outbox_reading(self) -> OutboxReading:
        dropped = self.outbox.dropped
        periodic = sum(dropped[kind] for kind in PERIODIC_KINDS)
        clock = dropped["untrusted_clock"]
        return OutboxReading(
            **self._own_reading(),
            queued=len(self.outbox),
            dropped_periodic=periodic,
            dropped_state=sum(dropped.values()) - periodic - clock,
            dropped_clock=clock,
            **self._refusal_fields(),
        )

    async def save_refusals(self) -> None:
        """Leave the refusal counters for ``qihe gateway doctor`` (only when they moved)."""
        snapshot = self.publisher.refusal_snapshot()
        if snapshot == self._refusals_written:
            return
        path = self.config.state_dir / REFUSALS_FILE
        try:
            await asyncio.to_thread(write_refusals, path, snapshot, self._clock())
        except OSError as exc:
            log.warning("无法写入拒绝计数 cannot write the refusal counters to %s: %s", path, exc)
            return
        self._refusals_written = snapshot

    def _refusal_fields(self) -> dict[str, Any]:
        """The outbox reading's refusal counters (issue 13)."""
        snapshot = self.publisher.refusal_snapshot()
        return {
            "refused": snapshot.total,
            "refused_held": snapshot.held,
            "refusals": tuple(
                PublishRefusal(kind=kind, reason=code, count=count)  # type: ignore[arg-type]
                for (kind, code), count in sorted(snapshot.by_kind.items())
            ),
        }

    async def _system_reading(self) -> SystemReading | None:
        """The host's health, or None (logged once per failing stretch) if it cannot be read."""
        try:
            snapshot = await asyncio.to_thread(self.system_probe.read)
        except SystemProbeError as exc:
            if not self._system_failing:
                log.warning("system health not reported: %s", exc)
                self._system_failing = True
            return None
        if self._system_failing:
            log.info("system health readable again")
            self._system_failing = False
        # The snapshot's fields are the reading's, name for name.
        return SystemReading(**self._own_reading(), **asdict(snapshot))

    def _own_reading(self) -> dict[str, Any]:
        """The identity of a reading about the gateway itself, stamped now."""
        return {
            "site": self.config.site,
            "gateway": self.config.gateway,
            "device": "gateway",
            "sensor": self.config.gateway,
            "ts": self._clock(),
        }
