"""Session numbers only ever grow, and cost the SD card one write per block of connections."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from edge.session import BLOCK, SessionCounter
from tests.fault_harness import fill_filesystem, mounted_tmpfs


def test_numbers_grow_by_one_within_a_process(tmp_path: Path) -> None:
    counter = SessionCounter(tmp_path / "mqtt-session")
    assert [counter.next() for _ in range(5)] == [1, 2, 3, 4, 5]


def test_a_restart_continues_above_everything_handed_out_before(tmp_path: Path) -> None:
    path = tmp_path / "mqtt-session"
    before = [SessionCounter(path).next() for _ in range(1)]
    first = SessionCounter(path)
    handed_out = [first.next() for _ in range(BLOCK + 3)]
    after = SessionCounter(path).next()
    assert after > max(before + handed_out)


class CountingCounter(SessionCounter):
    writes = 0

    def _write(self, value: int) -> None:
        self.writes += 1
        super()._write(value)


def test_the_file_is_written_once_per_block_of_connections(tmp_path: Path) -> None:
    counter = CountingCounter(tmp_path / "mqtt-session")
    for _ in range(3 * BLOCK):
        counter.next()
    assert counter.writes == 3
    assert int((tmp_path / "mqtt-session").read_text()) == 3 * BLOCK


def test_a_damaged_file_does_not_stop_the_gateway(tmp_path: Path) -> None:
    path = tmp_path / "mqtt-session"
    path.write_text("not a number\n")
    assert SessionCounter(path).next() == 1


async def test_a_full_card_does_not_stop_the_gateway_from_taking_session_numbers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounts a size-limited tmpfs: needs root (CI runs as root)")
    async with mounted_tmpfs(tmp_path / "card", size="64k") as card:
        await asyncio.to_thread(fill_filesystem, card / "filler")
        counter = SessionCounter(card / "mqtt-session")
        numbers = [counter.next() for _ in range(BLOCK + 1)]  # two blocks: two failed writes
    assert numbers == list(range(1, BLOCK + 2))
    refused = [r for r in caplog.records if "cannot write the session number" in r.getMessage()]
    assert len(refused) == 2
    assert "No space left on device" in refused[0].getMessage()
