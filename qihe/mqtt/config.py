"""How to reach a broker: the part of the config every MQTT client of the project shares.

The gateway's ``broker`` section (:class:`edge.config.BrokerConfig`) and the central services'
``mqtt`` section (:class:`central.broker.MqttConfig`) extend it with what only they need; the
client builders in :mod:`qihe.mqtt.clients` take this part alone.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator

from qihe.configtypes import Name, StrictModel

__all__ = ["BrokerConnection"]


class BrokerConnection(StrictModel):
    """Address, TLS and credentials of a broker (validated without touching the network)."""

    host: Name
    port: int = Field(default=1883, ge=1, le=65535)
    tls: bool = False
    #: CA bundle to verify the broker with (TLS only); the system store when omitted.
    ca_file: Path | None = None
    username: Name | None = None
    password: SecretStr | None = None
    keepalive: timedelta = timedelta(seconds=60)

    @model_validator(mode="after")
    def _ca_needs_tls(self) -> Self:
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is set but tls is false")
        return self
