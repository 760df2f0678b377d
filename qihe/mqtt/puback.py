"""A refused QoS 1 publish raises instead of counting as delivered.

Under MQTT 5 the broker answers every QoS 1 publish with a PUBACK carrying a reason
code: below 0x80 the message was accepted (0x10 "No matching subscribers" included),
0x80 and above it was refused and is gone (Mosquitto 2.0: 0x87 Not authorized when
its ACL denies the topic, 0x97 Quota exceeded). paho-mqtt 2.x hands the code to
``on_publish``; aiomqtt 2.5 drops it and returns from ``publish()`` either way.

:class:`qihe.mqtt.clients.PubackClient` gets the code out of aiomqtt and raises
:class:`PublishRefusedError` from ``publish()``; paho-driven publishes (the consumer's
dead letters) use :func:`refusal` in their own ``on_publish``.

A QoS 0 publish has no PUBACK: a broker drops a denied one without a word, which
is why every publish that matters here is QoS 1. Under MQTT 3.1.1 there are no
reason codes at all: clients that need to know must connect with MQTT 5.
"""

from __future__ import annotations

from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["PublishRefusedError", "reason_label", "refusal"]


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
