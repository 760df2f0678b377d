"""Configuration of the central consumer (``config/consumer.yaml``), validated without I/O.

Durations are seconds (``1``, ``0.5``) or ISO 8601 (``PT1M``); secrets are
:class:`~pydantic.SecretStr` so they never show in logs or ``repr``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    HttpUrl,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from qihe.contract import ID_PATTERN, TopicError, TopicTree

__all__ = [
    "ConsumerConfig",
    "InfluxConfig",
    "InfluxV1Config",
    "InfluxV2Config",
    "MqttConfig",
]

#: The MQTT Session Expiry Interval is a four-byte count of seconds.
_MAX_SESSION_EXPIRY = timedelta(seconds=0xFFFF_FFFF)
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration")
    return value


def _topic_prefix(value: str) -> str:
    try:
        TopicTree(value)
    except TopicError as exc:
        raise ValueError(str(exc)) from None
    return value


def _base_url(value: str) -> str:
    try:
        url = _HTTP_URL.validate_python(value)
    except ValidationError as exc:
        raise ValueError(f"not an http(s) URL: {exc.errors()[0]['msg']}") from None
    if url.query or url.fragment:
        raise ValueError("must not carry a query or fragment")
    return str(url).rstrip("/")


Duration = Annotated[timedelta, AfterValidator(_positive)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\r\n]+$")]
BaseUrl = Annotated[str, AfterValidator(_base_url)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttConfig(_Model):
    """The broker the gateways publish to, and this consumer's persistent session."""

    host: Name = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    username: Name | None = None
    password: SecretStr | None = None
    tls: bool = False
    #: CA bundle to verify the broker with (TLS only); the system store when omitted.
    ca_file: FilePath | None = None
    #: Fixed per consumer: the broker keeps the session (and unacked messages) under it.
    client_id: Annotated[str, StringConstraints(pattern=ID_PATTERN)] = "qihe-central"
    topic_prefix: Annotated[str, AfterValidator(_topic_prefix)] = "qihe"
    keepalive: Annotated[timedelta, Field(ge=timedelta(seconds=5), le=timedelta(seconds=65535))] = (
        timedelta(seconds=60)
    )
    #: How long the broker keeps our session and queues messages while we are away.
    session_expiry: Annotated[timedelta, Field(ge=timedelta(0), le=_MAX_SESSION_EXPIRY)] = (
        timedelta(days=7)
    )
    #: How long ``start()`` waits for the first connection and subscription.
    connect_timeout: Duration = timedelta(seconds=10)
    #: Share the load with other consumers of the same group: subscribe through
    #: ``$share/{shared_group}/…`` (MQTT 5 shared subscriptions), so the broker gives each
    #: message to one of them. Each consumer keeps its own ``client_id`` (its own session).
    shared_group: Annotated[str, StringConstraints(pattern=ID_PATTERN)] | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is set but tls is false")
        if self.password is not None and self.username is None:
            raise ValueError("password is set without username")
        return self


class InfluxV1Config(_Model):
    """InfluxDB 1.x: ``POST /write?db=...`` (optionally with basic auth)."""

    api: Literal["v1"]
    url: BaseUrl
    database: Name
    username: Name | None = None
    password: SecretStr | None = None
    retention_policy: Name | None = None
    #: Send ``CREATE DATABASE`` (idempotent in 1.x) before the first write.
    create_database: bool = True
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.password is not None and self.username is None:
            raise ValueError("password is set without username")
        return self


class InfluxV2Config(_Model):
    """InfluxDB 2.x, and 3.x through its v2-compatible write API (bucket = database)."""

    api: Literal["v2"]
    url: BaseUrl
    token: SecretStr
    org: Name
    bucket: Name
    #: Compress request bodies (``Content-Encoding: gzip``).
    gzip: bool = False
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _token_given(self) -> Self:
        if not self.token.get_secret_value().strip():
            raise ValueError("token must not be empty")
        return self


InfluxConfig = Annotated[InfluxV1Config | InfluxV2Config, Field(discriminator="api")]


class ConsumerConfig(_Model):
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

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.retry_max_delay < self.retry_min_delay:
            raise ValueError("retry_max_delay is shorter than retry_min_delay")
        if self.flush_idle > self.flush_interval:
            raise ValueError("flush_idle is longer than flush_interval")
        return self
