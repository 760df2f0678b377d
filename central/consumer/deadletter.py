"""Dead letters: the JSON a refused message is republished as, and PUBACK tracking for it.

A dead letter the broker refuses (its ACL denies the dead-letter topic: PUBACK 0x87) is
not a dead letter sent: the original message stays unacked and the dead letter is
published again after a backoff (``central/consumer/flush.py``).

Payload (``{prefix}/v1/_dead_letter/{client_id}``, QoS 1, not retained)::

    {"topic": "qihe/v1/qibin-taoyuan/gw1/seat/board-a.3",
     "reason": "payload: occupied: Input should be a valid boolean ...",
     "payload": "<the original payload as text, or base64 when it is not UTF-8>",
     "payload_encoding": "utf-8" | "base64",
     "received_at": "2026-11-28T01:02:03.456789Z"}
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from qihe.mqtt import PublishRefusedError

__all__ = ["PendingPublish", "PublishTracker", "dead_letter_payload"]


def dead_letter_payload(topic: str, reason: str, payload: bytes, received_at: datetime) -> bytes:
    try:
        text, encoding = payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(payload).decode("ascii"), "base64"
    document = {
        "topic": topic,
        "reason": reason,
        "payload": text,
        "payload_encoding": encoding,
        "received_at": received_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    return json.dumps(document, ensure_ascii=False).encode()


@dataclass(slots=True)
class PendingPublish:
    """One dead letter awaiting its PUBACK: ``done`` is set when it came, ``refused`` says
    whether the broker refused it (MQTT 5 reason 0x80 or above)."""

    mid: int
    done: threading.Event = field(default_factory=threading.Event)
    refused: PublishRefusedError | None = None


class PublishTracker:
    """Matches the broker's PUBACKs (paho's ``on_publish``, network thread) to our publishes.

    The PUBACK can arrive before the publishing thread registers interest in it,
    so an early completion (and its reason code) is remembered until :meth:`expect`
    asks for it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[int, PendingPublish] = {}
        self._early: dict[int, PublishRefusedError | None] = {}

    def expect(self, mid: int) -> PendingPublish:
        pending = PendingPublish(mid)
        with self._lock:
            if mid in self._early:
                pending.refused = self._early.pop(mid)
                pending.done.set()
            else:
                self._waiting[mid] = pending
        return pending

    def completed(self, mid: int, refused: PublishRefusedError | None = None) -> None:
        """The PUBACK of ``mid`` came; ``refused`` when its reason code refused the message."""
        with self._lock:
            pending = self._waiting.pop(mid, None)
            if pending is None:
                self._early[mid] = refused
        if pending is not None:
            pending.refused = refused
            pending.done.set()

    def forget(self, mid: int) -> None:
        with self._lock:
            self._waiting.pop(mid, None)
            self._early.pop(mid, None)
