"""The durable outbox: grouped commits, survives SIGKILL, bounded with a drop policy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.outbox import Outbox
from edge.sequence import TrackerState
from qihe.contract import HeartbeatReading, Reading, SeatReading, parse_reading
from tests.fault_harness import fill_filesystem, mounted_tmpfs

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


# -- while commits fail: readings in memory are bounded, with the store's policy ------------


@contextlib.contextmanager
def locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holds the store's write lock: its reads work, its commits fail."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield holder
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def failing_outbox(tmp_path: Path, *, max_pending: int = 100) -> Outbox:
    box = Outbox(
        tmp_path / "o.sqlite3",
        max_readings=1000,
        max_pending=max_pending,
        commit_interval=60,
        busy_timeout=0.05,
    )
    await box.open()
    return box


async def reopened_store(path: Path) -> tuple[list[Reading], dict[str, int]]:
    box = Outbox(path, max_readings=1000)
    await box.open()
    readings = await stored(box)
    dropped = dict(box.dropped)
    await box.close()
    return readings, dropped


async def test_while_commits_fail_memory_holds_the_bound_dropping_periodic_telemetry_first(
    tmp_path: Path,
) -> None:
    box = await failing_outbox(tmp_path)
    with locked(box.path):
        for i in range(60):
            box.put(heartbeat(i))
            box.put(seat(i))
            await box._commit()  # fails: the lock is held
            assert box.held <= 100
        assert (box.held, box.failing_commits) == (100, 60)
        assert box.dropped == {"heartbeat": 20}
    await box._commit()  # works
    assert (box.held, box.failing_commits, box.dropped_in_memory) == (0, 0, 20)
    await box.close()
    readings, dropped = await reopened_store(box.path)
    assert [r.seq for r in readings if r.kind == "heartbeat"] == list(range(20, 60))
    assert [r.seq for r in readings if r.kind == "seat"] == list(range(60))
    assert dropped == {"heartbeat": 20}  # in the store's drops table


async def test_with_no_periodic_telemetry_left_the_oldest_readings_go(tmp_path: Path) -> None:
    box = await failing_outbox(tmp_path)
    with locked(box.path):
        for i in range(150):
            box.put(seat(i))
        await box._commit()
        assert (box.held, dict(box.dropped)) == (100, {"seat": 50})
    await box.close()
    readings, dropped = await reopened_store(box.path)
    assert [r.seq for r in readings] == list(range(50, 150))
    assert dropped == {"seat": 50}


async def test_the_bound_and_the_recovery_are_logged_once_each_not_per_reading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = await failing_outbox(tmp_path)
    with caplog.at_level(logging.INFO, logger="edge.outbox"), locked(box.path):
        for i in range(300):
            box.put(seat(i))
            if i % 50 == 0:
                await box._commit()
    with caplog.at_level(logging.INFO, logger="edge.outbox"):
        await box._commit()
    await box.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("holds its bound of 100 readings" in m for m in messages) == 1
    assert sum("outbox commit failed (database is locked)" in m for m in messages) == 1
    (recovered,) = [m for m in messages if "outbox commits work again" in m]
    assert recovered.startswith("发件箱恢复写入")
    assert "after 6 failed; dropped in memory meanwhile: {'seat': 200}" in recovered


async def test_a_stop_during_a_stalled_commit_never_overfills_the_store(tmp_path: Path) -> None:
    """The commit under way is waited for, not abandoned: the final commit starts from it."""
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_readings=100, commit_interval=60, busy_timeout=5)
    await box.open()
    task = asyncio.create_task(box.run())
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    for i in range(100):
        box.put(seat(i))
    box._wake.set()
    while box.held == 0 or len(box._pending):  # the commit took them and waits for the lock
        await asyncio.sleep(0.01)
    for i in range(100, 200):
        box.put(seat(i))
    # The lock goes while the outbox is being stopped: its stalled commit then goes through.
    asyncio.get_running_loop().call_later(0.3, holder.execute, "ROLLBACK")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await box.close()
    holder.close()
    readings, dropped = await reopened_store(path)
    assert [r.seq for r in readings] == list(range(100, 200))
    assert dropped == {"seat": 100}


async def test_a_reading_arriving_while_a_stalled_commit_holds_the_whole_bound_is_dropped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_readings=1000, max_pending=100, commit_interval=60, busy_timeout=5)
    await box.open()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    for i in range(100):
        box.put(seat(i))
    commit = asyncio.create_task(box._commit())
    while len(box._pending):
        await asyncio.sleep(0.01)
    box.put(seat(100))  # the commit may store any of its 100 by now: the newcomer goes
    assert (box.held, dict(box.dropped)) == (100, {"seat": 1})
    holder.execute("ROLLBACK")
    holder.close()
    await commit
    await box.close()
    readings, dropped = await reopened_store(path)
    assert [r.seq for r in readings] == list(range(100))
    assert dropped == {"seat": 1}


async def test_a_full_filesystem_keeps_readings_in_memory_bounded_until_space_returns(
    tmp_path: Path,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounts a size-limited tmpfs: needs root (CI runs as root)")
    async with mounted_tmpfs(tmp_path / "card", size="1m") as card:
        box = Outbox(card / "o.sqlite3", max_readings=1000, max_pending=100, commit_interval=60)
        await box.open()
        for i in range(10):
            box.put(seat(i))
        await box._commit()
        await asyncio.to_thread(fill_filesystem, card / "filler")
        for i in range(10, 160):
            box.put(heartbeat(i) if i % 10 == 0 else seat(i))
            if i % 25 == 0:
                await box._commit()
            assert box.held <= 100
        assert box.failing_commits == 6
        assert len(await box.fetch(after=0, limit=1000)) == 10  # reads still work
        (card / "filler").unlink()
        await box._commit()
        assert box.failing_commits == 0
        await box.close()
        readings, dropped = await reopened_store(card / "o.sqlite3")
    # 150 readings into a bound of 100: the 15 heartbeats went first, then the 35 oldest seats.
    assert dropped == {"heartbeat": 15, "seat": 35}
    seqs = [r.seq for r in readings]
    assert seqs == list(range(10)) + [i for i in range(49, 160) if i % 10]


async def test_reads_for_the_publisher_wait_while_the_store_fails_and_then_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A read SQLite refuses is tried again every commit_interval, logged once: the publisher
    neither crashes nor spins. (The refusal: a table another process creates later.)"""
    box = Outbox(tmp_path / "o.sqlite3", max_readings=100, commit_interval=0.05)
    await box.open()

    def read_later_table() -> int:
        con = box._store._con
        assert con is not None
        return int(con.execute("SELECT COUNT(*) FROM later").fetchone()[0])

    with caplog.at_level(logging.INFO, logger="edge.outbox"):
        read = asyncio.create_task(box._read(read_later_table))
        await asyncio.sleep(0.3)
        assert not read.done()
        with contextlib.closing(sqlite3.connect(box.path)) as other:
            other.execute("CREATE TABLE later (x)")
            other.commit()
        assert await read == 0
    await box.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("outbox cannot be read (no such table: later)" in m for m in messages) == 1
    assert sum("outbox readable again" in m for m in messages) == 1


async def test_a_restamp_refused_by_a_locked_store_is_done_after_the_next_commit(
    tmp_path: Path,
) -> None:
    box = await failing_outbox(tmp_path)
    box.put(seat(1), untrusted_at=100.0)
    await box._commit()
    assert await box.fetch(after=0, limit=10) == []  # held: not published before the clock
    with locked(box.path):
        await box.restamp(T0.timestamp())  # refused; no error
        assert await box.fetch(after=0, limit=10) == []
        box.put(seat(2))
        await box._commit()  # fails too
    box.put(seat(3))
    await box._commit()  # works, and the restamp with it
    rows = [parse_reading(r.payload) for r in await box.fetch(after=0, limit=10)]
    assert [(r.seq, r.ts) for r in rows] == [
        (2, T0 + timedelta(seconds=2)),
        (3, T0 + timedelta(seconds=3)),
        (1, T0 + timedelta(seconds=100)),
    ]
    await box.close()
