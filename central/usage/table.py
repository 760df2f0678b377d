"""A figure as people read it: a titled table with typed, bilingual columns.

Every statistic (:mod:`central.usage.figures`) returns a :class:`Table`; the command prints it,
writes it as CSV or JSON, or draws it (:mod:`central.usage.charts`). Values are plain Python
(str, int, float, None, datetime) so every output format is a small function of the same data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = ["WEEKDAYS", "Column", "Table", "Value"]

Value = str | int | float | datetime | None

#: Weekdays as tables show them, Monday (0) first.
WEEKDAYS = ("周一 Mon", "周二 Tue", "周三 Wed", "周四 Thu", "周五 Fri", "周六 Sat", "周日 Sun")


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    zh: str
    en: str
    #: Shown after the value and in headers: "人", "座位小时 seat-h", "%", "min".
    unit: str = ""
    kind: Literal["text", "int", "float", "percent", "time"] = "text"


@dataclass(frozen=True, slots=True)
class Table:
    """``rows`` are dicts keyed by column ``key``; ``notes`` say what a reader must know
    (gaps in the data, counter resets, hours not configured)."""

    name: str
    title_zh: str
    title_en: str
    columns: tuple[Column, ...]
    rows: tuple[dict[str, Value], ...]
    notes: tuple[str, ...] = field(default=())

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)

    def values(self, key: str) -> list[Value]:
        return [row.get(key) for row in self.rows]
