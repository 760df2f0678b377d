"""PNG charts of the usage figures, for the monthly report and for people to paste elsewhere.

Each function takes a :class:`~central.usage.table.Table` (the contract every statistic
returns), draws one PNG and returns a :class:`ChartData` holding exactly the numbers it drew,
so tests (and the report) can check what is on the picture without reading pixels.

Drawing uses matplotlib's Agg canvas directly — no pyplot, no global figure state, no display —
and writes PNGs without a ``Software`` entry or a timestamp, so the same table gives the same
bytes on the same machine.

Chinese text needs a CJK font. :func:`find_cjk_font` looks for one among the fonts matplotlib
knows (Debian: ``fonts-wqy-microhei`` or ``fonts-noto-cjk``); without one, charts fall back to
English-only labels (site ids instead of site names) and log a warning once. A label whose
characters the chosen fonts cannot draw is replaced the same way: never empty boxes.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, MultipleLocator, PercentFormatter

from central.errors import CentralError
from central.usage.table import Table, Value

__all__ = [
    "ChartData",
    "ChartError",
    "ChartStyle",
    "chart_filename",
    "daily_visitors",
    "find_cjk_font",
    "hourly_profile",
    "utilisation_by_site",
]

log = logging.getLogger(__name__)

#: Families tried in order. Noto/Source Han first (best hinting), then what Debian, Windows
#: and macOS ship. Debian: ``apt-get install fonts-wqy-microhei`` (or ``fonts-noto-cjk``).
_CJK_FONT_CANDIDATES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Noto Sans SC",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
)
#: Latin fallback for glyphs the CJK font lacks; ships with matplotlib, so always present.
_LATIN_FONT = "DejaVu Sans"

#: At most this many sites get their own colour in :func:`daily_visitors`; the rest are summed.
_MAX_SITE_SERIES = 10
_OTHERS_ZH, _OTHERS_EN = "其他", "others"

_WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Colour-blind-safe-ish, print-friendly: matplotlib's tab10 in a fixed order, grey for "others".
_PALETTE = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#e45756",
    "#72b7b2",
    "#b279a2",
    "#eeca3b",
    "#9d755d",
    "#ff9da6",
    # tab10's own tenth colour is a grey, too close to "others".
    "#5d3a9b",
)
_OTHERS_COLOUR = "#8c8c8c"
_WEEKEND_COLOUR = "#f2f2f2"

# The Agg backend is the only one this module uses; saying so keeps an accidental pyplot
# import elsewhere from trying a display.
matplotlib.use("Agg")


class ChartError(CentralError, ValueError):
    """A table cannot be drawn as asked: wrong figure, missing column, unknown site, bad value."""


@dataclass(frozen=True, slots=True)
class ChartData:
    """What one chart shows. ``series`` holds exactly the numbers drawn, in ``x`` order
    (``None`` where nothing was drawn); ``notes`` say what a reader must know (sites summed
    into "others", English labels because no CJK font was found)."""

    path: Path
    title: str
    x: tuple[str, ...]
    series: dict[str, list[float | None]]
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class ChartStyle:
    """Font and size of the charts. ``cjk_font=None`` draws English-only labels.

    The default, 1200×600 px at 150 dpi, is 8×4 inches: half an A4 page in a report, with
    text still readable when printed.
    """

    cjk_font: str | None
    dpi: int = 150
    width_px: int = 1200
    height_px: int = 600

    @property
    def chinese(self) -> bool:
        return self.cjk_font is not None

    def text(self, zh: str, en: str) -> str:
        """Chinese first with English, or English alone without a CJK font."""
        return f"{zh} {en}" if self.chinese else en

    def site_label(self, site: str, site_name: str | None) -> str:
        """The site's (Chinese) name when it can be drawn, else its ASCII id."""
        if self.cjk_font is not None and site_name and _can_draw(self.cjk_font, site_name):
            return site_name
        return site

    def rc(self) -> AbstractContextManager[None]:
        """matplotlib settings for drawing in this style, as a context."""
        families = [self.cjk_font, _LATIN_FONT] if self.cjk_font else [_LATIN_FONT]
        # A literal here (not a dict built elsewhere) so mypy checks the keys against
        # matplotlib's typed rcParams names.
        return matplotlib.rc_context(
            {
                "font.family": "sans-serif",
                "font.sans-serif": families,
                # The CJK fonts lack U+2212; a hyphen-minus is drawn by every font.
                "axes.unicode_minus": False,
                # Names come from config: "$" in one is a dollar sign, not mathtext.
                "text.parse_math": False,
                "font.size": 9,
                "axes.titlesize": 12,
                "axes.spines.top": False,
                "axes.spines.right": False,
            }
        )


@functools.cache
def find_cjk_font() -> str | None:
    """The first of the CJK font families above that matplotlib can use, or ``None``.

    Cached: the answer cannot change while the process runs (matplotlib reads fonts once).
    Logs a warning once when there is none.
    """
    known = {entry.name for entry in font_manager.fontManager.ttflist}
    for family in _CJK_FONT_CANDIDATES:
        if family in known:
            return family
    log.warning(
        "no CJK font found (tried %s); charts use English labels only. "
        "Install one, e.g. apt-get install fonts-wqy-microhei",
        ", ".join(_CJK_FONT_CANDIDATES),
    )
    return None


def _default_style() -> ChartStyle:
    """The report's style with this machine's CJK font (or English-only without one)."""
    return ChartStyle(cjk_font=find_cjk_font())


@functools.cache
def _charmap(family: str) -> frozenset[int]:
    """Code points ``family`` has glyphs for (raises ValueError for an unknown family)."""
    path = font_manager.findfont(
        font_manager.FontProperties(family=family), fallback_to_default=False
    )
    return frozenset(FT2Font(path).get_charmap())


@functools.cache
def _drawable(family: str) -> frozenset[int]:
    return _charmap(family) | _charmap(_LATIN_FONT)


def _can_draw(family: str, text: str) -> bool:
    """True when every character has a glyph in ``family`` or the Latin fallback."""
    drawable = _drawable(family)
    return all(ord(ch) in drawable or ch.isspace() for ch in text)


# -- charts ---------------------------------------------------------------------------------


def hourly_profile(
    table: Table,
    path: Path,
    *,
    site: str,
    weekday: int | None = None,
    style: ChartStyle | None = None,
) -> ChartData:
    """A site's typical day from a ``typical`` table, like the "popular times" of map apps.

    Hours 0–23 on x; the typical (median) percent of seats occupied as a line, the usual range
    (25th–75th percentile) as a band. ``weekday`` (0 = Monday) picks one day; ``None`` draws
    the mean over the weekdays the table has for each hour (rows whose ``weekday`` is
    ``None``, if the table has them, are taken as the all-days figure instead). Hours without
    a row (closed) are gaps, ``None`` in ``series``.
    """
    style = style or _default_style()
    _require(table, "site", "site_name", "weekday", "hour", "low", "typical", "high")
    if weekday is not None and not 0 <= weekday <= 6:
        raise ChartError(f"weekday must be 0 (Monday) to 6 (Sunday), not {weekday}")
    rows = [row for row in table.rows if row.get("site") == site]
    if not rows:
        raise ChartError(f"table {table.name!r} has no rows for site {site!r}")
    site_name = _text(rows[0].get("site_name"))

    notes: list[str] = []
    if weekday is not None:
        chosen = [row for row in rows if row.get("weekday") == weekday]
        day = style.text(_WEEKDAYS_ZH[weekday], _WEEKDAYS_EN[weekday])
    elif any(row.get("weekday") is None for row in rows):
        chosen = [row for row in rows if row.get("weekday") is None]
        day = style.text("全周", "all days")
    else:
        chosen = rows
        day = style.text("全周", "all days")
        if len({row.get("weekday") for row in rows}) > 1:
            notes.append(
                style.text("各星期几的平均值。", "Mean of the weekdays' figures for each hour.")
            )

    series: dict[str, list[float | None]] = {"low": [], "typical": [], "high": []}
    for hour in range(24):
        at_hour = [row for row in chosen if row.get("hour") == hour]
        for key, values in series.items():
            values.append(_mean(_number(table, row, key) for row in at_hour))

    hours = tuple(str(hour) for hour in range(24))
    label = style.site_label(site, site_name)
    title = f"{style.text('各时段座位占用', 'Seats occupied by hour')} — {label} · {day}"
    with style.rc():
        fig, ax = _figure(style)
        xs = list(range(24))
        low, typical, high = (_nan(series[key]) for key in ("low", "typical", "high"))
        ax.fill_between(
            xs,
            low,
            high,
            where=[not (math.isnan(a) or math.isnan(b)) for a, b in zip(low, high, strict=True)],
            interpolate=False,
            color=_PALETTE[0],
            alpha=0.22,
            linewidth=0,
            label=style.text("常见范围", "usual range") + " (25–75%)",
        )
        ax.plot(
            xs,
            typical,
            color=_PALETTE[0],
            linewidth=2,
            marker="o",
            markersize=3.5,
            label=style.text("典型", "typical") + " (" + style.text("中位数", "median") + ")",
        )
        ax.set_xlim(-0.5, 23.5)
        ax.set_xticks(xs, hours)
        ax.set_ylim(0, 100)
        ax.yaxis.set_major_locator(MultipleLocator(25))
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=100, decimals=0))
        ax.grid(axis="y", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_xlabel(style.text("时段", "Hour of day") + " (8 = 08:00–09:00)")
        ax.set_ylabel(style.text("座位占用", "Seats occupied") + " (%)")
        ax.set_title(title, loc="left")
        if all(value is None for value in series["typical"]):
            _no_data(ax, style)
        else:
            ax.legend(loc="upper left", frameon=False)
        _save(fig, path, style)
    return ChartData(path, title, hours, series, _font_notes(style, notes))


def daily_visitors(table: Table, path: Path, *, style: ChartStyle | None = None) -> ChartData:
    """Visitors per day from a ``visitors`` table by day: stacked bars, one colour per site.

    Stacked rather than grouped: a month is ~30 days, and 30 groups of up to 10 thin bars
    cannot be read, while a stack shows each day's total and each site's share at once.
    Sites are ordered by their total (largest at the bottom of the stack and first in
    ``series``); beyond ten sites, the rest are summed into "others".
    Weekends are shaded. A day a site has no row for is ``None`` in its series.
    """
    style = style or _default_style()
    _require(table, "site", "site_name", "period", "visitors")
    periods = sorted({_period(table, row.get("period")) for row in table.rows}, key=_period_key)
    index = {period: i for i, period in enumerate(periods)}

    names: dict[str, str] = {}
    counts: dict[str, list[float | None]] = {}
    for row in table.rows:
        site = _text(row.get("site"))
        names.setdefault(site, _text(row.get("site_name")))
        values = counts.setdefault(site, [None] * len(periods))
        value = _number(table, row, "visitors")
        slot = index[_period(table, row.get("period"))]
        if value is not None:
            values[slot] = (values[slot] or 0.0) + value

    by_total = sorted(counts, key=lambda site: (-sum(v or 0.0 for v in counts[site]), site))
    shown, rest = by_total[:_MAX_SITE_SERIES], by_total[_MAX_SITE_SERIES:]
    notes: list[str] = []
    series: dict[str, list[float | None]] = {}
    for site in shown:
        series[_unique(series, style.site_label(site, names[site]), site)] = counts[site]
    if rest:
        others: list[float | None] = [
            _sum(counts[site][i] for site in rest) for i in range(len(periods))
        ]
        series[style.text(_OTHERS_ZH, _OTHERS_EN)] = others
        notes.append(
            style.text(
                f"访客最多的 {len(shown)} 个站点单列，其余 {len(rest)} 个合并为“其他”。",
                f"The {len(shown)} busiest sites are shown; {len(rest)} more are summed"
                " as “others”.",
            )
        )

    x = tuple(_day_label(period) for period in periods)
    title = style.text("每日访客", "Daily visitors")
    with style.rc():
        fig, ax = _figure(style)
        xs = list(range(len(periods)))
        for i, period in enumerate(periods):
            if _is_weekend(period):
                ax.axvspan(i - 0.5, i + 0.5, color=_WEEKEND_COLOUR, linewidth=0, zorder=0)
        bottom = [0.0] * len(periods)
        handles: list[Any] = []
        for n, values in enumerate(series.values()):
            heights = [v or 0.0 for v in values]
            colour = _OTHERS_COLOUR if rest and n == len(series) - 1 else _PALETTE[n]
            handles.append(ax.bar(xs, heights, 0.75, bottom=bottom, color=colour, zorder=2))
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        ax.set_xticks(xs, x, rotation=90 if len(x) > 16 else 0)
        ax.set_xlim(-0.6, max(len(periods), 1) - 0.4)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", color="#dddddd", linewidth=0.6, zorder=1)
        ax.set_axisbelow(True)
        ax.set_xlabel(style.text("日期", "Date"))
        ax.set_ylabel(style.text("访客", "Visitors") + " (" + style.text("人", "people") + ")")
        ax.set_title(title, loc="left")
        if series:
            # Handles passed explicitly: matplotlib would drop a label starting with "_".
            # Top to bottom in the order the stack reads top to bottom.
            handles, labels = handles[::-1], [_shorten(label) for label in series][::-1]
            if any(_is_weekend(period) for period in periods):
                handles.append(Patch(facecolor=_WEEKEND_COLOUR, edgecolor="#cccccc"))
                labels.append(style.text("周末", "weekend"))
            fig.legend(handles, labels, loc="outside right upper", frameon=False)
        else:
            _no_data(ax, style)
        _save(fig, path, style)
    return ChartData(path, title, x, series, _font_notes(style, notes))


def utilisation_by_site(table: Table, path: Path, *, style: ChartStyle | None = None) -> ChartData:
    """Seat utilisation per site from a per-site ``utilisation`` table: horizontal bars,
    highest at the top, on a 0–100 % axis. ``x`` and ``series["utilisation"]`` list the
    sites top to bottom; a site without a figure (no opening hours) is last, ``None``.
    """
    style = style or _default_style()
    _require(table, "site", "site_name", "utilisation")
    if any(column.key == "seat" for column in table.columns):
        raise ChartError(
            f"table {table.name!r} is per seat; utilisation_by_site draws the per-site table"
        )
    entries = [
        (_text(row.get("site")), _text(row.get("site_name")), _number(table, row, "utilisation"))
        for row in table.rows
    ]
    entries.sort(key=lambda e: (e[2] is None, -(e[2] or 0.0), e[0]))
    labels: list[str] = []
    for site, name, _ in entries:
        labels.append(_unique(labels, style.site_label(site, name), site))
    values: list[float | None] = [value for _, _, value in entries]

    title = style.text("座位利用率", "Seat utilisation")
    # One bar needs ~40 px; a long district list grows the picture instead of squeezing it.
    height = max(style.height_px, 140 + 40 * len(entries))
    with style.rc():
        fig, ax = _figure(style, height_px=height)
        ys = list(range(len(entries)))[::-1]
        ax.barh(ys, [v or 0.0 for v in values], 0.65, color=_PALETTE[0], zorder=2)
        for y, value in zip(ys, values, strict=True):
            text = f"{value:.1f}%" if value is not None else style.text("无数据", "no data")
            ax.text((value or 0.0) + 1, y, text, va="center", fontsize=8)
        ax.set_yticks(ys, labels)
        ax.set_ylim(-0.6, max(len(entries), 1) - 0.4)
        ax.set_xlim(0, 100)
        ax.xaxis.set_major_locator(MultipleLocator(20))
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=100, decimals=0))
        ax.grid(axis="x", color="#dddddd", linewidth=0.6, zorder=1)
        ax.set_axisbelow(True)
        ax.set_xlabel(style.text("座位利用率", "Seat utilisation") + " (%)")
        ax.set_title(title, loc="left")
        if not entries:
            _no_data(ax, style)
        _save(fig, path, style)
    return ChartData(path, title, tuple(labels), {"utilisation": values}, _font_notes(style, []))


# -- helpers --------------------------------------------------------------------------------


def _figure(style: ChartStyle, *, height_px: int | None = None) -> tuple[Figure, Any]:
    fig = Figure(
        figsize=(style.width_px / style.dpi, (height_px or style.height_px) / style.dpi),
        dpi=style.dpi,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path, style: ChartStyle) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # No "Software" entry (it names the matplotlib version): same table, same bytes.
    fig.savefig(path, format="png", dpi=style.dpi, metadata={"Software": None})


def _no_data(ax: Any, style: ChartStyle) -> None:
    ax.text(
        0.5,
        0.5,
        style.text("无数据", "No data"),
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=14,
        color="#888888",
    )


def _font_notes(style: ChartStyle, notes: list[str]) -> tuple[str, ...]:
    if not style.chinese:
        notes.append("No CJK font was found: labels are in English and sites are shown by id.")
    return tuple(notes)


def _require(table: Table, *keys: str) -> None:
    have = {column.key for column in table.columns}
    missing = [key for key in keys if key not in have]
    if missing:
        raise ChartError(f"table {table.name!r} has no column {', '.join(missing)}")


def _number(table: Table, row: dict[str, Value], key: str) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ChartError(f"table {table.name!r}: {key} = {value!r} is not a number")
    return None if math.isnan(value) else float(value)


def _text(value: Value) -> str:
    return "" if value is None else str(value)


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _sum(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _nan(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else v for v in values]


def _shorten(label: str, limit: int = 18) -> str:
    """A legend entry short enough not to squeeze the plot; ``series`` keeps the full name."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _unique(taken: Iterable[str], label: str, site: str) -> str:
    """Two sites with the same name keep apart by their id."""
    return f"{label} ({site})" if label in set(taken) else label


def _period(table: Table, value: Value) -> datetime | str:
    if isinstance(value, datetime | str):
        return value
    raise ChartError(f"table {table.name!r}: period = {value!r} is not a date")


def _period_key(period: datetime | str) -> tuple[int, float, str]:
    # Periods are datetimes (the contract), text only from a hand-made table; never compare
    # the two kinds with each other.
    if isinstance(period, datetime):
        return (0, period.timestamp(), "")
    return (1, 0.0, period)


def _day_label(period: datetime | str) -> str:
    return period.strftime("%m-%d") if isinstance(period, date) else period


def _is_weekend(period: datetime | str) -> bool:
    return isinstance(period, date) and period.weekday() >= 5


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def chart_filename(stem: str) -> str:
    """A file name for a chart from an id that may come from config: ASCII, no separators."""
    return (_UNSAFE.sub("-", stem).strip("-.") or "chart") + ".png"
