"""Dead letters: the JSON a refused message is republished as, and PUBACK tracking for it.

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
from datetime import UTC, datetime

__all__ = ["PublishTracker", "dead_letter_payload"]


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


class PublishTracker:
    """Matches the broker's PUBACKs (paho's ``on_publish``, network thread) to our publishes.

    The PUBACK can arrive before the publishing thread registers interest in it,
    so an early completion is remembered until :meth:`expect` asks for it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[int, threading.Event] = {}
        self._early: set[int] = set()

    def expect(self, mid: int) -> threading.Event:
        event = threading.Event()
        with self._lock:
            if mid in self._early:
                self._early.discard(mid)
                event.set()
            else:
                self._waiting[mid] = event
        return event

    def completed(self, mid: int) -> None:
        with self._lock:
            event = self._waiting.pop(mid, None)
            if event is None:
                self._early.add(mid)
        if event is not None:
            event.set()

    def forget(self, mid: int) -> None:
        with self._lock:
            self._waiting.pop(mid, None)
            self._early.discard(mid)
