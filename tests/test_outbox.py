"""The durable outbox: grouped commits, survives SIGKILL, bounded with a drop policy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.outbox import Outbox
from edge.sequence import TrackerState
from qihe.contract import HeartbeatReading, Reading, SeatReading, parse_reading

T0 = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def seat(n: int, occupied: bool = True) -> SeatReading:
    return SeatReading(
        site="s",
        gateway="g",
        device="d",
        sensor=f"d.{n % 4}",
        occupied=occupied,
        ts=T0 + timedelta(seconds=n),
        seq=n,
    )


def heartbeat(n: int) -> HeartbeatReading:
    return HeartbeatReading(
        site="s",
        gateway="g",
        device="d",
        sensor="d",
        uptime_s=n,
        supply_mv=3700,
        ts=T0 + timedelta(seconds=n),
        seq=n,
    )


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    box = Outbox(tmp_path / "outbox.sqlite3", max_readings=1000, commit_interval=0.05)
    await box.open()
    task = asyncio.create_task(box.run())
    yield box
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await box.close()


async def stored(box: Outbox) -> list[Reading]:
    return [parse_reading(r.payload) for r in await box.fetch(after=0, limit=100_000)]


async def test_readings_come_back_in_order_exactly_as_accepted(outbox: Outbox) -> None:
    readings = [seat(i) for i in range(10)]
    for reading in readings:
        outbox.put(reading)
    await outbox.wait_committed(0)
    assert await stored(outbox) == readings


async def test_readings_are_committed_in_groups_not_one_by_one(outbox: Outbox) -> None:
    for i in range(200):
        outbox.put(seat(i))
    await asyncio.sleep(0.2)
    assert len(await stored(outbox)) == 200
    assert outbox.commits <= 3


async def test_a_confirmed_reading_leaves_with_the_next_commit(outbox: Outbox) -> None:
    for i in range(5):
        outbox.put(seat(i))
    await outbox.wait_committed(0)
    rows = await outbox.fetch(after=0, limit=2)
    outbox.confirm(row.id for row in rows)
    await asyncio.sleep(0.15)
    assert [r.seq for r in await stored(outbox)] == [2, 3, 4]
    assert len(outbox) == 3


async def test_when_full_periodic_telemetry_goes_first_and_drops_are_counted(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_readings=100, commit_interval=60)
    await box.open()
    for i in range(60):
        box.put(heartbeat(i))
        box.put(seat(i))
    await box.close()  # commits: 120 readings into a store of 100
    reopened = Outbox(tmp_path / "o.sqlite3", max_readings=100)
    await reopened.open()
    kinds = [r.kind for r in await stored(reopened)]
    assert (kinds.count("seat"), kinds.count("heartbeat")) == (60, 40)
    assert reopened.dropped == {"heartbeat": 20}  # kept in the store across a restart
    for i in range(60, 200):
        reopened.put(seat(i))
    await reopened.close()
    final = Outbox(tmp_path / "o.sqlite3", max_readings=100)
    await final.open()
    remaining = await stored(final)
    assert [r.kind for r in remaining] == ["seat"] * 100
    assert [r.seq for r in remaining] == list(range(100, 200))  # the newest state changes
    assert final.dropped == {"heartbeat": 60, "seat": 100}
    await final.close()


async def test_board_sequence_state_is_stored_with_the_readings(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_readings=100)
    await box.open()
    box.track_sequence("board-a", lambda: TrackerState(41, ((39, 1_795_000_000_000_000),)))
    seen: list[dict[str, TrackerState]] = []
    box.on_commit(seen.append)
    box.put(seat(41))
    await box.close()
    assert seen == [{"board-a": TrackerState(41, ((39, 1_795_000_000_000_000),))}]
    reopened = Outbox(tmp_path / "o.sqlite3", max_readings=100)
    await reopened.open()
    assert reopened.sequence_state == {"board-a": TrackerState(41, ((39, 1_795_000_000_000_000),))}
    await reopened.close()


async def test_a_board_sequence_state_is_written_only_when_it_moved(tmp_path: Path) -> None:
    """A commit that only deletes confirmed readings rewrites no sequence row on the card;
    listeners still hear every board's stored state after each commit."""
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_readings=100)
    await box.open()
    with sqlite3.connect(path) as con:  # count the rows the outbox writes, from inside SQLite
        con.executescript(
            "CREATE TABLE writes (n INTEGER); INSERT INTO writes VALUES (0);"
            "CREATE TRIGGER w1 AFTER INSERT ON device_sequence "
            "BEGIN UPDATE writes SET n = n + 1; END;"
            "CREATE TRIGGER w2 AFTER UPDATE ON device_sequence "
            "BEGIN UPDATE writes SET n = n + 1; END;"
        )
    state = TrackerState(41)
    box.track_sequence("board-a", lambda: state)
    seen: list[dict[str, TrackerState]] = []
    box.on_commit(seen.append)
    box.put(seat(41))
    await box._commit()
    box.confirm([box.last_id])
    await box._commit()  # deletes only: the state did not move
    state = TrackerState(42)
    box.put(seat(42))
    await box._commit()
    await box.close()
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT n FROM writes").fetchone()[0] == 2
    assert seen == [{"board-a": TrackerState(41)}] * 2 + [{"board-a": TrackerState(42)}] * 2


async def test_latest_states_give_the_newest_reading_per_state_sensor(outbox: Outbox) -> None:
    for i in range(12):
        outbox.put(seat(i, occupied=i % 2 == 0))
        outbox.put(heartbeat(i))
    await outbox.wait_committed(0)
    latest = [parse_reading(r.payload) for r in await outbox.latest_states(outbox.last_id)]
    assert [(r.sensor, r.seq) for r in latest] == [("d.0", 8), ("d.1", 9), ("d.2", 10), ("d.3", 11)]


async def test_a_file_that_is_not_a_database_is_moved_aside_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    box = Outbox(path, max_readings=100)
    await box.open()
    box.put(seat(1))
    await box.close()
    aside = sorted(os.listdir(tmp_path))
    assert aside[0] == "outbox.sqlite3"
    assert aside[-1].startswith("outbox.sqlite3.unreadable-")
    with open(tmp_path / aside[-1], "rb") as moved:  # noqa: ASYNC230 - a test's tiny read
        assert moved.read().startswith(b"this is not sqlite")


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from datetime import UTC, datetime, timedelta
    from edge.outbox import Outbox
    from qihe.contract import SeatReading

    async def main(path, rounds):
        box = Outbox(path, max_readings=1_000_000, commit_interval=0.01, commit_max=50)
        await box.open()
        task = asyncio.create_task(box.run())
        t0 = datetime(2026, 11, 28, tzinfo=UTC)
        n = 0
        while True:
            for _ in range(50):
                box.put(SeatReading(site="s", gateway="g", device="d", sensor="d.1",
                                    occupied=n % 2 == 0, ts=t0 + timedelta(seconds=n),
                                    seq=n % 65536))
                n += 1
            await box.wait_committed(box.last_id)
            print(n, flush=True)  # everything up to n is committed

    asyncio.run(main(Path(sys.argv[1]), 0))
    """
)


@pytest.mark.parametrize("run", range(3))
def test_a_sigkill_loses_nothing_the_store_had_committed(tmp_path: Path, run: int) -> None:
    path = tmp_path / "outbox.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    committed = 0
    for _ in range(5 + 7 * run):
        committed = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)  # at an arbitrary moment, mid-write or not
    proc.wait()
    proc.stdout.close()

    async def check() -> list[int]:
        box = Outbox(path, max_readings=1_000_000)
        await box.open()
        rows = await box.fetch(after=0, limit=10_000_000)
        await box.close()
        return [parse_reading(r.payload).seq or 0 for r in rows]

    seqs = asyncio.run(check())
    assert len(seqs) >= committed
    assert seqs == list(range(len(seqs)))  # in order, none missing, none twice
    with contextlib.closing(sqlite3.connect(path)) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
