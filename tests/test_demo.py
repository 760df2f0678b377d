"""`qihe demo` brings up the whole pipe with no configuration and points land in InfluxDB."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from qihe.configfile import load_config_file
from qihe.demo import DEFAULT_CONFIG, DemoConfig

ROOT = Path(__file__).resolve().parent.parent


def live_book_house(url: str) -> dict[str, Any]:
    """The emulated book house as the demo's live page shows it, once its seats are known."""
    deadline = time.monotonic() + 30
    while True:
        sites = {s["id"]: s for s in httpx.get(f"{url}api/v1/sites").json()["sites"]}
        site: dict[str, Any] = sites["shancheng-xinyuan2"]
        if site["seats"]["unknown"] == 0 or time.monotonic() > deadline:
            return site
        time.sleep(0.2)


def test_the_demo_config_and_the_configs_it_names_load() -> None:
    config = load_config_file(DEFAULT_CONFIG, DemoConfig)
    for site in config.sites:
        assert (DEFAULT_CONFIG.parent / site.gateway_config).is_file()
    assert (DEFAULT_CONFIG.parent / config.consumer_config).is_file()
    assert any("淇河书屋" in site.name for site in config.sites)


def test_the_demo_lands_points_counts_them_and_serves_the_live_page(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qihe.cli",
            "demo",
            "--state-dir",
            str(tmp_path),
            "--duration",
            "15",
            "--every",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert demo.stdout is not None
        head = []
        for line in demo.stdout:
            head.append(line)
            if "Operator page" in line:
                break
        page = re.search(r"Operator page\s+(http://\S+)", "".join(head))
        assert page, "".join(head)
        book_house = live_book_house(page.group(1))
        rest, stderr = demo.communicate(timeout=120)
    finally:
        demo.kill()
    result = subprocess.CompletedProcess(demo.args, demo.returncode, "".join(head) + rest, stderr)
    assert book_house["name"] == "淇河书屋·馨苑二区站"
    assert book_house["online"] is True
    assert book_house["seats"]["free"] + book_house["seats"]["occupied"] == 24
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
