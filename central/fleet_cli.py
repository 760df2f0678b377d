"""``qihe fleet``: every gateway in one table, read from the live service's fleet API.

::

    qihe fleet --url http://127.0.0.1:8080/ --district 山城区 --sort -cpu_temp
    qihe fleet --json            # the API's document as it came

The operator token comes from ``--token-file FILE`` or the ``QIHE_OPERATOR_TOKEN`` environment
variable (never from the command line, where ``ps`` would show it). Rows are in the API's order
(``--sort``, the same columns as the page); stale rows are marked ``⚠ 失联 stale``.
"""

from __future__ import annotations

import argparse
import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from central.fleet import SORT_COLUMNS, Fleet, FleetRow

if TYPE_CHECKING:  # loaded when the command runs: every ``qihe`` command registers it
    import httpx

__all__ = ["add_parsers", "render_table"]

DEFAULT_URL = "http://127.0.0.1:8080/"
TOKEN_ENV = "QIHE_OPERATOR_TOKEN"
DASH = "–"

_POWER_NOW = {
    "under_voltage": "欠压 under-voltage",
    "freq_capped": "限频 freq capped",
    "throttled": "降频 throttled",
    "soft_temp_limit": "温控 soft temp limit",
}
_POWER_PAST = {
    "under_voltage_occurred": "曾欠压 under-voltage earlier",
    "freq_capped_occurred": "曾限频 freq capped earlier",
    "throttled_occurred": "曾降频 throttled earlier",
    "soft_temp_limit_occurred": "曾温控 soft temp limit earlier",
}

_CONFIG_TROUBLE = {"rejected": "已拒绝 rejected", "rolled_back": "已回滚 rolled back"}


class FleetCliError(Exception):
    """What ``qihe fleet`` tells the operator in one line (exit status 1)."""


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "fleet",
        help="every gateway: versions, uptime, last seen, outbox, errors, temperature, power",
        description=(
            "网关一览: list every gateway as the live service sees it (qihe live), "
            "stale rows marked. The operator token is read from --token-file or "
            f"${TOKEN_ENV}."
        ),
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("QIHE_LIVE_URL", DEFAULT_URL),
        help=f"the live service (default: $QIHE_LIVE_URL or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token-file", type=Path, help=f"a file holding the operator token (or ${TOKEN_ENV})"
    )
    parser.add_argument("--district", help="only this district, e.g. 山城区 or Shancheng")
    parser.add_argument(
        "--sort",
        type=_sort,
        default="site",
        metavar="COL",
        help=f"one of {', '.join(SORT_COLUMNS)}; -COL for descending (default: site)",
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON document")
    parser.set_defaults(handler=run_fleet)


def _sort(value: str) -> str:
    if value.removeprefix("-") not in SORT_COLUMNS:
        raise argparse.ArgumentTypeError(
            f"不能按 {value!r} 排序 cannot sort by {value!r}: use {', '.join(SORT_COLUMNS)}"
        )
    return value


def run_fleet(args: argparse.Namespace) -> int:
    try:
        token = _token(args.token_file)
        body = _fetch(args.url, token, district=args.district, sort=args.sort)
        fleet = Fleet.model_validate_json(body)
    except FleetCliError as exc:
        print(f"qihe fleet: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(
            f"qihe fleet: 实时服务的回答无法识别 the live service's answer is not a fleet "
            f"document ({exc.error_count()} problems; is {args.url} a qihe live service?)",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(body.decode())
    else:
        print(render_table(fleet))
    return 0


def _token(path: Path | None) -> str | None:
    if path is None:
        return os.environ.get(TOKEN_ENV) or None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetCliError(f"无法读取令牌文件 cannot read the token file {path}: {exc}") from exc
    if not token:
        raise FleetCliError(f"令牌文件为空 the token file {path} is empty")
    return token


def _fetch(url: str, token: str | None, *, district: str | None, sort: str) -> bytes:
    import httpx

    params = {"sort": sort} | ({"district": district} if district else {})
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    endpoint = url.rstrip("/") + "/api/v1/fleet"
    try:
        response = httpx.get(endpoint, params=params, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise FleetCliError(
            f"无法连接实时服务 cannot reach the live service at {url}: {exc}"
        ) from exc
    if response.status_code == 401:
        raise FleetCliError(
            f"需要操作员令牌 operator token required or wrong: --token-file FILE or ${TOKEN_ENV}"
        )
    if response.status_code == 422:
        raise FleetCliError(f"参数无效 bad parameter: {_detail(response)}")
    if response.status_code != 200:
        raise FleetCliError(
            f"实时服务回答 {response.status_code} the live service answered "
            f"{response.status_code} at {endpoint}: {_detail(response)}"
        )
    return response.content


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    return str(detail)[:200]


# The table ------------------------------------------------------------------------------

#: (heading, cell) per column, Chinese first.
_COLUMNS: tuple[tuple[str, Callable[[FleetRow, Fleet], str], bool], ...] = (
    ("站点 Site", lambda r, f: r.site, False),
    ("网关 Gateway", lambda r, f: r.gateway, False),
    ("城区 District", lambda r, f: r.district or DASH, False),
    ("状态 State", lambda r, f: _state(r), False),
    ("版本 Version", lambda r, f: r.version or DASH, False),
    ("配置 Config", lambda r, f: _config(r), False),
    ("运行 Uptime", lambda r, f: _duration(r.uptime_s), True),
    (
        "距上报 Since seen",
        lambda r, f: _duration(int((f.at - r.last_seen).total_seconds()) if r.last_seen else None),
        True,
    ),
    ("待发 Outbox", lambda r, f: _number(r.outbox), True),
    ("丢弃 Drops", lambda r, f: _number(r.drops), True),
    ("链路错误 Link err", lambda r, f: _number(r.link_errors), True),
    ("CPU °C", lambda r, f: DASH if r.cpu_temp_c is None else f"{r.cpu_temp_c:.1f}", True),
    (
        "磁盘 Disk",
        lambda r, f: DASH if r.disk_used_pct is None else f"{r.disk_used_pct:.0f}%",
        True,
    ),
    ("供电 Power", lambda r, f: _power(r), False),
)


def render_table(fleet: Fleet) -> str:
    """The fleet as an aligned text table (Chinese counted two columns wide), and a summary."""
    head = [title for title, _, _ in _COLUMNS]
    body = [[cell(row, fleet) for _, cell, _ in _COLUMNS] for row in fleet.gateways]
    widths = [max(_width(line[i]) for line in [head, *body]) for i in range(len(head))]
    right = [numeric for _, _, numeric in _COLUMNS]
    lines = [_line(head, widths, right), _line(["-" * w for w in widths], widths, right)]
    lines += [_line(cells, widths, right) for cells in body]
    if not fleet.gateways:
        lines.append("（没有网关 no gateways）")
    shown = len(fleet.gateways)
    lines.append(
        f"共 {fleet.total} 台网关，显示 {shown} 台，失联 {fleet.stale} 台 · "
        f"{fleet.total} gateways, {shown} shown, {fleet.stale} stale"
    )
    return "\n".join(lines)


def _line(cells: Sequence[str], widths: Sequence[int], right: Sequence[bool]) -> str:
    out = []
    for text, width, numeric in zip(cells, widths, right, strict=True):
        pad = " " * (width - _width(text))
        out.append(pad + text if numeric else text + pad)
    return "  ".join(out).rstrip()


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _state(row: FleetRow) -> str:
    if row.state == "offline":
        return "⚠ 离线 offline"
    if row.stale:
        return "⚠ 失联 stale"
    return "在线 online" if row.state == "online" else "未知 unknown"


def _config(row: FleetRow) -> str:
    shown = row.config_version or row.config_hash or DASH
    if row.config_state in ("rejected", "rolled_back"):
        return f"{shown} ⚠ {_CONFIG_TROUBLE[row.config_state]}"
    return shown


def _power(row: FleetRow) -> str:
    if row.power is None:
        return DASH
    if row.power == "ok":
        return "正常 OK"
    words = _POWER_NOW if row.power == "now" else _POWER_PAST
    named = ", ".join(words[flag] for flag in row.power_flags if flag in words)
    return f"⚠ {named}" if row.power == "now" else named


def _number(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return DASH
    seconds = max(0, seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{seconds}s"
