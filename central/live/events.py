"""One change of the live state, encoded once for every subscriber (server-sent events)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel

__all__ = ["EventKind", "LiveEvent"]

EventKind = Literal["ready", "site", "seat", "door", "device", "alerts", "air", "resync"]


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """``kind`` and ``site`` let a subscription filter; ``data`` is the JSON sent as is."""

    kind: EventKind
    site: str | None
    version: int
    data: str
    #: The whole ``text/event-stream`` frame, encoded once however many streams send it
    #: (the JSON never holds a raw newline).
    frame: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        frame = f"id: {self.version}\nevent: {self.kind}\ndata: {self.data}\n\n".encode()
        object.__setattr__(self, "frame", frame)

    @classmethod
    def build(
        cls, kind: EventKind, site: str | None, version: int, body: dict[str, object]
    ) -> LiveEvent:
        # The document {"v": version, "site": site, **body} written piece by piece: models
        # serialise themselves (pydantic's JSON is json.dumps's compact form, in a fifth of
        # the time of model_dump + json.dumps).
        parts = [f'{{"v":{version}']
        if site is not None:
            parts.append(f',"site":{_dumps(site)}')
        for name, value in body.items():
            parts.append(f",{_dumps(name)}:{_json(value)}")
        parts.append("}")
        return cls(kind, site, version, "".join(parts))


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dumps(value: object) -> str:
    if isinstance(value, str):
        return _quoted(value)
    return _ENCODER.encode(value)


@lru_cache(maxsize=4096)
def _quoted(text: str) -> str:
    """Site ids and field names, again and again."""
    return _ENCODER.encode(text)


def _json(value: object) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json(by_alias=True)
    if isinstance(value, tuple | list):
        return "[" + ",".join(_json(v) for v in value) + "]"
    return _dumps(value)
