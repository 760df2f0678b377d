"""A small reader of the live service's event stream (tests, benchmarks, scripts)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["StreamEvent", "read_events"]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    kind: str
    data: dict[str, Any]


async def read_events(
    client: httpx.AsyncClient, url: str, **params: str
) -> AsyncIterator[StreamEvent]:
    """Yield the events of ``GET url`` (``text/event-stream``) as they arrive."""
    async with client.stream("GET", url, params=params, timeout=None) as response:
        response.raise_for_status()
        kind, data = "message", ""
        async for line in response.aiter_lines():
            if line == "":
                if data:
                    yield StreamEvent(kind, json.loads(data))
                kind, data = "message", ""
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
