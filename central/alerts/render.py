"""The text people read: Chinese first, then English; markdown for the robots, plain for the log.

Operators read Chinese, so every phrase is ``中文 / English``. Times are shown in local time
(Asia/Shanghai) as ``%m-%d %H:%M``: maintenance staff compare them with the wall clock, not
with UTC. A single notification reads::

    ### 【告警】淇河书屋·馨苑二区站 2 条告警 / 2 alerts firing
    🔴 网关离线 / Gateway offline · 起于 / since 11-28 19:40
    🟠 电池电压低 / Battery low · 起于 / since 11-28 19:41 · 值 / value 3.3

A digest (several sites in one message, see ``RouteWorker``) has one bold line per site
before its alerts. Nothing here may raise on odd input: names come from a hand-edited site
directory and summaries from rules, so control characters are flattened, over-long fields
clipped, and characters the robots' markdown would interpret are replaced by their
full-width look-alikes (WeCom and DingTalk have no reliable backslash escape).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from central.alerts.model import Alert, Notification

__all__ = [
    "SHANGHAI",
    "alert_text",
    "markdown",
    "one_line",
    "title",
]

SHANGHAI = ZoneInfo("Asia/Shanghai")

_ICONS = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
_RESOLVED_ICON = "✅"
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
#: Longest site name / summary shown; the rest of a message stays readable on a phone.
_MAX_NAME = 60
_MAX_SUMMARY = 200
_MAX_ID = 64

# Markdown that WeCom or DingTalk interpret (emphasis, code, links, headings, quotes,
# <font>/<@userid> tags, tables). "_" is left alone: ids such as gw_taoyuan_01 must stay
# copyable, and an underscore inside a word does not start emphasis.
_MARKDOWN_LOOKALIKES = str.maketrans(
    {
        "*": "＊",
        "`": "｀",
        "[": "［",
        "]": "］",
        "<": "＜",
        ">": "＞",
        "#": "＃",
        "|": "｜",
        "~": "～",
    }
)


def _flat(text: str) -> str:
    """Control characters (newlines included) become spaces: one alert stays one line."""
    return "".join(" " if ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 else ch for ch in text).strip()


def one_line(text: str) -> str:
    """``text`` as one plain line (a log line no name can split or forge)."""
    return _flat(text)


def _clip(text: str, limit: int) -> str:
    text = _flat(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape_markdown(text: str) -> str:
    """``text`` as literal markdown for WeCom/DingTalk: one line, no active syntax."""
    return _flat(text).translate(_MARKDOWN_LOOKALIKES)


def _clip_bytes(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never in the middle of a character."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    return data[: max(0, max_bytes - 3)].decode(errors="ignore") + "…"


def _local(when: datetime, tz: tzinfo) -> str:
    return when.astimezone(tz).strftime("%m-%d %H:%M")


def _value(value: float) -> str:
    return f"{value:g}" if math.isfinite(value) else str(value)


def _alerts_en(count: int) -> str:
    return "1 alert" if count == 1 else f"{count} alerts"


def title(notifications: Sequence[Notification]) -> str:
    """The headline (plain text): what, where, how many.

    E.g. ``【告警】淇河书屋·馨苑二区站 2 条告警 / 2 alerts firing``.
    """
    firing = sum(len(n.firing) for n in notifications)
    resolved = sum(len(n.resolved) for n in notifications)
    if len(notifications) == 1:
        where = _clip(notifications[0].site_name, _MAX_NAME)
        if firing and resolved:
            return (
                f"【告警】{where} {firing} 条告警，{resolved} 条已恢复"
                f" / {firing} firing, {resolved} resolved"
            )
        if firing or not resolved:
            return f"【告警】{where} {firing} 条告警 / {_alerts_en(firing)} firing"
        return f"【恢复】{where} {resolved} 条告警已恢复 / {_alerts_en(resolved)} resolved"
    sites = len(notifications)
    if firing == 0:
        return (
            f"【恢复汇总】{sites} 个站点 {resolved} 条告警已恢复"
            f" / {sites} sites: {_alerts_en(resolved)} resolved"
        )
    zh = f"【告警汇总】{sites} 个站点 {firing} 条告警"
    en = f"{sites} sites: {_alerts_en(firing)} firing"
    if resolved:
        zh += f"，{resolved} 条已恢复"
        en += f", {resolved} resolved"
    return f"{zh} / {en}"


def _ordered(notification: Notification) -> list[Alert]:
    firing = sorted(notification.firing, key=lambda a: _SEVERITY_ORDER.get(a.severity, 9))
    return [*firing, *notification.resolved]


def _where(alert: Alert) -> str:
    parts = [p for p in (alert.gateway, alert.device, alert.sensor) if p]
    return " › ".join(_clip(p, _MAX_ID) for p in parts)


def alert_text(alert: Alert, *, tz: tzinfo = SHANGHAI, markdown: bool = False) -> str:
    """One alert on one line: icon, summary (zh / en), since or until when, value, where."""
    esc = _escape_markdown if markdown else _flat
    icon = _RESOLVED_ICON if alert.state == "resolved" else _ICONS.get(alert.severity, "⚪")
    summary = esc(_clip(alert.summary_zh, _MAX_SUMMARY))
    summary_en = esc(_clip(alert.summary_en, _MAX_SUMMARY))
    parts = [f"{icon} {summary} / {summary_en}"]
    if alert.state == "resolved":
        ended = alert.ends_at
        parts.append(f"恢复于 / resolved {_local(ended, tz)}" if ended else "已恢复 / resolved")
    else:
        parts.append(f"起于 / since {_local(alert.starts_at, tz)}")
    if alert.value is not None:
        parts.append(f"值 / value {_value(alert.value)}")
    where = _where(alert)
    if where:
        parts.append(esc(where))
    return " · ".join(parts)


def _more_line(count: int) -> str:
    """The last line of a truncated message."""
    return f"…以及另外 {count} 条 / and {count} more"


def markdown(
    notifications: Sequence[Notification],
    *,
    max_bytes: int,
    line_break: str = "\n",
    footer: str = "",
    tz: tzinfo = SHANGHAI,
) -> str:
    """The robots' markdown message, at most ``max_bytes`` of UTF-8 including ``footer``.

    Alerts that do not fit are counted in a last ``…以及另外 N 条 / and N more`` line, so
    people know the message is incomplete and can look at the live page. ``line_break`` is
    ``"\\n"`` for WeCom and ``"\\n\\n"`` for DingTalk, whose markdown joins single newlines.
    """
    head = "### " + _escape_markdown(title(notifications))
    digest = len(notifications) > 1
    lines: list[tuple[str, bool]] = []  # (text, is an alert)
    for notification in notifications:
        if digest:
            site_name = _escape_markdown(_clip(notification.site_name, _MAX_NAME))
            lines.append((f"**{site_name}**", False))
        lines.extend((alert_text(a, tz=tz, markdown=True), True) for a in _ordered(notification))
    total = sum(1 for _, is_alert in lines if is_alert)
    tail = f"{line_break}{footer}" if footer else ""

    def size(text: str) -> int:
        return len(text.encode())

    full = line_break.join([head, *(text for text, _ in lines)]) + tail
    if size(full) <= max_bytes:
        return full
    # Keep room for the longest possible "and N more" line, then fill greedily.
    budget = max_bytes - size(head) - size(tail) - size(line_break + _more_line(total))
    kept: list[tuple[str, bool]] = []
    for text, is_alert in lines:
        cost = size(line_break + text)
        if cost > budget:
            break
        budget -= cost
        kept.append((text, is_alert))
    if kept and not kept[-1][1]:
        kept.pop()  # a site heading without any of its alerts
    shown = sum(1 for _, is_alert in kept if is_alert)
    body = line_break.join([head, *(text for text, _ in kept), _more_line(total - shown)]) + tail
    return _clip_bytes(body, max_bytes)
