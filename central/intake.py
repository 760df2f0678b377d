"""Turn one MQTT message into a :class:`Delivery`: a line to write, or the reason it is refused.

A message is valid when its topic belongs to the tree, its payload validates
against the wire contract, and the payload's site, gateway, kind and sensor are
the topic's (a gateway may only speak for its own topics).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from central.errors import InvalidMessageError, LineProtocolError
from central.influx.line_protocol import Point
from central.points import reading_line, reading_point, status_line, status_point
from qihe.contract import (
    GatewayStatus,
    PayloadError,
    Reading,
    ReadingBatch,
    TopicError,
    TopicParts,
    TopicTree,
    parse_batch,
    parse_reading,
    parse_status,
)

__all__ = [
    "Delivery",
    "OncePerKey",
    "decode_message",
    "message_lines",
    "message_point",
    "message_points",
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
    point cannot be encoded. The same lines as :func:`message_points` encoded."""
    parts = _topic_parts(tree, topic)
    if parts.kind == "backlog":
        return [reading_line(reading) for reading in _decode_batch(parts, payload).readings]
    message = _decode(parts, payload)
    if isinstance(message, GatewayStatus):
        return [status_line(message)]
    return [reading_line(message)]


def message_points(tree: TopicTree, topic: str, payload: bytes) -> list[Point]:
    """The points a message writes (a backlog batch writes many); raise
    :class:`InvalidMessageError` saying why it cannot."""
    parts = _topic_parts(tree, topic)
    if parts.kind == "backlog":
        return [reading_point(reading) for reading in _decode_batch(parts, payload).readings]
    return [message_point(tree, topic, payload)]


def message_point(tree: TopicTree, topic: str, payload: bytes) -> Point:
    """The point a single-reading or status message writes; raise :class:`InvalidMessageError`."""
    message = decode_message(tree, topic, payload)
    if isinstance(message, GatewayStatus):
        return status_point(message)
    return reading_point(message)


def decode_message(tree: TopicTree, topic: str, payload: bytes) -> GatewayStatus | Reading:
    """The typed status or reading a (non-backlog) message carries; raise
    :class:`InvalidMessageError` saying why it cannot be trusted."""
    return _decode(_topic_parts(tree, topic), payload)


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


#: Topics whose parts are kept: readings come on one topic per sensor, again and again. As
#: large as :data:`central.points.SERIES_CACHE`, for the same reason.
TOPIC_CACHE = 65_536


@lru_cache(maxsize=TOPIC_CACHE)
def _cached_parts(tree: TopicTree, topic: str) -> TopicParts:
    return tree.parse(topic)  # a refused topic raises every time (only answers are kept)


def _topic_parts(tree: TopicTree, topic: str) -> TopicParts:
    try:
        return _cached_parts(tree, topic)
    except TopicError as exc:
        raise InvalidMessageError(f"topic: {exc}", key="topic") from None


def _decode(parts: TopicParts, payload: bytes) -> GatewayStatus | Reading:
    try:
        if parts.kind == "status":
            status = parse_status(payload)
            _agree(parts, site=status.site, gateway=status.gateway)
            return status
        if parts.kind == "backlog":
            raise InvalidMessageError(
                "topic: a backlog batch is not a single message", key="topic: backlog"
            )
        reading = parse_reading(payload)
    except PayloadError as exc:
        raise InvalidMessageError(_payload_reason(exc), key=exc.key) from None
    claimed = (reading.site, reading.gateway, reading.kind, reading.sensor)
    if claimed != (parts.site, parts.gateway, parts.kind, parts.sensor):
        _agree(  # says which one differs
            parts,
            site=reading.site,
            gateway=reading.gateway,
            kind=reading.kind,
            sensor=reading.sensor,
        )
    return reading


def _decode_batch(parts: TopicParts, payload: bytes) -> ReadingBatch:
    try:
        batch = parse_batch(payload)
    except PayloadError as exc:
        raise InvalidMessageError(_payload_reason(exc), key=f"batch: {exc.key}") from None
    _agree(parts, site=batch.site, gateway=batch.gateway)
    return batch


def _payload_reason(exc: PayloadError) -> str:
    detail = str(exc)  # already names the key, or "payload" for the whole document
    return detail if detail.startswith("payload") else f"payload: {detail}"


def _agree(parts: TopicParts, **claimed: str) -> None:
    for name, value in claimed.items():
        expected = getattr(parts, name)
        if value != expected:
            raise InvalidMessageError(
                f"payload {name} {value!r} does not match the topic's {name} {expected!r}",
                key=f"payload {name} does not match the topic",
            )


class OncePerKey:
    """Remembers the most recent ``size`` keys: ``first(key)`` is True once per key.

    Bounded, because topics come from the network: a flood of distinct bad topics
    must not grow memory (the oldest are forgotten and may be logged again).
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()  # used from the network and the writer thread

    def first(self, key: str) -> bool:
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            self._seen[key] = None
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)
            return True
