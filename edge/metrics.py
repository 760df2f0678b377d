"""Prometheus metrics of the gateway (opt-in): what :meth:`Gateway.stats` already counts.

Off unless the gateway's config has a ``metrics`` block; then served on loopback unless an
address is given (``metrics: {listen: 9467}`` → ``127.0.0.1:9467``). A Prometheus at the
centre reaches a gateway through the site's VPN address, or a local agent scrapes it and
forwards (``docs/metrics.md``). Every value is read at scrape time on the gateway's event
loop, which owns them; nothing here counts. Labels stay few: reading kinds, drop kinds, MQTT
reason codes and the gateway's own links (its serial boards and Modbus buses), never sensors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from qihe.metrics import MetricsConfig, MetricsServer

if TYPE_CHECKING:  # the gateway imports this module
    from edge.gateway import Gateway, GatewayStats

__all__ = ["gateway_metrics"]

#: The link counters that only grow, as ``error`` label values.
_LINK_ERRORS = (
    ("crc", "crc_errors"),
    ("malformed", "malformed"),
    ("duplicate", "duplicates"),
    ("hello_mismatch", "hello_mismatches"),
)


class _GatewayCollector:
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway  # read on its event loop (MetricsServer.astart)

    def collect(self) -> Iterator[Metric]:
        gateway = self._gateway
        stats = gateway.stats()
        config = gateway.config
        info = InfoMetricFamily("qihe_gateway", "Which gateway this is.")
        info.add_metric([], {"site": config.site, "gateway": config.gateway})
        yield info
        readings = CounterMetricFamily(
            "qihe_gateway_readings_total",
            "Readings made by the gateway's sources (and its own health readings), by kind.",
            labels=["kind"],
        )
        for kind, count in sorted(stats.readings_by_kind.items()):
            readings.add_metric([kind], count)
        yield readings
        yield GaugeMetricFamily(
            "qihe_gateway_outbox_readings",
            "Readings in the outbox that the broker has not acknowledged yet.",
            value=stats.queued,
        )
        yield GaugeMetricFamily(
            "qihe_gateway_outbox_memory_readings",
            "Readings held in memory, not yet stored on the card (grows while commits fail).",
            value=gateway.outbox.held,
        )
        yield GaugeMetricFamily(
            "qihe_gateway_outbox_failing_commits",
            "Outbox commits that failed in a row (0 while the card takes writes).",
            value=gateway.outbox.failing_commits,
        )
        dropped = CounterMetricFamily(
            "qihe_gateway_dropped_total",
            "Readings the outbox dropped by its policy (full, or clock never trusted), by kind.",
            labels=["kind"],
        )
        for kind, count in sorted(stats.dropped.items()):
            dropped.add_metric([kind], count)
        yield dropped
        yield from self._publisher(gateway)
        yield from self._links(stats)

    def _publisher(self, gateway: Gateway) -> Iterator[Metric]:
        publisher = gateway.publisher.stats()
        yield GaugeMetricFamily(
            "qihe_gateway_mqtt_connected",
            "1 while the gateway is connected to the MQTT broker.",
            value=int(publisher.connected),
        )
        yield CounterMetricFamily(
            "qihe_gateway_published_total",
            "Readings the broker acknowledged (PUBACK), live or replayed.",
            value=publisher.published,
        )
        yield CounterMetricFamily(
            "qihe_gateway_mqtt_connects_total",
            "Connections made to the broker.",
            value=publisher.connects,
        )
        yield CounterMetricFamily(
            "qihe_gateway_mqtt_connection_failures_total",
            "Attempts to connect to the broker that failed.",
            value=publisher.connection_failures,
        )
        yield CounterMetricFamily(
            "qihe_gateway_backlog_batches_total",
            "Backlog messages published while replaying after an outage.",
            value=publisher.backlog_batches,
        )
        refused = CounterMetricFamily(
            "qihe_gateway_publish_refused_total",
            "Messages the broker refused (PUBACK 0x80 or above), by kind and MQTT reason code.",
            labels=["kind", "reason"],
        )
        snapshot = gateway.publisher.refusal_snapshot()
        for (kind, code), count in sorted(snapshot.by_kind.items()):
            refused.add_metric([kind, f"0x{code:02x}"], count)
        yield refused
        yield GaugeMetricFamily(
            "qihe_gateway_publish_held_readings",
            "Refused readings held for a retry now.",
            value=snapshot.held,
        )

    def _links(self, stats: GatewayStats) -> Iterator[Metric]:
        frames = CounterMetricFamily(
            "qihe_gateway_link_frames_total",
            "Frames decoded on a link (a serial board, a Modbus bus).",
            labels=["link"],
        )
        errors = CounterMetricFamily(
            "qihe_gateway_link_errors_total",
            "Bad frames on a link: crc, malformed, duplicate, hello_mismatch.",
            labels=["link", "error"],
        )
        reconnects = CounterMetricFamily(
            "qihe_gateway_link_reconnects_total",
            "Times a link's port was opened again.",
            labels=["link"],
        )
        lost = GaugeMetricFamily(
            "qihe_gateway_link_lost_frames",
            "Frames skipped over and not (yet) recovered by a resend.",
            labels=["link"],
        )
        board_dropped = GaugeMetricFamily(
            "qihe_gateway_link_board_dropped_reports",
            "Reports the board's current boot gave up unacknowledged (its last WINDOW).",
            labels=["link"],
        )
        for link, counters in sorted(stats.links.items()):
            frames.add_metric([link], counters.frames)
            for error, field in _LINK_ERRORS:
                errors.add_metric([link, error], getattr(counters, field))
            reconnects.add_metric([link], counters.reconnects)
            lost.add_metric([link], counters.lost)
            board_dropped.add_metric([link], counters.board_dropped)
        yield from (frames, errors, reconnects, lost, board_dropped)


def gateway_metrics(config: MetricsConfig, gateway: Gateway) -> MetricsServer:
    """The gateway's ``/metrics`` (start with ``astart`` on its loop)."""
    return MetricsServer(config, [_GatewayCollector(gateway)], service="gateway")
