"""Turn one MQTT message into a :class:`Delivery`: a line to write, or the reason it is refused.

Whether a message is valid is :mod:`central.messages`' answer, the same for every central
service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from central.consumer.points import reading_line, status_line
from central.errors import InvalidMessageError, LineProtocolError
from central.messages import decode_batch, decode_parts, topic_parts
from qihe.contract import GatewayStatus, TopicTree

__all__ = [
    "Delivery",
    "to_delivery",
]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One received message on its way to InfluxDB (or to the dead-letter topic).

    ``mid``/``qos``/``connection`` identify it for the MQTT ack: a message id is
    only meaningful on the connection it arrived on. ``line`` holds its ``points``
    lines (a backlog batch writes many), joined by newlines.
    """

    mid: int
    qos: int
    connection: int
    topic: str
    payload: bytes
    received_at: datetime
    line: str | None
    reason: str | None = None
    points: int = 0
    #: The kind of problem when refused, without the message's values (for counting).
    reason_key: str | None = None


def message_lines(tree: TopicTree, topic: str, payload: bytes) -> list[str]:
    """The lines a message writes (a backlog batch writes many); raise
    :class:`InvalidMessageError` saying why it cannot, :class:`LineProtocolError` when a
    point cannot be encoded."""
    parts = topic_parts(tree, topic)
    if parts.kind == "backlog":
        return [reading_line(reading) for reading in decode_batch(parts, payload).readings]
    message = decode_parts(parts, payload)
    if isinstance(message, GatewayStatus):
        return [status_line(message)]
    return [reading_line(message)]


def to_delivery(
    tree: TopicTree,
    *,
    mid: int,
    qos: int,
    connection: int,
    topic: str,
    payload: bytes,
    received_at: datetime,
) -> Delivery:
    """Validate and encode a message; an invalid one becomes a Delivery with a ``reason``."""
    try:
        lines = message_lines(tree, topic, payload)
    except InvalidMessageError as exc:
        return Delivery(
            mid, qos, connection, topic, payload, received_at, None, exc.reason, 0, exc.key
        )
    except LineProtocolError as exc:
        reason = f"point: {exc}"
        return Delivery(mid, qos, connection, topic, payload, received_at, None, reason, 0, "point")
    # A backlog batch is one delivery of many lines: acked once, after all are written.
    line = lines[0] if len(lines) == 1 else "\n".join(lines)
    return Delivery(mid, qos, connection, topic, payload, received_at, line, None, len(lines))
