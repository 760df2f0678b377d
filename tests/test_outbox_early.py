"""Publish before the group commit: the live path reads memory, a reading acknowledged before
its commit is never written, and a resend after a SIGKILL gets the stamp it was published with
(``docs/reliability.md``, issue 17)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from pathlib import Path

from edge.outbox import Outbox
from edge.sequence import SequenceTracker, TrackerState
from edge.stamp_journal import REWRITE_AFTER, StampJournal
from qihe.contract import parse_reading
from tests.mqtt_helpers import wait_until
from tests.test_outbox import seat

# -- the live path -------------------------------------------------------------------------


async def test_a_reading_is_readable_live_as_soon_as_it_is_put_before_any_commit(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_readings=100, commit_interval=60)
    await box.open()
    box.put(seat(1))
    box.put(seat(2))
    await box.wait_new(0)  # returns at once: no commit needed
    live = await box.live(after=0, limit=10)
    assert [parse_reading(r.payload).seq for r in live] == [1, 2]
    assert await box.live(after=live[0].id, limit=10) == live[1:]
    assert await box.fetch(after=0, limit=10) == []  # not stored yet
    assert box.commits == 0
    await box.close()


async def test_a_reading_acknowledged_before_its_commit_is_never_written(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_readings=100, commit_interval=60)
    await box.open()
    for n in range(3):
        box.put(seat(n))
    first, _, third = await box.live(after=0, limit=10)
    box.confirm([first.id, third.id])  # their PUBACKs came before the commit
    assert len(box) == 1
    await box._commit()
    assert [parse_reading(r.payload).seq for r in await box.fetch(after=0, limit=10)] == [1]
    assert (box.stored, len(box)) == (1, 1)
    await box.close()

    reopened = Outbox(tmp_path / "o.sqlite3", max_readings=100)
    await reopened.open()
    assert [parse_reading(r.payload).seq for r in await reopened.fetch(after=0, limit=10)] == [1]
    reopened.put(seat(9))  # ids go on past every stored one
    rows = await reopened.live(after=0, limit=10)
    assert [parse_reading(r.payload).seq for r in rows] == [1, 9]
    assert rows[1].id > reopened.last_id
    await reopened.close()


async def test_readings_the_broker_acknowledged_leave_memory_at_once_and_hold_no_room(
    tmp_path: Path,
) -> None:
    """While commits fail, memory is bounded; a delivered reading must not take room there,
    nor be counted as dropped when the bound is reached."""
    box = Outbox(tmp_path / "o.sqlite3", max_readings=100, max_pending=2, commit_interval=60)
    await box.open()
    box.put(seat(1))
    box.put(seat(2))
    box.confirm(r.id for r in await box.live(after=0, limit=10))
    box.put(seat(3))
    box.put(seat(4))
    assert (box.held, box.dropped_in_memory, len(box)) == (2, 0, 2)
    live = await box.live(after=0, limit=10)
    assert [parse_reading(r.payload).seq for r in live] == [3, 4]
    await box._commit()
    assert [parse_reading(r.payload).seq for r in await box.fetch(after=0, limit=10)] == [3, 4]
    await box.close()


async def test_a_publisher_behind_a_commit_reads_the_rest_from_the_store(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_readings=100, commit_interval=60)
    await box.open()
    for n in range(5):
        box.put(seat(n))
    (first,) = await box.live(after=0, limit=1)
    await box._commit()  # the other four left memory for the store meanwhile
    box.put(seat(5))
    rest = await box.live(after=first.id, limit=10)
    assert [parse_reading(r.payload).seq for r in rest] == [1, 2, 3, 4, 5]
    assert [parse_reading(r.payload).seq for r in await box.live(after=0, limit=3)] == [0, 1, 2]
    await box.close()


async def test_readings_held_for_the_clock_are_not_live_until_restamped(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_readings=100, commit_interval=60)
    await box.open()
    box.put(seat(1), untrusted_at=10.0)
    await box._commit()  # stored, held
    box.put(seat(2), untrusted_at=11.0)  # in memory, held
    assert await box.live(after=0, limit=10) == []
    await box.restamp(1_800_000_000.0)
    seqs = [parse_reading(r.payload).seq for r in await box.live(after=0, limit=10)]
    assert sorted(seqs) == [1, 2]
    box.put(seat(3))
    live = await box.live(after=0, limit=10)
    assert len({r.id for r in live}) == 3  # ids never collide with the restamped ones
    await box.close()


# -- the stamp journal ---------------------------------------------------------------------


def test_the_journal_gives_back_what_was_recorded_and_no_commit_covered(tmp_path: Path) -> None:
    path = tmp_path / "stamps-board-a"
    journal = StampJournal(path)
    assert journal.open() == []
    journal.record(7, 10, 1_000)
    mark = journal.mark()
    journal.record(7, 11, 1_010)
    journal.record(None, 12, 1_020)
    journal.covered(mark)
    journal.close()  # a SIGKILL leaves the same file: nothing is buffered in the process
    with path.open("ab") as fh:
        fh.write(b"7 13")  # a line cut short by the kill
    again = StampJournal(path)
    # The file is only rewritten once it is long: what a commit covered may still be there,
    # and the tracker's replay sees it as a repeat.
    assert again.open() == [(7, 10, 1_000), (7, 11, 1_010), (None, 12, 1_020)]
    again.close()


def test_the_journal_is_rewritten_with_only_the_uncovered_entries_once_long(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stamps-board-a"
    journal = StampJournal(path)
    journal.open()
    n = 0
    while path.stat().st_size <= REWRITE_AFTER:
        journal.record(1, n % 0x10000, 1_000_000 + n)
        n += 1
    mark = journal.mark()
    journal.record(1, n, 5_000_000)
    journal.covered(mark)
    assert path.stat().st_size < 100
    journal.record(1, n + 1, 5_000_010)
    journal.close()
    assert StampJournal(path).open() == [(1, n, 5_000_000), (1, n + 1, 5_000_010)]
    assert not os.path.exists(str(path) + ".new")


# -- the stamps of resent frames -----------------------------------------------------------


def published_then_killed(
    committed: TrackerState, frames: list[int], start_us: int
) -> tuple[dict[int, int], list[tuple[int | None, int, int]]]:
    """A tracker restored from ``committed`` stamps ``frames`` (10 ms apart), journalling them
    as the gateway does; returns the stamps and the journal."""
    tracker = SequenceTracker(committed)
    stamps: dict[int, int] = {}
    journal: list[tuple[int | None, int, int]] = []
    for i, seq in enumerate(frames):
        stamp = tracker.observe(seq, start_us + 10_000 * i).stamp_us
        assert stamp is not None
        stamps[seq] = stamp
        journal.append((tracker.boot, seq, stamp))
    return stamps, journal


def test_a_resent_frame_gets_the_stamp_it_was_published_with() -> None:
    committed = TrackerState(9, boot=3)
    before, journal = published_then_killed(committed, [10, 11, 12], 1_000_000_000)
    restarted = SequenceTracker(committed)
    restarted.plan(journal)
    later = 1_000_000_000 + 5_000_000  # the resends come seconds later
    after = {seq: restarted.observe(seq, later + seq).stamp_us for seq in (10, 11, 12)}
    assert after == before
    assert restarted.observe(13, later + 13).stamp_us == later + 13  # new frames: their time


def test_a_frame_lost_before_the_kill_is_stamped_between_its_neighbours_after_it() -> None:
    committed = TrackerState(9, boot=3)
    # 12 was destroyed on the wire before the kill: 13 opened a gap for it.
    before, journal = published_then_killed(committed, [10, 11, 13], 2_000_000_000)
    restarted = SequenceTracker(committed)
    restarted.plan(journal)
    later = 2_000_000_000 + 5_000_000
    after = [restarted.observe(seq, later + seq).stamp_us for seq in (10, 11, 12, 13)]
    assert after[:2] == [before[10], before[11]] and after[3] == before[13]
    assert after == sorted(after) and len(set(after)) == 4  # in the board's order, distinct


def test_resends_filling_the_gaps_a_newer_frame_opened_keep_their_stamps() -> None:
    committed = TrackerState(9, boot=3)
    before, journal = published_then_killed(committed, [10, 11, 12], 3_000_000_000)
    restarted = SequenceTracker(committed)
    restarted.plan(journal)
    later = 3_000_000_000 + 5_000_000
    restarted.observe(20, later)  # a newer frame first (a WINDOW, say): 10-19 become gaps
    assert {seq: restarted.observe(seq, later + seq).stamp_us for seq in (10, 11, 12)} == before


def test_the_stamps_of_an_earlier_boot_are_not_given_to_a_rebooted_board() -> None:
    committed = TrackerState(9, boot=3)
    _, journal = published_then_killed(committed, [10, 11], 4_000_000_000)
    restarted = SequenceTracker(committed)
    restarted.plan(journal)
    assert restarted.hello(4, 0)  # the board rebooted meanwhile: numbering starts afresh
    later = 4_000_000_000 + 5_000_000
    restarted.observe(0, later)
    assert restarted.observe(10, later + 100_000).stamp_us == later + 100_000


def test_no_stamp_is_journalled_while_the_clock_is_not_trusted(tmp_path: Path) -> None:
    """Such a reading is held, restamped and published after it is stored: its stamp now is
    not the one it is published with, and must not be given to its resend."""
    trusted = False
    journal = StampJournal(tmp_path / "stamps-board-a", trusted=lambda: trusted)
    journal.open()
    journal.record(1, 10, 1_000)
    trusted = True
    journal.record(1, 11, 2_000)
    journal.close()
    assert StampJournal(tmp_path / "stamps-board-a").open() == [(1, 11, 2_000)]


async def test_an_idle_outbox_still_asks_its_store_and_sees_it_refuse_and_recover(
    tmp_path: Path,
) -> None:
    """Published readings may leave every tick with nothing to write: the tick probes the
    store's write lock (writing nothing), so a locked file counts as failing commits and the
    attempt listeners (the watchdog) hear about each probe."""
    outbox = Outbox(
        tmp_path / "outbox.db", max_readings=100, commit_interval=0.02, busy_timeout=0.02
    )
    attempts = 0

    def attempted() -> None:
        nonlocal attempts
        attempts += 1

    outbox.on_attempt(attempted)
    await outbox.open()
    task = asyncio.create_task(outbox.run())
    try:
        await wait_until(lambda: attempts >= 3)
        assert outbox.failing_commits == 0
        holder = sqlite3.connect(tmp_path / "outbox.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        await wait_until(lambda: outbox.failing_commits >= 3)
        holder.execute("ROLLBACK")
        holder.close()
        await wait_until(lambda: outbox.failing_commits == 0)
        assert len(outbox) == 0 and outbox.commits == 1  # the recovery, nothing written
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await outbox.close()
