"""Charts and the monthly report, drawn from Tables built here (the figures are tested apart).

Charts land in test-output/<test name>/ for people to look at. Regenerate the example in the
docs with:  .venv/bin/python -m tests.test_usage_charts
"""

from __future__ import annotations

import argparse
import base64
import math
import re
import struct
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from central.usage.charts import (
    ChartData,
    ChartError,
    ChartStyle,
    chart_filename,
    daily_visitors,
    find_cjk_font,
    hourly_profile,
    utilisation_by_site,
)
from central.usage.parsers import add_report_parser, parse_month
from central.usage.report import render_table_html, write_monthly_report
from central.usage.run_report import FIGURES, run_report
from central.usage.table import Column, Table, Value

LOCAL = ZoneInfo("Asia/Shanghai")
REPO = Path(__file__).resolve().parent.parent
DOCS_IMAGE = REPO / "docs" / "img" / "daily-visitors.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE = '<script>alert("x")</script> & 书屋'

SITES = (
    ("qibin-taoyuan", "淇河书屋·桃园站"),
    ("shancheng-xinyuan2", "淇河书屋·馨苑二区站"),
    ("shifanqu-fanhuali", "淇河书屋·繁花里站"),
    ("qibin-daycare", "淇滨区日间照料中心"),
)

SITE = Column("site", "站点编号", "Site id")
SITE_NAME = Column("site_name", "站点", "Site")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def day(n: int) -> datetime:
    return datetime(2026, 11, 1, tzinfo=LOCAL) + timedelta(days=n)


def counts(table: Table, site: str) -> list[int]:
    """The visitors column of one site, in row order."""
    return [v for r in table.rows if r["site"] == site and isinstance(v := r["visitors"], int)]


def visitors_table(sites: tuple[tuple[str, str], ...] = SITES, days: int = 30) -> Table:
    rows: list[dict[str, Value]] = []
    for i, (site, name) in enumerate(sites):
        for n in range(days):
            weekend = day(n).weekday() >= 5
            count = (40 + 13 * i + (7 * n) % 23) * (14 if weekend else 10) // 10
            rows.append({"site": site, "site_name": name, "period": day(n), "visitors": count})
    return Table(
        name="visitors",
        title_zh="访客人次",
        title_en="Visitors",
        columns=(
            SITE,
            SITE_NAME,
            Column("period", "日期", "Day", kind="time"),
            Column("visitors", "访客", "Visitors", "人", "int"),
        ),
        rows=tuple(rows),
        notes=("11-18 馨苑二区站 网关离线 3 小时 gateway offline for 3 h",),
    )


def utilisation_table(values: tuple[float | None, ...] = (55.2, 31.0, None, 78.5)) -> Table:
    rows: tuple[dict[str, Value], ...] = tuple(
        {
            "site": site,
            "site_name": name,
            "seats": 24,
            "open_hours": 372.0,
            "occupied_seat_hours": None if value is None else value * 24 * 372 / 100,
            "available_seat_hours": 24 * 372.0,
            "utilisation": value,
        }
        for (site, name), value in zip(SITES, values, strict=True)
    )
    return Table(
        name="utilisation",
        title_zh="座位利用率",
        title_en="Seat utilisation",
        columns=(
            SITE,
            SITE_NAME,
            Column("seats", "座位", "Seats", "个", "int"),
            Column("open_hours", "开放时长", "Open hours", "小时 h", "float"),
            Column("occupied_seat_hours", "占用座位小时", "Occupied", "座位小时 seat-h", "float"),
            Column("available_seat_hours", "可用座位小时", "Available", "座位小时 seat-h", "float"),
            Column("utilisation", "利用率", "Utilisation", "%", "percent"),
        ),
        rows=rows,
        notes=("繁花里站未配置开放时间 Fanhuali has no opening hours configured",),
    )


def typical_value(weekday: int, hour: int) -> float:
    return round(20 + 3 * weekday + 50 * math.exp(-(((hour - 15) / 3) ** 2)), 1)


def typical_table(site: str = "qibin-taoyuan", name: str = "淇河书屋·桃园站") -> Table:
    rows: list[dict[str, Value]] = []
    for weekday in range(7):
        for hour in range(8, 21):  # open 08:00-21:00; other hours have no row
            mid = typical_value(weekday, hour)
            rows.append(
                {
                    "site": site,
                    "site_name": name,
                    "weekday": weekday,
                    "hour": hour,
                    "low": round(mid - 10, 1),
                    "typical": mid,
                    "high": round(min(100.0, mid + 12), 1),
                }
            )
    return Table(
        name="typical",
        title_zh="典型占用",
        title_en="Typical occupancy",
        columns=(
            SITE,
            SITE_NAME,
            Column("weekday", "星期", "Weekday", kind="int"),
            Column("hour", "时", "Hour", kind="int"),
            Column("low", "低", "Low", "%", "percent"),
            Column("typical", "典型", "Typical", "%", "percent"),
            Column("high", "高", "High", "%", "percent"),
        ),
        rows=tuple(rows),
    )


def peaks_table(hostile: bool = False) -> Table:
    return Table(
        name="peaks",
        title_zh="高峰",
        title_en="Peaks",
        columns=(
            SITE,
            SITE_NAME,
            Column("peak_hour", "高峰时段", "Peak hour", kind="int"),
            Column("peak_people_avg", "高峰平均人数", "Peak people (avg)", "人", "float"),
            Column("busiest_weekday", "最忙的星期", "Busiest weekday", kind="int"),
            Column("busiest_weekday_visitors", "当日访客", "Visitors that day", "人", "int"),
        ),
        rows=(
            {
                "site": "qibin-taoyuan",
                "site_name": HOSTILE if hostile else "淇河书屋·桃园站",
                "peak_hour": 15,
                "peak_people_avg": 21.46,
                "busiest_weekday": 5,
                "busiest_weekday_visitors": 1234,
            },
        ),
    )


def test_a_cjk_font_is_installed_for_the_charts() -> None:
    assert find_cjk_font() is not None, (
        "no CJK font for matplotlib: charts would have English labels only. "
        "Install one: apt-get install fonts-wqy-microhei (dev.sh does)"
    )


def test_daily_visitors_draws_each_sites_count_per_day(output_dir: Path) -> None:
    table = visitors_table()

    chart = daily_visitors(table, output_dir / "daily-visitors.png")

    assert png_size(chart.path) == (1200, 600)
    assert chart.path.stat().st_size > 10_000
    assert chart.title == "每日访客 Daily visitors"
    assert chart.x[:3] == ("11-01", "11-02", "11-03") and len(chart.x) == 30
    expected = {name: [float(n) for n in counts(table, site)] for site, name in SITES}
    assert chart.series == expected
    # The largest site is first: the bottom of the stack.
    totals = [sum(v or 0 for v in values) for values in chart.series.values()]
    assert totals == sorted(totals, reverse=True)
    assert next(iter(chart.series)) == "淇滨区日间照料中心"


def test_daily_visitors_sums_sites_beyond_ten_as_others(output_dir: Path) -> None:
    sites = tuple((f"site-{i:02d}", f"书屋{i:02d}") for i in range(12))
    table = visitors_table(sites, days=7)

    chart = daily_visitors(table, output_dir / "twelve-sites.png")

    assert len(chart.series) == 11
    assert list(chart.series)[-1] == "其他 others"
    # The two smallest sites (numbers 00 and 01: fewest visitors) are summed.
    smallest = [counts(table, site) for site in ("site-00", "site-01")]
    assert chart.series["其他 others"] == [float(a + b) for a, b in zip(*smallest, strict=True)]
    assert "书屋00" not in chart.series and "书屋11" in chart.series
    assert any("2" in note and "其他" in note for note in chart.notes)


def test_daily_visitors_day_without_a_row_is_none(output_dir: Path) -> None:
    table = visitors_table(SITES[:2], days=3)
    rows = tuple(r for r in table.rows if not (r["site"] == SITES[1][0] and r["period"] == day(1)))
    table = Table(table.name, table.title_zh, table.title_en, table.columns, rows)

    chart = daily_visitors(table, output_dir / "gap.png")

    assert chart.series[SITES[1][1]][1] is None
    assert chart.series[SITES[0][1]][1] is not None


def test_a_table_without_rows_draws_a_chart_saying_no_data(output_dir: Path) -> None:
    empty = Table("visitors", "访客人次", "Visitors", visitors_table().columns, ())

    chart = daily_visitors(empty, output_dir / "empty.png")

    assert png_size(chart.path) == (1200, 600)
    assert chart.x == () and chart.series == {}


def test_utilisation_by_site_sorts_highest_first_and_no_figure_last(output_dir: Path) -> None:
    chart = utilisation_by_site(utilisation_table(), output_dir / "utilisation.png")

    assert png_size(chart.path) == (1200, 600)
    assert chart.title == "座位利用率 Seat utilisation"
    assert chart.x == (
        "淇滨区日间照料中心",
        "淇河书屋·桃园站",
        "淇河书屋·馨苑二区站",
        "淇河书屋·繁花里站",
    )
    assert chart.series == {"utilisation": [78.5, 55.2, 31.0, None]}


def test_utilisation_by_site_grows_tall_for_many_sites(output_dir: Path) -> None:
    many = tuple((f"site-{i:02d}", f"书屋{i:02d}") for i in range(20))
    rows: tuple[dict[str, Value], ...] = tuple(
        {"site": s, "site_name": n, "utilisation": float(i * 5)} for i, (s, n) in enumerate(many)
    )
    table = Table(
        "utilisation",
        "座位利用率",
        "Seat utilisation",
        (SITE, SITE_NAME, Column("utilisation", "利用率", "Utilisation", "%", "percent")),
        rows,
    )

    chart = utilisation_by_site(table, output_dir / "twenty.png")

    width, height = png_size(chart.path)
    assert width == 1200 and height > 600
    assert chart.series["utilisation"] == [float(i * 5) for i in reversed(range(20))]


def test_utilisation_by_site_refuses_the_per_seat_table(tmp_path: Path) -> None:
    table = utilisation_table()
    per_seat = Table(
        table.name,
        table.title_zh,
        table.title_en,
        (*table.columns, Column("seat", "座位", "Seat")),
        table.rows,
    )

    with pytest.raises(ChartError, match="per seat"):
        utilisation_by_site(per_seat, tmp_path / "u.png")


def test_hourly_profile_draws_low_typical_high_of_the_day(output_dir: Path) -> None:
    chart = hourly_profile(
        typical_table(), output_dir / "hourly.png", site="qibin-taoyuan", weekday=2
    )

    assert png_size(chart.path) == (1200, 600)
    assert chart.x == tuple(str(h) for h in range(24))
    mid = typical_value(2, 15)
    assert chart.series["typical"][15] == mid
    assert chart.series["low"][15] == pytest.approx(mid - 10)
    assert chart.series["high"][15] == pytest.approx(mid + 12)
    # Closed hours have no row: nothing is drawn there.
    assert chart.series["typical"][7] is None and chart.series["typical"][21] is None
    assert "淇河书屋·桃园站" in chart.title and "周三" in chart.title


def test_hourly_profile_of_all_days_is_the_mean_of_the_weekdays(output_dir: Path) -> None:
    chart = hourly_profile(typical_table(), output_dir / "hourly-all.png", site="qibin-taoyuan")

    expected = sum(typical_value(wd, 15) for wd in range(7)) / 7
    assert chart.series["typical"][15] == pytest.approx(expected)
    assert "全周" in chart.title


def test_hourly_profile_of_an_unknown_site_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ChartError, match="no-such-site"):
        hourly_profile(typical_table(), tmp_path / "h.png", site="no-such-site")


def test_same_table_gives_the_same_png_bytes(tmp_path: Path) -> None:
    first = daily_visitors(visitors_table(), tmp_path / "a.png").path.read_bytes()
    second = daily_visitors(visitors_table(), tmp_path / "b.png").path.read_bytes()

    assert first == second
    assert b"Software" not in first and b"atplotlib" not in first


def test_without_a_cjk_font_labels_are_english_and_sites_are_ids(output_dir: Path) -> None:
    english = ChartStyle(cjk_font=None)

    chart = daily_visitors(visitors_table(), output_dir / "english.png", style=english)

    assert chart.title == "Daily visitors"
    assert set(chart.series) == {site for site, _ in SITES}
    assert any("No CJK font" in note for note in chart.notes)


def test_a_name_the_font_cannot_draw_is_shown_by_its_id(output_dir: Path) -> None:
    # U+20000 (CJK extension B) is in neither WenQuanYi Micro Hei nor DejaVu Sans: drawing it
    # would be a box and a warning (an error under pytest).
    sites = (("rare-name", "书屋\U00020000"), ("qibin-taoyuan", "淇河书屋·桃园站"))

    chart = daily_visitors(visitors_table(sites, days=3), output_dir / "rare.png")

    assert set(chart.series) == {"rare-name", "淇河书屋·桃园站"}


def test_a_hostile_site_name_is_drawn_as_text(output_dir: Path) -> None:
    sites = (("hostile", "$x_1$ " + HOSTILE), ("qibin-taoyuan", "淇河书屋·桃园站"))

    chart = daily_visitors(visitors_table(sites, days=3), output_dir / "hostile.png")

    assert "$x_1$ " + HOSTILE in chart.series


def test_chart_filename_keeps_config_ids_out_of_paths() -> None:
    assert chart_filename("hourly-qibin-taoyuan") == "hourly-qibin-taoyuan.png"
    assert chart_filename("../../etc/passwd") == "etc-passwd.png"


# -- the report -----------------------------------------------------------------------------


def report_tables(hostile: bool = False) -> dict[str, Table]:
    return {
        "utilisation": utilisation_table(),
        "peaks": peaks_table(hostile),
        "visitors": visitors_table(SITES[:2], days=5),
    }


def draw_charts(folder: Path) -> list[ChartData]:
    return [
        daily_visitors(visitors_table(), folder / "daily-visitors.png"),
        utilisation_by_site(utilisation_table(), folder / "utilisation.png"),
        hourly_profile(typical_table(), folder / "hourly.png", site="qibin-taoyuan"),
    ]


def test_report_has_the_title_every_header_in_both_languages_and_the_notes(
    output_dir: Path,
) -> None:
    tables = report_tables()

    path = write_monthly_report(
        district="山城区",
        district_en="Shancheng",
        month=date(2026, 11, 1),
        tables=tables,
        charts=draw_charts(output_dir),
        out_dir=output_dir,
    )

    page = path.read_text(encoding="utf-8")
    assert path == output_dir / "report.html"
    assert "山城区 2026年11月 使用情况月报" in page
    assert "Shancheng usage report, November 2026" in page
    assert "2026-11-01 – 2026-11-30" in page
    for table in tables.values():
        assert table.title_zh in page and table.title_en in page
        for column in table.columns:
            assert f">{column.zh}<" in page and f">{column.en}<" in page
            if column.unit:
                assert f"({column.unit})" in page
        for note in table.notes:
            assert f"<li>{note}</li>" in page
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere


def test_report_embeds_every_chart(output_dir: Path) -> None:
    charts = draw_charts(output_dir)

    page = write_monthly_report(
        district="山城区", month=date(2026, 11, 1), tables={}, charts=charts, out_dir=output_dir
    ).read_text(encoding="utf-8")

    for chart in charts:
        encoded = base64.b64encode(chart.path.read_bytes()).decode("ascii")
        assert f'src="data:image/png;base64,{encoded}"' in page
        assert f'alt="{chart.title}"' in page


def test_report_escapes_a_hostile_site_name(output_dir: Path) -> None:
    path = write_monthly_report(
        district="<b>山城区</b>",
        month=date(2026, 11, 1),
        tables=report_tables(hostile=True),
        charts=[],
        out_dir=output_dir,
    )

    page = path.read_text(encoding="utf-8")
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 书屋" in page
    assert "&lt;b&gt;山城区&lt;/b&gt;" in page


def test_report_progress_counts_every_step_up_to_the_total(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    tables, charts = report_tables(), draw_charts(tmp_path)

    write_monthly_report(
        district="山城区",
        month=date(2026, 11, 1),
        tables=tables,
        charts=charts,
        out_dir=tmp_path / "out",
        progress=lambda name, done, total: calls.append((name, done, total)),
    )

    total = len(tables) + len(charts) + 1
    assert [done for _, done, _ in calls] == list(range(1, total + 1))
    assert {t for _, _, t in calls} == {total}
    assert calls[-1][0] == "报告 report: 写入 write report.html"
    assert (tmp_path / "out" / "report.html").exists()


def test_render_table_html_formats_values_by_kind() -> None:
    html = render_table_html(report_tables()["visitors"]) + render_table_html(peaks_table())
    utilisation = render_table_html(utilisation_table())

    assert "<td>2026-11-01</td>" in html  # days at midnight show as dates
    assert ">周六 Sat<" in html  # busiest_weekday 5
    assert '<td class="num">21.5</td>' in html and '<td class="num">1,234</td>' in html
    assert '<td class="num na">—</td>' in utilisation
    assert '<span class="unit">(座位小时 seat-h)</span>' in utilisation


def test_render_table_html_of_an_empty_table_says_no_data() -> None:
    empty = Table("doors", "开门次数", "Door openings", (SITE, SITE_NAME), ())

    assert "无数据" in render_table_html(empty) and "No data" in render_table_html(empty)


# -- qihe stats report ----------------------------------------------------------------------


def fake_figures() -> dict[str, Table]:
    two = SITES[:2]
    typical = Table(
        "typical",
        "典型占用",
        "Typical occupancy",
        typical_table().columns,
        typical_table(*two[0]).rows + typical_table(*two[1]).rows,
    )
    return {
        "typical": typical,
        "visitors": visitors_table(two, days=30),
        "utilisation": utilisation_table(),
        **{
            name: Table(name, name, name, (SITE, SITE_NAME), ())
            for name in FIGURES
            if name not in ("typical", "visitors", "utilisation")
        },
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qihe stats")
    add_report_parser(parser.add_subparsers(dest="action"))
    return parser.parse_args(argv)


def test_stats_report_prints_a_progress_line_per_step_and_writes_the_report(
    output_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = fake_figures()
    asked: list[str] = []
    args = parse(
        [
            "report",
            "--config",
            "stats.yaml",
            "--district",
            "山城区",
            "--month",
            "2026-11",
            "--out",
            str(output_dir / "report"),
        ]
    )

    def compute(name: str) -> Table:
        asked.append(name)
        return figures[name]

    assert run_report(args, compute) == 0

    out, err = capsys.readouterr()
    assert out.strip() == str(output_dir / "report" / "report.html")
    steps = [line for line in err.splitlines() if line.startswith("[")]
    numbers = [
        (int(m[1]), int(m[2])) for m in map(re.compile(r"\[(\d+)/(\d+)\]").match, steps) if m
    ]
    assert len(numbers) == len(steps)
    total = numbers[0][1]
    assert [done for done, _ in numbers] == list(range(1, total + 1))
    assert {t for _, t in numbers} == {total}
    assert "图表 charts: daily visitors" in err
    assert sorted(asked) == sorted(FIGURES)
    folder = output_dir / "report"
    assert {p.name for p in folder.glob("*.png")} == {
        "daily-visitors.png",
        "utilisation.png",
        "hourly-qibin-taoyuan.png",
        "hourly-shancheng-xinyuan2.png",
    }
    assert (folder / "report.html").read_text(encoding="utf-8").count("data:image/png") == 4


def test_stats_report_refuses_a_month_that_is_not_yyyy_mm() -> None:
    assert parse_month("2026-11") == date(2026, 11, 1)
    with pytest.raises(argparse.ArgumentTypeError, match="YYYY-MM"):
        parse_month("2026-13")


def test_docs_example_chart_is_a_small_png() -> None:
    assert png_size(DOCS_IMAGE) == (1200, 600)
    assert DOCS_IMAGE.stat().st_size < 100_000
    assert "img/daily-visitors.png" in (REPO / "docs" / "statistics.md").read_text("utf-8")


if __name__ == "__main__":
    chart = daily_visitors(visitors_table(), DOCS_IMAGE)
    print(f"{chart.path}: {chart.path.stat().st_size} bytes", file=sys.stderr)
