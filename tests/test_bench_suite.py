"""The benchmark suite's own plumbing: its table, its figures from /proc, and `qihe bench`'s
answers to bad arguments. (The benchmarks themselves run with `qihe bench`, not in the tests:
timing on a shared machine is not a test.)"""

from __future__ import annotations

import subprocess
import sys

from bench.__main__ import markdown_table
from bench.harness import Row, Target, percentile, proc_figures
from qihe_cli.bench import checkout_root


def test_a_figure_is_shown_beside_its_limit_its_ratio_and_whether_it_meets_its_target() -> None:
    rows = [
        Row(
            scenario="gateway live path",
            metric="readings/s to PUBACK",
            value=900.0,
            unit="readings/s",
            limit=1000.0,
            limit_label="bare paho-mqtt QoS 1",
            target=Target("ratio", ">=", 0.8),
            runs=[880.0, 900.0, 950.0],
        ),
        Row("backlog drain", "100,000 readings", 6.5, "s", target=Target("value", "<=", 5)),
        Row("city", "live memory", 80.0, "MB"),
    ]
    table = markdown_table(rows).splitlines()
    assert table[2] == (
        "| gateway live path | readings/s to PUBACK | 900 readings/s | 880, 900, 950 "
        "| 1,000 readings/s (bare paho-mqtt QoS 1) | 0.90 | ratio >= 0.8 ✓ |"
    )
    assert table[3].endswith("| – | – | value <= 5 ✗ |")
    assert table[4].endswith("| – | – | – |")


def test_rows_survive_their_json_form() -> None:
    row = Row("c", "m", 1.5, "s", limit=3.0, limit_label="raw", target=Target("value", "<=", 2))
    again = Row.from_json(row.to_json())
    assert again == row
    assert (again.ratio, again.met) == (0.5, True)


def test_percentiles_interpolate_and_an_empty_sample_has_none() -> None:
    assert percentile([], 99) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


def test_process_figures_come_from_proc() -> None:
    figures = proc_figures()
    assert figures.cpu_s > 0
    assert figures.vm_hwm_bytes >= figures.vm_rss_bytes > 10 * 1024 * 1024


def test_qihe_bench_refuses_bad_arguments_with_one_clear_line() -> None:
    assert checkout_root() is not None
    for argv, expected in (
        (["--only", "nothing"], "invalid choice: 'nothing'"),
        (["--runs", "0"], "--runs must be at least 1"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "qihe_cli.main", "bench", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2
        assert expected in done.stderr
