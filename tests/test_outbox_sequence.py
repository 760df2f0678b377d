"""The outbox stores a board's sequence state when a WINDOW moved it without a reading."""

from __future__ import annotations

from pathlib import Path

from edge.outbox import Outbox
from edge.sequence import TrackerState
from tests.test_outbox import seat


async def test_a_sequence_state_moved_without_a_reading_is_stored_and_acknowledged(
    tmp_path: Path,
) -> None:
    """A WINDOW gives gaps up and carries the board's count but no reading: the next commit
    still stores the state, so the ack after it can move past what was given up."""
    box = Outbox(tmp_path / "o.sqlite3", max_readings=100, commit_interval=60)
    await box.open()
    state = TrackerState(41, boot=7)
    box.track_sequence("board-a", lambda: state)
    seen: list[dict[str, TrackerState]] = []
    box.on_commit(seen.append)
    box.put(seat(41))
    await box._commit()
    state = TrackerState(42, boot=7, dropped=3)  # the WINDOW numbered 42: 3 given up
    await box._commit()
    heard = [s["board-a"] for s in seen]
    await box.close()

    reopened = Outbox(tmp_path / "o.sqlite3", max_readings=100)
    await reopened.open()
    assert reopened.sequence_state == {"board-a": TrackerState(42, boot=7, dropped=3)}
    await reopened.close()
    assert heard == [TrackerState(41, boot=7), TrackerState(42, boot=7, dropped=3)]
