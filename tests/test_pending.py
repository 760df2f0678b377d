"""The outbox's bounded in-memory queue: the store's drop policy, O(1) per reading."""

from __future__ import annotations

from collections import Counter

from edge.outbox.pending import PendingQueue, Row


def row(kind: str, n: int) -> Row:
    periodic = int(kind in ("heartbeat", "link", "outbox", "system"))
    return (kind, f"d.{n}", periodic, f"{kind}-{n}".encode(), None, None)


def payloads(rows: list[Row]) -> list[str]:
    return [r[3].decode() for r in rows]


def test_periodic_telemetry_goes_first_then_the_oldest_reading() -> None:
    queue = PendingQueue(3)
    rows = (row("seat", 1), row("heartbeat", 2), row("seat", 3), row("seat", 4), row("door", 5))
    dropped = Counter(kind for r in rows if (kind := queue.append(r)) is not None)
    assert dropped == {"heartbeat": 1, "seat": 1}
    assert payloads(queue.take()) == ["seat-3", "seat-4", "door-5"]


def test_a_periodic_newcomer_goes_before_any_state_reading() -> None:
    queue = PendingQueue(2)
    queue.append(row("seat", 1))
    queue.append(row("seat", 2))
    assert queue.append(row("heartbeat", 3)) == "heartbeat"
    assert payloads(queue.take()) == ["seat-1", "seat-2"]


def test_rows_given_back_by_a_failed_commit_wait_before_newer_ones_within_the_bound() -> None:
    queue = PendingQueue(4)
    for n in range(3):
        queue.append(row("seat", n))
    taken = queue.take()
    assert (len(queue), queue.held) == (0, 3)
    queue.append(row("seat", 3))  # arrives while the commit is under way
    assert queue.append(row("seat", 4)) == "seat"  # the commit holds 3: the newest goes
    assert queue.give_back(taken) == {}
    assert payloads(queue.take()) == ["seat-0", "seat-1", "seat-2", "seat-4"]


def test_the_newcomer_is_dropped_when_a_commit_under_way_holds_the_whole_bound() -> None:
    queue = PendingQueue(2)
    queue.append(row("seat", 1))
    queue.append(row("seat", 2))
    taken = queue.take()
    assert queue.append(row("seat", 3)) == "seat"
    queue.committed(taken)
    assert queue.held == 0


def test_many_drops_keep_order_and_count_through_compaction() -> None:
    queue = PendingQueue(1000)
    dropped: Counter[str] = Counter()
    for n in range(50_000):
        kind = queue.append(row("heartbeat" if n % 3 == 0 else "seat", n))
        if kind is not None:
            dropped[kind] += 1
        assert queue.held <= 1000
    kept = queue.take()
    # Heartbeats were dropped first each time: none is left, only the newest 1000 seats.
    assert [r[3] for r in kept] == [f"seat-{n}".encode() for n in range(50_000) if n % 3 != 0][
        -1000:
    ]
    assert dropped.total() == 49_000
    assert dropped["heartbeat"] == len(range(0, 50_000, 3))


def with_id(kind: str, row_id: int, *, periodic: bool = False) -> Row:
    return (kind, f"s{row_id}", int(periodic), b"{}", None, None, row_id)


def test_the_bound_spares_rows_handed_to_the_publisher_while_others_are_left() -> None:
    """A row the publisher was handed may be in flight, its PUBACK on the way: dropping it
    would count as lost a reading that lands. The bound drops the others first."""
    queue = PendingQueue(bound=4)
    queue.append(with_id("link", 1, periodic=True))
    queue.append(with_id("seat", 2))
    queue.append(with_id("link", 3, periodic=True))
    queue.append(with_id("seat", 4))
    queue.handed = 2
    assert queue.append(with_id("seat", 5)) == "link"  # id 3, not the handed id 1
    assert queue.append(with_id("seat", 6)) == "seat"  # id 4, not the handed id 2
    assert [r[6] for r in queue.newer(0, 10)] == [1, 2, 5, 6]


def test_when_everything_held_was_handed_the_newcomer_goes() -> None:
    queue = PendingQueue(bound=2)
    queue.append(with_id("seat", 1))
    queue.append(with_id("link", 2, periodic=True))
    queue.handed = 2
    assert queue.append(with_id("seat", 3)) == "seat"
    assert [r[6] for r in queue.newer(0, 10)] == [1, 2]


def test_a_failed_commit_given_back_keeps_the_bound_even_if_it_must_drop_a_handed_row() -> None:
    queue = PendingQueue(bound=3)
    for row_id in (1, 2, 3):
        queue.append(with_id("seat", row_id))
    rows = queue.take()
    queue.handed = 3
    queue.bound = 2  # as if the rows came back to a smaller room
    assert queue.give_back(rows) == Counter({"seat": 1})
    assert queue.held == 2
    assert [r[6] for r in queue.newer(0, 10)] == [2, 3]
