"""The broker every central service connects to (consumer, live service, alert engine)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Self

from pydantic import Field, FilePath, StringConstraints, model_validator

from qihe.configtypes import Duration, Name, TopicPrefix
from qihe.contract import ID_PATTERN
from qihe.mqtt import BrokerConnection

__all__ = ["MqttConfig"]

#: The MQTT Session Expiry Interval is a four-byte count of seconds.
_MAX_SESSION_EXPIRY = timedelta(seconds=0xFFFF_FFFF)


class MqttConfig(BrokerConnection):
    """The broker the gateways publish to, and this consumer's persistent session."""

    host: Name = "localhost"
    #: As for every client, and it must exist when the config is loaded.
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
    def _password_needs_username(self) -> Self:
        if self.password is not None and self.username is None:
            raise ValueError("password is set without username")
        return self
