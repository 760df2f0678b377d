"""`qihe demo` brings up the whole pipe with no configuration: points land in InfluxDB, the
operator page shows the emulated book house live, and a fault typed at its console raises the
matching alert on MQTT and on the page, and clears it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx
import paho.mqtt.client as mqtt

from qihe.configfile import load_config_file
from qihe_cli.demo import DEFAULT_CONFIG, DemoConfig
from qihe_cli.demo_console import apply_command

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_config_and_the_configs_it_names_load() -> None:
    config = load_config_file(DEFAULT_CONFIG, DemoConfig)
    for site in config.sites:
        assert (DEFAULT_CONFIG.parent / site.gateway_config).is_file()
    for path in (config.consumer_config, config.live_config, config.alerts_config):
        assert (DEFAULT_CONFIG.parent / path).is_file()
    assert any("淇河书屋" in site.name for site in config.sites)


class Board:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args: self.calls.append((name, args))


def test_console_commands_reach_the_named_board_and_bad_ones_change_nothing() -> None:
    boards = {"shancheng-xinyuan2": Board(), "shifanqu-fanhuali": Board()}

    answers = [
        apply_command(line, boards)
        for line in (
            "stuck xinyuan2 3",
            "noise fanhuali 0.2",
            "supply xinyuan2 off",
            "silent",
            "stuck shan 3 4",
            "noise s 0.1",
            "supply fanhuali lots",
            "reboot xinyuan2",
        )
    ]

    assert boards["shancheng-xinyuan2"].calls == [("set_stuck", (3, True)), ("set_supply", (None,))]
    assert boards["shifanqu-fanhuali"].calls == [("set_noise", (0.2,))]
    assert answers[0] == "已执行 / done: stuck 3 @ shancheng-xinyuan2"
    assert answers[3].startswith("需要站点 / which site?")
    assert answers[4].startswith("看不懂 / not understood")
    assert answers[5].startswith("站点不明 / no single site matches 's'")
    assert answers[6].startswith("未执行 / not done")
    assert answers[7].startswith("看不懂 / not understood")


class Lines:
    """The demo's stdout, read by a thread so the pipe never fills."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._stream = stream
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def close(self) -> None:
        self._thread.join(timeout=10)
        self._stream.close()

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in the demo's output:\n{self.text()}")


def poll(what: Callable[[], Any], until: Callable[[Any], bool], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_the_demo_lands_points_serves_the_live_page_and_raises_alerts(tmp_path: Path) -> None:
    with (tmp_path / "demo.log").open("w") as log:
        demo = subprocess.Popen(
            [sys.executable, "-m", "qihe_cli.main", "demo", "--state-dir", str(tmp_path / "state"),
             "--duration", "240", "--every", "3"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT,
        )  # fmt: skip
    assert demo.stdin is not None and demo.stdout is not None
    out = Lines(demo.stdout)
    alerts: list[dict[str, Any]] = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    try:
        port = int(out.wait_for(r"MQTT broker\s+mqtt://127\.0\.0\.1:(\d+)").group(1))
        url = out.wait_for(r"Operator page\s+(http://\S+)").group(1)
        watcher.on_message = lambda c, u, m: alerts.append(json.loads(m.payload or b"null"))
        watcher.connect("127.0.0.1", port)
        watcher.subscribe("qihe/v1/_alerts/#", qos=1)
        watcher.loop_start()

        def site() -> dict[str, Any]:
            return dict(httpx.get(f"{url}api/v1/sites/shancheng-xinyuan2").json())

        book_house = poll(site, lambda s: s["site"]["seats"]["unknown"] == 0)
        demo.stdin.write("stuck xinyuan2 3\n")
        demo.stdin.flush()
        out.wait_for(r"已执行 / done: stuck 3 @ shancheng-xinyuan2")
        on_page = poll(site, lambda s: any(a["rule"] == "device_fault" for a in s["alerts"]))
        demo.stdin.write("unstuck xinyuan2 3\n")
        demo.stdin.flush()
        cleared = poll(site, lambda s: s["alerts"] == [])
        out.wait_for(r"InfluxDB (\d+) points")
        command = out.wait_for(r"statistics: qihe (stats occupancy [^\n]+)").group(1).split()
        stats = subprocess.run(
            [sys.executable, "-m", "qihe_cli.main", *command, "--format", "json"],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    finally:
        watcher.loop_stop()
        demo.kill()
        demo.wait(timeout=60)
        demo.stdin.close()
        out.close()
    text = out.text()

    assert demo.returncode == 0, (tmp_path / "demo.log").read_text()[-2000:]
    assert book_house["site"]["name"] == "淇河书屋·馨苑二区站"
    assert book_house["site"]["online"] is True
    # The stuck seat: an alert on the page and on MQTT, then gone from both.
    fault = next(a for a in on_page["alerts"] if a["rule"] == "device_fault")
    assert fault["sensor"] == "xinyuan2-a.3"
    assert fault["summary_zh"] == "座位传感器 xinyuan2-a.3 报告故障：卡住"
    assert cleared["alerts"] == []
    states = [a["state"] for a in alerts if a and a["rule"] == "device_fault"]
    assert states[0] == "firing" and states[-1] == "resolved", states
    # The statistics answer from the demo's own data.
    assert stats.returncode == 0, stats.stderr
    rows = [r for r in json.loads(stats.stdout) if r["site"] == "shancheng-xinyuan2"]
    assert any(r["seats_occupied_max"] is not None for r in rows), rows
    assert rows[0]["site_name"] == "淇河书屋·馨苑二区站"
    # Points landed, counted with InfluxQL at the end.
    status = re.findall(r"InfluxDB (\d+) points", text)
    assert status and int(status[-1]) > 0, text
    totals = dict(re.findall(r"^  (\w+)\s+(\d+)$", text, flags=re.M))
    for measurement in ("seat", "people", "door", "heartbeat", "device", "fault"):
        assert int(totals.get(measurement, 0)) > 0, f"no {measurement} points: {text}"
    assert "SELECT COUNT(*)" in text
