"""`qihe demo` brings up the whole pipe with no configuration and points land in InfluxDB."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from qihe.configfile import load_config_file
from qihe.demo import DEFAULT_CONFIG, DemoConfig

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_config_and_the_configs_it_names_load() -> None:
    config = load_config_file(DEFAULT_CONFIG, DemoConfig)
    for site in config.sites:
        assert (DEFAULT_CONFIG.parent / site.gateway_config).is_file()
    assert (DEFAULT_CONFIG.parent / config.consumer_config).is_file()
    assert any("淇河书屋" in site.name for site in config.sites)


def test_the_demo_lands_points_and_counts_them_with_influxql(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "qihe.cli",
            "demo",
            "--state-dir",
            str(tmp_path),
            "--duration",
            "12",
            "--every",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "Traceback" not in result.stderr
    status = re.findall(r"InfluxDB (\d+) points", out)
    assert len(status) >= 2 and int(status[-1]) > 0, out
    totals = dict(re.findall(r"^  (\w+)\s+(\d+)$", out, flags=re.M))
    assert int(totals["total"]) >= int(status[-1])
    for measurement in ("seat", "people", "door", "heartbeat", "device", "gateway_status"):
        assert int(totals.get(measurement, 0)) > 0, f"no {measurement} points: {out}"
    assert "SELECT COUNT(*)" in out
