"""The site benchmark's set-up (bench/site_*.py): the boards it emulates, and a gateway worker
whose memory is the gateway's. (The benchmark itself runs with `qihe bench`, not here.)"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

from bench.site_traffic import BOARD_SEATS, TZ, make_boards
from firmware_bridge.messages import Door, Heartbeat, People, SensorKind

ROOT = Path(__file__).resolve().parents[1]


def test_the_entrance_counter_and_main_door_are_on_board_a_and_the_others_have_seats_only() -> None:
    boards = make_boards(4.0, datetime(2025, 11, 26, 15, 0, tzinfo=TZ), [False] * 120, [0] * 4)

    kinds = {b.config.device_id: Counter(s.kind for s in b.board.hello().sensors) for b in boards}
    assert kinds == {
        "board-a": {SensorKind.SEAT: BOARD_SEATS, SensorKind.PEOPLE: 1, SensorKind.DOOR: 1},
        "board-b": {SensorKind.SEAT: BOARD_SEATS},
        "board-c": {SensorKind.SEAT: BOARD_SEATS},
        "board-d": {SensorKind.SEAT: BOARD_SEATS},
    }
    for board in boards[1:]:
        reports = board.model.snapshot()
        assert not any(isinstance(r, People | Door) for r in reports)
        assert isinstance(reports[-1], Heartbeat)


def _modules(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(done.stdout))


def test_the_site_gateway_worker_imports_no_more_than_qihe_gateway_run() -> None:
    deployed = _modules(
        "from qihe_cli.main import build_parser\n"
        "build_parser()\n"
        "import logging, edge.gateway, edge.sources.gpio, gpiozero.pins.mock"
    )
    worker = _modules(
        "import bench.site_worker\nfrom qihe_cli.main import build_parser\nbuild_parser()"
    )

    assert worker - deployed == {"bench", "bench.site_worker"}
