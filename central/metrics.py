"""Prometheus metrics of the central services (consumer, live, alerts), from their own stats.

Each service already counts what it does (:class:`~central.consumer.stats.ConsumerStats`, the
live hub and state, the alert book and route workers); the collectors here read those at scrape
time and count nothing themselves. The one measurement added is how long each InfluxDB write
takes (:class:`TimedWriter`, a :class:`~central.influx.PointWriter` around the real one).
Names, units and the sample rules: ``docs/metrics.md``.

A service builds its endpoint in its constructor (no I/O) and starts it with itself::

    self._metrics = live_metrics(config.metrics, self) if config.metrics else None
    ...
    await self._metrics.astart()   # MetricsError (an OSError) when it cannot listen
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import Histogram
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from qihe.metrics import MetricsConfig, MetricsServer

if TYPE_CHECKING:  # the services import this module: only their types here
    from central.alerts.engine import AlertEngine
    from central.consumer.stats import ConsumerStats
    from central.influx import PointWriter
    from central.live.service import LiveService

__all__ = ["ConsumerMetrics", "alerts_metrics", "live_metrics"]

#: Upper bounds (seconds) of the write-time histogram: a local InfluxDB answers in a few
#: milliseconds, a loaded one in a second, a failing one at its timeout (10 s by default).
WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


# Consumer ---------------------------------------------------------------------------------


class TimedWriter:
    """A :class:`~central.influx.PointWriter` that observes how long every write takes
    (answered or failed) in a histogram; everything else goes straight to ``writer``."""

    def __init__(self, writer: PointWriter, seconds: Histogram) -> None:
        self._writer = writer
        self._seconds = seconds

    @property
    def target(self) -> str:
        return self._writer.target

    def prepare(self) -> None:
        self._writer.prepare()

    def write(self, lines: Sequence[str]) -> None:
        start = time.perf_counter()
        try:
            self._writer.write(lines)
        finally:
            self._seconds.observe(time.perf_counter() - start)

    def close(self) -> None:
        self._writer.close()


class _ConsumerCollector:
    def __init__(self, stats: Callable[[], ConsumerStats]) -> None:
        self._stats = stats  # a locked snapshot: safe from the HTTP thread

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        yield _counter(
            "qihe_consumer_messages_received_total",
            "MQTT messages handed to the consumer (redeliveries included).",
            s.received,
        )
        yield _counter(
            "qihe_consumer_messages_acked_total",
            "MQTT messages acknowledged after InfluxDB took them (or their dead letter).",
            s.acked,
        )
        refused = CounterMetricFamily(
            "qihe_consumer_messages_refused_total",
            "Messages refused: invalid (bad JSON, schema, topic) or by InfluxDB itself.",
            labels=["reason"],
        )
        refused.add_metric(["invalid"], s.invalid)
        refused.add_metric(["influxdb"], s.rejected_points)
        yield refused
        yield _gauge(
            "qihe_consumer_messages_pending",
            "Messages received and not acknowledged yet (queued or being written).",
            s.pending,
        )
        yield _counter(
            "qihe_consumer_points_written_total", "Points InfluxDB accepted.", s.written_points
        )
        yield _counter(
            "qihe_consumer_batches_total", "Batches written and acknowledged.", s.batches
        )
        yield _counter(
            "qihe_consumer_write_errors_total",
            "Failed InfluxDB writes (each retried or split; nothing is acked meanwhile).",
            s.write_errors,
        )
        yield _counter(
            "qihe_consumer_retries_total",
            "Retries of a failed write or dead-letter publish, after a backoff.",
            s.retries,
        )
        yield _counter(
            "qihe_consumer_dead_letters_total",
            "Refused messages republished on the dead-letter topic and confirmed.",
            s.dead_lettered,
        )
        yield _counter(
            "qihe_consumer_dead_letter_refusals_total",
            "Dead-letter publishes the broker refused (published again; check its ACL).",
            s.dead_letters_refused,
        )


class ConsumerMetrics:
    """The consumer's ``/metrics``: its counters, and the write-time histogram its writer fills.

    The consumer counts under a lock in its own threads, so its collector reads from the HTTP
    thread directly (:meth:`start`, not ``astart``)."""

    def __init__(self, config: MetricsConfig, stats: Callable[[], ConsumerStats]) -> None:
        self.write_seconds = Histogram(
            "qihe_consumer_write_seconds",
            "Time of one InfluxDB write request, answered or failed.",
            buckets=WRITE_BUCKETS,
            registry=None,
        )
        self.server = MetricsServer(
            config, [_ConsumerCollector(stats), self.write_seconds], service="consumer"
        )

    def timed(self, writer: PointWriter) -> TimedWriter:
        return TimedWriter(writer, self.write_seconds)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()


# Live -------------------------------------------------------------------------------------


class _LiveCollector:
    def __init__(self, service: LiveService) -> None:
        self._service = service  # read on its event loop (MetricsServer.astart)

    def collect(self) -> Iterator[Metric]:
        service = self._service
        yield _gauge(
            "qihe_live_sse_clients", "Live event streams open now.", service.hub.subscribers
        )
        yield _counter(
            "qihe_live_events_total",
            "Live events made (seat, door, site... changes), each sent to every stream "
            "that wants it.",
            service.state.version,
        )
        yield _counter(
            "qihe_live_messages_received_total",
            "MQTT messages taken from the broker, refused ones included.",
            service.received,
        )
        yield _counter(
            "qihe_live_messages_refused_total",
            "MQTT messages that could not be taken (bad topic or payload).",
            service.refused,
        )
        yield _gauge(
            "qihe_live_broker_connected",
            "1 while the live service is connected to the MQTT broker.",
            int(service.broker_connected.is_set()),
        )


def live_metrics(config: MetricsConfig, service: LiveService) -> MetricsServer:
    """The live service's ``/metrics`` (start with ``astart`` on its loop)."""
    return MetricsServer(config, [_LiveCollector(service)], service="live")


# Alerts -----------------------------------------------------------------------------------


class _AlertsCollector:
    def __init__(self, engine: AlertEngine) -> None:
        self._engine = engine  # read on its event loop (MetricsServer.astart)

    def collect(self) -> Iterator[Metric]:
        engine = self._engine
        active = GaugeMetricFamily(
            "qihe_alerts_active",
            "Alerts firing now, by rule (silenced and acknowledged ones included).",
            labels=["rule"],
        )
        by_rule = Counter(alert.rule for alert in engine.book.firing)
        for rule in sorted(set(engine.config.rules.enabled()) | set(by_rule)):
            active.add_metric([rule], by_rule[rule])
        yield active
        notifications = CounterMetricFamily(
            "qihe_alerts_notifications_total",
            "Notifications by route and outcome: delivered, failed (given up) or dropped "
            "(queue full).",
            labels=["route", "outcome"],
        )
        attempts = CounterMetricFamily(
            "qihe_alerts_route_attempts_total",
            "Messages a route tried to send (retries and digests included).",
            labels=["route"],
        )
        queued = GaugeMetricFamily(
            "qihe_alerts_route_queue", "Notifications waiting in a route's queue.", labels=["route"]
        )
        for worker in engine.workers:
            stats = worker.stats
            for outcome, count in (
                ("delivered", stats.delivered),
                ("failed", stats.failed),
                ("dropped", stats.dropped),
            ):
                notifications.add_metric([worker.name, outcome], count)
            attempts.add_metric([worker.name], stats.attempts)
            queued.add_metric([worker.name], worker.pending)
        yield notifications
        yield attempts
        yield queued
        yield _counter(
            "qihe_alerts_published_total",
            "Alert states published to MQTT (firing, changed or resolved).",
            engine.published,
        )
        refused = CounterMetricFamily(
            "qihe_alerts_publish_refused_total",
            "Alert publishes the broker refused, by MQTT reason code (retried).",
            labels=["reason"],
        )
        for code, count in sorted(engine.publish_refused.items()):
            refused.add_metric([f"0x{code:02x}"], count)
        yield refused
        yield _gauge(
            "qihe_alerts_broker_connected",
            "1 while the alert engine is connected to the MQTT broker.",
            int(engine.connected.is_set()),
        )


def alerts_metrics(config: MetricsConfig, engine: AlertEngine) -> MetricsServer:
    """The alert engine's ``/metrics`` (start with ``astart`` on its loop)."""
    return MetricsServer(config, [_AlertsCollector(engine)], service="alerts")
