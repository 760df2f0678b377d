"""The client seam: what a publisher needs of a connected MQTT client, as a ``Protocol``.

:class:`qihe.mqtt.clients.PubackClient` satisfies it; a test passes a fake that does, so the
gateway publisher's logic (its in-flight window, refused readings, its status and Will) runs
without a broker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

__all__ = ["MqttClient", "ReceivedMessage"]


class ReceivedMessage(Protocol):
    """A message the broker delivered to a subscription."""

    @property
    def topic(self) -> object:
        """The topic it came on; ``str()`` of it is the topic name."""

    @property
    def payload(self) -> object:
        """Its payload: ``bytes`` as it came off the wire."""


class MqttClient(Protocol):
    """A connected MQTT 5 client (the ``async with`` that connected it owns the connection).

    A lost connection raises :class:`aiomqtt.MqttError` from any of these.
    """

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int,
        retain: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109  # the PUBACK wait, as aiomqtt names it
    ) -> None:
        """Publish; at QoS 1 return once the PUBACK came, raise
        :class:`qihe.mqtt.PublishRefusedError` when its reason code refuses the message.
        ``timeout`` bounds the wait for the PUBACK (``None``: the client's own)."""

    async def subscribe(self, topic: str, *, qos: int) -> object:
        """Subscribe to a topic filter; return once the broker granted it."""

    @property
    def messages(self) -> AsyncIterator[ReceivedMessage]:
        """The messages of every subscription, as they come."""
