"""The broker every central service connects to (consumer, live service, alert engine)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Self

from pydantic import Field, FilePath, SecretStr, StringConstraints, model_validator

from qihe.configtypes import Duration, Name, StrictModel, TopicPrefix
from qihe.contract import ID_PATTERN

__all__ = ["MqttConfig"]

#: The MQTT Session Expiry Interval is a four-byte count of seconds.
_MAX_SESSION_EXPIRY = timedelta(seconds=0xFFFF_FFFF)


class MqttConfig(StrictModel):
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
    topic_prefix: TopicPrefix = "qihe"
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
