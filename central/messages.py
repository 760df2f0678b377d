"""Whether an MQTT message can be trusted: its topic is in the tree, its payload validates
against the wire contract, and the payload's site, gateway, kind and sensor are the topic's
(a gateway may only speak for its own topics). Every central service reads through here.
"""

from __future__ import annotations

from functools import lru_cache

from central.errors import InvalidMessageError
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

__all__ = ["decode_batch", "decode_message", "decode_parts", "topic_parts"]


def decode_message(tree: TopicTree, topic: str, payload: bytes) -> GatewayStatus | Reading:
    """The typed status or reading a (non-backlog) message carries; raise
    :class:`InvalidMessageError` saying why it cannot be trusted."""
    return decode_parts(topic_parts(tree, topic), payload)


#: Topics whose parts are kept: readings come on one topic per sensor, again and again. As
#: large as :data:`central.consumer.points.SERIES_CACHE`, for the same reason.
TOPIC_CACHE = 65_536


@lru_cache(maxsize=TOPIC_CACHE)
def _cached_parts(tree: TopicTree, topic: str) -> TopicParts:
    return tree.parse(topic)  # a refused topic raises every time (only answers are kept)


def topic_parts(tree: TopicTree, topic: str) -> TopicParts:
    try:
        return _cached_parts(tree, topic)
    except TopicError as exc:
        raise InvalidMessageError(f"topic: {exc}", key="topic") from None


def decode_parts(parts: TopicParts, payload: bytes) -> GatewayStatus | Reading:
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


def decode_batch(parts: TopicParts, payload: bytes) -> ReadingBatch:
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
