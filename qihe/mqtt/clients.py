"""The one place MQTT clients are built, from a :class:`qihe.mqtt.config.BrokerConnection`.

- :func:`connect`: an asyncio client (:class:`PubackClient`, MQTT 5), connected for the
  length of an ``async with`` block: the gateway's publisher and the central services that
  listen (``central/listen.py``).
- :func:`paho_client`: a paho-mqtt client (MQTT 5, on paho's own network thread): the
  consumer's, with manual acknowledgements and a persistent session
  (:func:`session_properties`), and the gateway doctor's connection check.

TLS is set up in one place, :func:`_ssl_context` (the system store or ``ca_file``, the
broker's host name verified). Reading the CA file is blocking I/O, so the asyncio path
builds the context on a worker thread.

:class:`PubackClient` is the one place that knows how to get a PUBACK's reason code out
of aiomqtt (:mod:`qihe.mqtt.puback`): it wraps the paho client's ``publish`` to learn
each publish's message id (in a context variable, so concurrent publishes on one loop
never mix), overrides ``_on_publish`` to remember a failure per message id, and raises
:class:`PublishRefusedError` from ``publish()``. Both hooks are private to aiomqtt, so
``pyproject.toml`` pins its range and ``tests/test_puback.py`` fails loudly if aiomqtt
stops calling them.
"""

from __future__ import annotations

import asyncio
import contextvars
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from aiomqtt.types import PayloadType
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from qihe.mqtt.config import BrokerConnection
from qihe.mqtt.puback import PublishRefusedError

__all__ = ["PubackClient", "connect", "message_topic", "paho_client", "session_properties"]

#: How long an asyncio client waits for the broker to answer (CONNACK, SUBACK, a PUBACK).
_TIMEOUT_S = 10
#: paho's own reconnect delay doubles between these (seconds).
_RECONNECT_MIN_S = 1
_RECONNECT_MAX_S = 30
#: MQTT's Receive Maximum is a two-byte count.
_MAX_RECEIVE_MAXIMUM = 65_535

#: The message id of the last publish handed to paho in this task (or context).
_LAST_MID: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "qihe_puback_last_mid", default=None
)


class PubackClient(aiomqtt.Client):
    """An :class:`aiomqtt.Client` whose QoS 1 ``publish()`` raises :class:`PublishRefusedError`
    when the PUBACK says the broker refused the message. Connect with MQTT 5
    (``protocol=aiomqtt.ProtocolVersion.V5``); under 3.1.1 every PUBACK is a success."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Refused message ids whose publish() has not picked the refusal up yet.
        self._refused: dict[int, ReasonCode] = {}
        paho = self._client
        send = paho.publish

        def publish_noting_mid(*a: Any, **kw: Any) -> mqtt.MQTTMessageInfo:
            info = send(*a, **kw)
            # A refusal left by a publish that was cancelled before it looked: not ours.
            self._refused.pop(info.mid, None)
            _LAST_MID.set(info.mid)
            return info

        paho.publish = publish_noting_mid  # type: ignore[method-assign]

    def _on_publish(
        self,
        client: Any,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        if reason_code.is_failure:
            self._refused[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish(
        self,
        /,
        topic: str,
        payload: PayloadType = None,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109  # aiomqtt's own parameter
        **kwargs: Any,
    ) -> None:
        """As :meth:`aiomqtt.Client.publish`; raise :class:`PublishRefusedError` when refused."""
        token = _LAST_MID.set(None)
        try:
            await super().publish(
                topic, payload, qos, retain, properties, *args, timeout=timeout, **kwargs
            )
            mid = _LAST_MID.get()
        finally:
            _LAST_MID.reset(token)
        if mid is None:
            return
        reason = self._refused.pop(mid, None)
        if reason is not None:
            raise PublishRefusedError(topic, reason.value, reason.getName())


@asynccontextmanager
async def connect(
    broker: BrokerConnection,
    *,
    identifier: str,
    will: aiomqtt.Will | None = None,
    max_inflight: int | None = None,
    max_queued_incoming: int | None = None,
) -> AsyncIterator[PubackClient]:
    """An MQTT 5 :class:`PubackClient` connected as ``identifier`` for the ``async with`` block.

    ``will``: the Last Will the broker publishes if the connection is lost.
    ``max_inflight``: QoS 1 publishes that may await their PUBACK at once.
    ``max_queued_incoming``: received messages held for ``messages`` (unbounded when ``None``).
    Raises :class:`aiomqtt.MqttError` when the broker cannot be reached or the connection is
    lost, :class:`OSError` when the CA file cannot be read.
    """
    client = PubackClient(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password.get_secret_value() if broker.password else None,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
        will=will,
        keepalive=max(5, int(broker.keepalive.total_seconds())),
        max_inflight_messages=max_inflight,
        max_queued_incoming_messages=max_queued_incoming,
        tls_context=await asyncio.to_thread(_ssl_context, broker),
        timeout=_TIMEOUT_S,
    )
    if max_inflight is not None:
        # aiomqtt warns past 10 publishes awaiting their PUBACK; we allow max_inflight.
        client.pending_calls_threshold = max_inflight
    async with client:
        yield client


def paho_client(
    broker: BrokerConnection, *, client_id: str, manual_ack: bool = False
) -> mqtt.Client:
    """A configured, unconnected MQTT 5 paho client (reads the CA file when TLS is on; no
    network). With ``manual_ack`` paho sends no PUBACK when ``on_message`` returns: the
    owner sends it with ``Client.ack(mid, qos)`` (which only queues the packet, so any
    thread may call it). Raises :class:`OSError` (``ssl.SSLError`` too) for a bad CA file.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    if broker.username is not None:
        password = broker.password.get_secret_value() if broker.password else None
        client.username_pw_set(broker.username, password)
    context = _ssl_context(broker)
    if context is not None:
        client.tls_set_context(context)
    client.reconnect_delay_set(_RECONNECT_MIN_S, _RECONNECT_MAX_S)
    return client


def session_properties(*, session_expiry: timedelta, receive_maximum: int) -> Properties:
    """CONNECT properties of a persistent session (connect with ``clean_start=False``): how
    long the broker keeps it while we are away, how many messages it may send us unacked."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: unannotated
    properties.SessionExpiryInterval = int(session_expiry.total_seconds())
    properties.ReceiveMaximum = max(1, min(receive_maximum, _MAX_RECEIVE_MAXIMUM))
    return properties


def message_topic(message: mqtt.MQTTMessage) -> str:
    """The topic a paho message came on.

    paho's ``MQTTMessage.topic`` decodes the topic as UTF-8 and raises on bytes that are
    not. MQTT forbids such topics, but one must not stop a consumer: the bad bytes become
    U+FFFD, and the message is refused by the topic check like any other bad topic.
    """
    try:
        return message.topic
    except UnicodeDecodeError as exc:
        return exc.object.decode("utf-8", "replace")


def _ssl_context(broker: BrokerConnection) -> ssl.SSLContext | None:
    """The TLS context for ``broker`` (``None`` without TLS); reads the CA file: blocking."""
    if not broker.tls:
        return None
    cafile = str(broker.ca_file) if broker.ca_file else None
    return ssl.create_default_context(cafile=cafile)
