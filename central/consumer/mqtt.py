"""Build the consumer's paho-mqtt client: MQTT 5, persistent session, manual acknowledgements.

With ``manual_ack=True`` paho does not send PUBACK when ``on_message`` returns;
the consumer sends it with ``Client.ack(mid, qos)`` once InfluxDB has the point.
``ack`` only queues the packet and wakes the network thread, so the writer
thread may call it.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central.broker import MqttConfig

__all__ = ["MAX_RECEIVE_MAXIMUM", "connect_properties", "new_client"]

#: MQTT's Receive Maximum is a two-byte count.
MAX_RECEIVE_MAXIMUM = 65_535

#: paho's reconnect delay doubles between these (seconds).
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30


def new_client(config: MqttConfig) -> mqtt.Client:
    """A configured, unconnected client (reads the CA file when TLS is on; no network)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=config.client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=True,
    )
    if config.username is not None:
        password = config.password.get_secret_value() if config.password else None
        client.username_pw_set(config.username, password)
    if config.tls:
        client.tls_set(ca_certs=str(config.ca_file) if config.ca_file else None)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    return client


def connect_properties(config: MqttConfig, *, receive_maximum: int) -> Properties:
    """CONNECT properties: how long the broker keeps our session, how much it may send unacked."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: unannotated
    properties.SessionExpiryInterval = int(config.session_expiry.total_seconds())
    properties.ReceiveMaximum = max(1, min(receive_maximum, MAX_RECEIVE_MAXIMUM))
    return properties
