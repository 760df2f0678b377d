"""A refused QoS 1 publish raises instead of counting as delivered.

Under MQTT 5 the broker answers every QoS 1 publish with a PUBACK carrying a reason
code: below 0x80 the message was accepted (0x10 "No matching subscribers" included),
0x80 and above it was refused and is gone (Mosquitto 2.0: 0x87 Not authorized when
its ACL denies the topic, 0x97 Quota exceeded). paho-mqtt 2.x hands the code to
``on_publish``; aiomqtt 2.5 drops it and returns from ``publish()`` either way.

:class:`PubackClient` is the one place that knows how to get the code out of
aiomqtt: it wraps the paho client's ``publish`` to learn each publish's message id
(in a context variable, so concurrent publishes on one loop never mix), overrides
``_on_publish`` to remember a failure per message id, and raises
:class:`PublishRefusedError` from ``publish()``. Both hooks are private to aiomqtt,
so ``pyproject.toml`` pins its range and ``tests/test_puback.py`` fails loudly if
aiomqtt stops calling them. paho-driven publishes (the consumer's dead letters)
use :func:`refusal` in their own ``on_publish``.

A QoS 0 publish has no PUBACK: a broker drops a denied one without a word, which
is why every publish that matters here is QoS 1. Under MQTT 3.1.1 there are no
reason codes at all: clients that need to know must connect with MQTT 5.
"""

from __future__ import annotations

import contextvars
from typing import Any

import aiomqtt
from aiomqtt.types import PayloadType
from paho.mqtt.client import MQTTMessageInfo
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["PubackClient", "PublishRefusedError", "reason_label", "refusal"]

#: The message id of the last publish handed to paho in this task (or context).
_LAST_MID: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "qihe_puback_last_mid", default=None
)


class PublishRefusedError(Exception):
    """The broker refused a QoS 1 publish (PUBACK reason code 0x80 or above).

    Not an :class:`aiomqtt.MqttError`: the connection is fine, only this message
    was not taken, and a reconnect would not change that.
    """

    def __init__(self, topic: str, reason_code: int, reason_name: str) -> None:
        super().__init__(
            f"broker refused the publish on {topic}: {reason_label(reason_code, reason_name)}"
        )
        self.topic = topic
        self.reason_code = reason_code
        self.reason_name = reason_name


def reason_label(code: int, name: str) -> str:
    """``0x87 Not authorized``: how logs and doctor lines name a reason."""
    return f"0x{code:02x} {name}"


def refusal(topic: str, reason_code: ReasonCode | int) -> PublishRefusedError | None:
    """The error a PUBACK's reason code means, or ``None`` for a success (codes below 0x80)."""
    if isinstance(reason_code, ReasonCode):
        if not reason_code.is_failure:
            return None
        return PublishRefusedError(topic, reason_code.value, reason_code.getName())
    if reason_code < 0x80:
        return None
    return PublishRefusedError(topic, reason_code, "refused")


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

        def publish_noting_mid(*a: Any, **kw: Any) -> MQTTMessageInfo:
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
