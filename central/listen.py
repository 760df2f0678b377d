"""Listening to the broker with a clean session, for the services that keep state from it.

The live service and the alert engine both rebuild their state from the retained topics on
every (re)connection, so neither needs a persistent session: connect with a random client-id
suffix (several may share a broker), subscribe, hand each message over, and reconnect with
backoff when the broker goes away. MQTT 5, so a QoS 1 publish the broker refuses raises
:class:`qihe.mqtt.PublishRefusedError` instead of passing as sent.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence

import aiomqtt

from central.broker import MqttConfig
from qihe.backoff import Backoff
from qihe.mqtt import connect

__all__ = ["listen"]

log = logging.getLogger(__name__)

#: ``(topic, payload, retained)``: called on the event loop for every message.
OnMessage = Callable[[str, bytes, bool], None]


async def listen(
    mqtt: MqttConfig,
    filters: Sequence[str],
    on_message: OnMessage,
    *,
    name: str,
    on_connected: Callable[[aiomqtt.Client], None] = lambda _client: None,
    on_lost: Callable[[], None] = lambda: None,
) -> None:
    """Until cancelled. ``on_connected`` runs once the filters are subscribed (the client may
    publish from then on); ``on_lost`` whenever the connection ends."""
    backoff = Backoff()
    while True:
        try:
            # An MQTT 5 PubackClient: a publish the broker refuses raises (qihe/mqtt/clients.py).
            async with connect(
                mqtt,
                identifier=f"{mqtt.client_id}-{secrets.token_hex(3)}",
                max_queued_incoming=100_000,
            ) as client:
                for topic_filter in filters:
                    await client.subscribe(topic_filter, qos=1)
                on_connected(client)
                backoff.reset()
                log.info("%s: listening at %s:%d", name, mqtt.host, mqtt.port)
                async for message in client.messages:
                    payload = message.payload
                    body = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
                    on_message(str(message.topic), body, message.retain)
        except aiomqtt.MqttError as exc:
            delay = backoff.next_delay()
            log.warning(
                "%s: broker %s:%d: %s; reconnecting in %.1fs",
                name,
                mqtt.host,
                mqtt.port,
                exc,
                delay,
            )
            on_lost()
            await asyncio.sleep(delay)
        except BaseException:
            on_lost()
            raise
