"""One change of the live state, encoded once for every subscriber (server-sent events)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

__all__ = ["EventKind", "LiveEvent", "sse_frame"]

EventKind = Literal["ready", "site", "seat", "door", "device", "alerts", "resync"]


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """``kind`` and ``site`` let a subscription filter; ``data`` is the JSON sent as is."""

    kind: EventKind
    site: str | None
    version: int
    data: str

    @classmethod
    def build(
        cls, kind: EventKind, site: str | None, version: int, body: dict[str, object]
    ) -> LiveEvent:
        document: dict[str, object] = {"v": version}
        if site is not None:
            document["site"] = site
        for name, value in body.items():
            document[name] = _plain(value)
        return cls(
            kind, site, version, json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        )


def _plain(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def sse_frame(event: LiveEvent) -> bytes:
    """The event as a ``text/event-stream`` frame (the JSON never holds a raw newline)."""
    return f"id: {event.version}\nevent: {event.kind}\ndata: {event.data}\n\n".encode()
