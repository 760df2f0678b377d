"""MQTT for every part of the project: how to reach a broker, the one place clients are built,
the client seam, and what a refusing PUBACK means.

- :mod:`qihe.mqtt.config`: :class:`BrokerConnection`, the config every client shares.
- :mod:`qihe.mqtt.clients`: :func:`connect` (asyncio), :func:`paho_client` (paho's thread).
- :mod:`qihe.mqtt.protocol`: :class:`MqttClient`, what a publisher needs of a client.
- :mod:`qihe.mqtt.puback`: :class:`PublishRefusedError` and :func:`refusal`.
"""

from qihe.mqtt.clients import (
    PubackClient,
    connect,
    message_topic,
    paho_client,
    session_properties,
)
from qihe.mqtt.config import BrokerConnection
from qihe.mqtt.protocol import MqttClient, ReceivedMessage
from qihe.mqtt.puback import PublishRefusedError, reason_label, refusal

__all__ = [
    "BrokerConnection",
    "MqttClient",
    "PubackClient",
    "PublishRefusedError",
    "ReceivedMessage",
    "connect",
    "message_topic",
    "paho_client",
    "reason_label",
    "refusal",
    "session_properties",
]
