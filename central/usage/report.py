"""The monthly usage report: one self-contained HTML file a district office can open, print,
mail or archive.

Charts are embedded as ``data:`` URIs rather than linked: the report is one file that keeps
working when it is attached to a mail, copied to a USB stick or uploaded to an OA system,
where PNGs beside it would be lost. The ~33 % base64 overhead on a few 60 kB PNGs is cheap.
The PNGs stay where the charts were drawn for anyone who wants them on slides.

Nothing is loaded from elsewhere (no fonts, scripts or styles from the network); the page is
Chinese first with English beside it, and its CSS prints on A4 with table headers repeated on
every page. Everything that comes from config or data — site names above all — is escaped.
"""

from __future__ import annotations

import base64
import calendar
import html
import math
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path

from central.usage.charts import ChartData
from central.usage.table import WEEKDAYS, Column, Table, Value

__all__ = ["render_table_html", "write_monthly_report"]

_FILENAME = "report.html"

_MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
#: Columns holding a weekday as 0 (Monday) .. 6: shown as a name, not a programmer's number.
_WEEKDAY_KEYS = frozenset({"weekday", "busiest_weekday"})
_NUMERIC_KINDS = frozenset({"int", "float", "percent"})

_CSS = """
@page { size: A4; margin: 14mm 12mm; }
:root { color-scheme: light; }
body {
  font-family: "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei",
    "WenQuanYi Micro Hei", sans-serif;
  color: #222; line-height: 1.5; max-width: 62em; margin: 2em auto; padding: 0 1em;
}
h1 { font-size: 1.6em; margin: 0; }
h2 { font-size: 1.3em; border-bottom: 2px solid #4c78a8; margin-top: 2em; }
.en { color: #555; font-weight: normal; }
header .en { font-size: 1.1em; margin: 0.2em 0; }
.period { color: #555; }
nav h3 { font-size: 1em; margin: 0.8em 0 0.2em; }
nav ol { columns: 2; padding-left: 1.5em; margin: 0; }
a { color: #2b5d8f; }
figure { margin: 1.5em 0; break-inside: avoid; page-break-inside: avoid; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.95em; }
section.table { margin: 1.5em 0 2em; }
table { border-collapse: collapse; width: 100%; font-size: 0.88em; }
caption { text-align: left; font-size: 1.15em; font-weight: bold; padding: 0.3em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; }
th { background: #f1f4f8; text-align: left; vertical-align: bottom; font-weight: 600; }
th .en, th .unit { display: block; font-size: 0.85em; }
th .unit { color: #777; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.na, td.empty { color: #999; text-align: center; }
tbody tr:nth-child(even) { background: #fafafa; }
thead { display: table-header-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
.notes { font-size: 0.9em; color: #444; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; }
  nav { display: none; }
  a { color: inherit; text-decoration: none; }
  #tables > h2 { break-before: page; page-break-before: always; }
  tbody tr:nth-child(even) { background: none; }
}
""".strip()


def write_monthly_report(
    *,
    district: str,
    month: date,
    tables: Mapping[str, Table],
    charts: Sequence[ChartData],
    out_dir: Path,
    progress: Callable[[str, int, int], None] | None = None,
    district_en: str | None = None,
) -> Path:
    """Write ``report.html`` into ``out_dir`` (created if needed) and return its path.

    The report has a bilingual title for ``district`` and ``month`` (any day of the month),
    the ``charts`` (embedded, in the given order), then each of ``tables`` in mapping order
    with its notes. ``district_en`` names the district in the English title (default: the
    same as ``district``).

    ``progress(step_name, done, total)`` is called after each of ``len(charts) + len(tables)
    + 1`` steps — one per chart, one per table, one for writing the file; ``done`` runs
    1..``total``. The file is written to a temporary name
    and renamed, so a reader never sees half a report.
    """
    total = len(charts) + len(tables) + 1
    done = 0

    def step(name: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(name, done, total)

    title_zh = f"{district} {month.year}年{month.month}月 使用情况月报"
    title_en = f"{district_en or district} usage report, {_MONTHS_EN[month.month - 1]} {month.year}"
    last_day = calendar.monthrange(month.year, month.month)[1]
    first, last = month.replace(day=1), month.replace(day=last_day)

    figures: list[str] = []
    for i, chart in enumerate(charts, 1):
        figures.append(_figure_html(chart, f"chart-{i}"))
        step(f"报告 report: 图表 chart {chart.path.name}")
    sections: list[str] = []
    for i, table in enumerate(tables.values(), 1):
        sections.append(_table_section_html(table, f"table-{i}"))
        step(f"报告 report: 表格 table {table.name}")

    contents = ""
    if charts:
        items = "".join(
            f'<li><a href="#chart-{i}">{_e(chart.title)}</a></li>'
            for i, chart in enumerate(charts, 1)
        )
        contents += f'<h3>图表 <span class="en" lang="en">Charts</span></h3><ol>{items}</ol>'
    if tables:
        items = "".join(
            f'<li><a href="#table-{i}">{_e(table.title_zh)} '
            f'<span class="en" lang="en">{_e(table.title_en)}</span></a></li>'
            for i, table in enumerate(tables.values(), 1)
        )
        contents += f'<h3>数据表 <span class="en" lang="en">Tables</span></h3><ol>{items}</ol>'
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title_zh)} / {_e(title_en)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(title_zh)}</h1>",
        f'<p class="en" lang="en">{_e(title_en)}</p>',
        f'<p class="period">统计期间 <span class="en" lang="en">Period</span>: '
        f"{first.isoformat()} – {last.isoformat()}</p>",
        "</header>",
        '<nav><h2>目录 <span class="en" lang="en">Contents</span></h2>',
        contents or "<p>—</p>",
        "</nav>",
    ]
    if figures:
        parts += [
            '<section id="charts">',
            '<h2>图表 <span class="en" lang="en">Charts</span></h2>',
            *figures,
            "</section>",
        ]
    if sections:
        parts += [
            '<section id="tables">',
            '<h2>数据表 <span class="en" lang="en">Tables</span></h2>',
            *sections,
            "</section>",
        ]
    parts += ["</body>", "</html>", ""]

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / _FILENAME
    partial = out_dir / f".{_FILENAME}.partial"
    partial.write_text("\n".join(parts), encoding="utf-8")
    os.replace(partial, path)
    step(f"报告 report: 写入 write {path.name}")
    return path


def render_table_html(table: Table) -> str:
    """One figure as an HTML ``<table>``: its titles as the caption, bilingual headers with
    units, values formatted by column kind (numbers right-aligned, ``—`` for no value).

    Units are in the headers only, as tables print them, not repeated in every cell. Notes
    are not part of the table; :func:`write_monthly_report` lists them below it.
    """
    dates_only = {
        column.key: _all_midnight(table.values(column.key))
        for column in table.columns
        if column.kind == "time"
    }
    head = "".join(_header_html(column) for column in table.columns)
    body: list[str] = []
    for row in table.rows:
        cells = []
        for column in table.columns:
            value = row.get(column.key)
            classes = ["num"] if column.kind in _NUMERIC_KINDS else []
            if value is None:
                classes.append("na")
            text = _format(value, column, dates_only=dates_only.get(column.key, False))
            attr = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attr}>{_e(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        body.append(
            f'<tr><td class="empty" colspan="{max(len(table.columns), 1)}">'
            '无数据 <span class="en" lang="en">No data</span></td></tr>'
        )
    return (
        f'<table class="figure" data-figure="{_e(table.name)}">'
        f'<caption>{_e(table.title_zh)} <span class="en" lang="en">{_e(table.title_en)}'
        "</span></caption>"
        f"<thead><tr>{head}</tr></thead>"
        f"<tbody>\n{chr(10).join(body)}\n</tbody></table>"
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _header_html(column: Column) -> str:
    cls = ' class="num"' if column.kind in _NUMERIC_KINDS else ""
    unit = f'<span class="unit">({_e(column.unit)})</span>' if column.unit else ""
    return (
        f'<th scope="col"{cls}>{_e(column.zh)}'
        f'<span class="en" lang="en">{_e(column.en)}</span>{unit}</th>'
    )


def _figure_html(chart: ChartData, anchor: str) -> str:
    # The title is drawn in the picture; the caption carries only what the picture cannot.
    data = base64.b64encode(chart.path.read_bytes()).decode("ascii")
    notes = "<br>".join(_e(note) for note in chart.notes)
    caption = f"<figcaption>{notes}</figcaption>" if notes else ""
    return (
        f'<figure id="{anchor}">'
        f'<img src="data:image/png;base64,{data}" alt="{_e(chart.title)}">{caption}</figure>'
    )


def _table_section_html(table: Table, anchor: str) -> str:
    notes = ""
    if table.notes:
        items = "".join(f"<li>{_e(note)}</li>" for note in table.notes)
        notes = (
            '<div class="notes"><strong>说明 <span class="en" lang="en">Notes</span></strong>'
            f"<ul>{items}</ul></div>"
        )
    return f'<section class="table" id="{anchor}">{render_table_html(table)}{notes}</section>'


def _all_midnight(values: list[Value]) -> bool:
    times = [v for v in values if isinstance(v, datetime)]
    return bool(times) and all(
        (v.hour, v.minute, v.second, v.microsecond) == (0, 0, 0, 0) for v in times
    )


def _format(value: Value, column: Column, *, dates_only: bool) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d" if dates_only else "%Y-%m-%d %H:%M")
    if isinstance(value, int) and column.key in _WEEKDAY_KEYS and 0 <= value <= 6:
        return WEEKDAYS[value]
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{round(value):,}" if column.kind == "int" else f"{value:,.1f}"
    return value
