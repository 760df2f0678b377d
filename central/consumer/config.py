"""Configuration of the consumer (``config/consumer.yaml``), validated without I/O.

Durations are seconds (``1``, ``0.5``) or ISO 8601 (``PT1M``); secrets are
:class:`~pydantic.SecretStr` so they never show in logs or ``repr``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Self

from pydantic import Field, model_validator

from central.broker import MqttConfig
from central.influx.config import InfluxConfig
from qihe.configtypes import Duration, StrictModel
from qihe.metrics import MetricsConfig

__all__ = ["ConsumerConfig"]


class ConsumerConfig(StrictModel):
    """The whole consumer: where to read, where to write, and how to batch."""

    mqtt: MqttConfig
    influx: InfluxConfig
    #: Most points written in one request.
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    #: Longest a message waits in a batch before the batch is written.
    flush_interval: Duration = timedelta(seconds=1)
    #: Write a batch early once no message arrived for this long (see docs/influxdb.md:
    #: the broker stops sending when its in-flight window of unacked messages is full).
    flush_idle: Duration = timedelta(milliseconds=50)
    #: Batches written at once (each on its own HTTP connection): the next batch is sent while
    #: InfluxDB still works on the one before. Acknowledgements stay in message order: a batch
    #: is acked only once it and every batch taken before it are written.
    writes_in_flight: int = Field(default=2, ge=1, le=8)
    #: Bound of received messages held in memory awaiting a batch; also sent to the
    #: broker as our MQTT Receive Maximum so it never sends more than we hold.
    max_pending: int = Field(default=10_000, ge=1, le=1_000_000)
    #: Republish refused messages to ``{prefix}/v1/_dead_letter/{client_id}``.
    dead_letter: bool = True
    #: Backoff between retries of a failing write: from ``retry_min_delay`` doubling
    #: up to ``retry_max_delay``, with jitter.
    retry_min_delay: Duration = timedelta(milliseconds=500)
    retry_max_delay: Duration = timedelta(seconds=30)
    #: At stop, how long to keep trying to flush what is pending before leaving it
    #: unacked (the broker redelivers it next time).
    stop_timeout: Duration = timedelta(seconds=10)
    #: Prometheus ``/metrics`` (off when absent; loopback unless an address is given).
    metrics: MetricsConfig | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.retry_max_delay < self.retry_min_delay:
            raise ValueError("retry_max_delay is shorter than retry_min_delay")
        if self.flush_idle > self.flush_interval:
            raise ValueError("flush_idle is longer than flush_interval")
        return self
