"""A :class:`~central.usage.table.Table` as people read it outside a report: an aligned terminal
table, CSV for spreadsheets, JSON for programs (``qihe stats FIGURE --format``)."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from datetime import datetime, time

from central.usage.table import Table, Value

__all__ = ["render_csv", "render_json", "render_table"]


def _width(text: str) -> int:
    """Terminal columns: East Asian wide and full-width characters take two."""
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in text
    )


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * (width - _width(text))
    return gap + text if right else text + gap


def _plain(value: Value) -> str:
    """CSV and JSON: ISO times in the value's own (local) zone, empty for no value."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _header(zh: str, en: str, unit: str) -> str:
    return f"{zh} {en}" + (f" ({unit})" if unit else "")


def render_csv(table: Table) -> bytes:
    """UTF-8 with a BOM (so Excel reads Chinese right), one header row "中文 English (unit)"."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_header(c.zh, c.en, c.unit) for c in table.columns)
    for row in table.rows:
        writer.writerow(_plain(row.get(c.key)) for c in table.columns)
    return b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")


def render_json(table: Table) -> str:
    """A list of row dicts keyed by column key; times ISO 8601 with their local offset."""
    rows = [
        {
            c.key: (v.isoformat() if isinstance(v := row.get(c.key), datetime) else v)
            for c in table.columns
        }
        for row in table.rows
    ]
    return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"


def render_table(table: Table) -> str:
    """An aligned terminal table: title, Chinese and English header lines, rows, notes."""
    dates_only = {
        c.key
        for c in table.columns
        if c.kind == "time"
        and all(isinstance(v, datetime) and v.time() == time(0) for v in table.values(c.key))
    }

    def cell(key: str, value: Value) -> str:
        if value is None:
            return "-"
        if isinstance(value, datetime):
            return f"{value:%Y-%m-%d}" if key in dates_only else f"{value:%Y-%m-%d %H:%M}"
        return str(value)

    heads_zh = [c.zh + (f" ({c.unit})" if c.unit else "") for c in table.columns]
    heads_en = [c.en for c in table.columns]
    body = [[cell(c.key, row.get(c.key)) for c in table.columns] for row in table.rows]
    widths = [
        max(_width(t) for t in (heads_zh[i], heads_en[i], *(r[i] for r in body)))
        for i in range(len(table.columns))
    ]
    right = [c.kind in ("int", "float", "percent") for c in table.columns]

    def line(texts: list[str], numeric: list[bool]) -> str:
        cells = (_pad(t, w, r) for t, w, r in zip(texts, widths, numeric, strict=True))
        return "  ".join(cells).rstrip()

    no_align = [False] * len(widths)
    lines = [f"{table.title_zh} {table.title_en}", line(heads_zh, right), line(heads_en, right)]
    lines.append(line(["-" * w for w in widths], no_align))
    lines += [line(r, right) for r in body]
    if not body:
        lines.append("(无数据 no rows)")
    lines += [f"注 note: {note}" for note in table.notes]
    return "\n".join(lines) + "\n"
