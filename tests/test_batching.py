"""The consumer's intake queue: bounded in messages, taken in batches bounded in points."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from central.consumer.batching import POLL_S, BatchQueue


def points_queue(maxsize: int = 100) -> BatchQueue[int]:
    """Items are their own point count (a backlog message of n readings is n)."""
    return BatchQueue(maxsize, weight=lambda n: n)


def take(q: BatchQueue[int], size: int, *, interval: float = 1.0, idle: float = 0.01) -> list[int]:
    return q.take(size=size, interval=interval, idle=idle, closing=threading.Event())


def test_a_batch_holds_at_most_batch_size_points_and_never_splits_a_message() -> None:
    q = points_queue()
    for n in [700, 700, 700, 538, 1, 1]:
        q.put(n)
    assert take(q, 1500) == [700, 700]
    assert take(q, 1500) == [700, 538, 1, 1]


def test_a_message_larger_than_the_batch_is_a_batch_of_its_own() -> None:
    q = points_queue()
    for n in [1000, 1, 1]:
        q.put(n)
    assert take(q, 500) == [1000]
    assert take(q, 500) == [1, 1]


def test_a_message_without_points_still_counts_as_one() -> None:
    q: BatchQueue[int] = BatchQueue(100, weight=lambda n: 0)  # e.g. refused messages
    for n in range(5):
        q.put(n)
    assert take(q, 3) == [0, 1, 2]


def test_an_empty_queue_gives_an_empty_batch_after_the_poll() -> None:
    started = time.monotonic()
    assert take(points_queue(), 10) == []
    assert POLL_S * 0.9 <= time.monotonic() - started < POLL_S * 5


def test_a_batch_is_taken_early_once_nothing_came_for_idle() -> None:
    q = points_queue()
    q.put(1)
    started = time.monotonic()
    assert take(q, 10, interval=5.0, idle=0.05) == [1]
    assert time.monotonic() - started < 1.0


def test_a_full_batch_wakes_the_taker_before_idle() -> None:
    q = points_queue()
    q.put(1)

    def fill() -> None:
        time.sleep(0.05)
        q.put(9)

    filler = threading.Thread(target=fill)
    filler.start()
    started = time.monotonic()
    assert take(q, 10, interval=5.0, idle=2.0) == [1, 9]
    assert time.monotonic() - started < 1.0
    filler.join()


def test_a_full_queue_refuses_after_its_timeout() -> None:
    q = points_queue(maxsize=2)
    q.put(1)
    q.put(1)
    with pytest.raises(queue.Full):
        q.put(1)  # no timeout: at once
    started = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(1, timeout=0.05)
    assert time.monotonic() - started >= 0.05
    assert q.qsize() == 2


def test_taking_a_batch_makes_room_for_a_waiting_put() -> None:
    q = points_queue(maxsize=1)
    q.put(1)
    put_done = threading.Event()

    def put() -> None:
        q.put(2, timeout=5.0)
        put_done.set()

    putter = threading.Thread(target=put)
    putter.start()
    assert take(q, 1) == [1]
    assert put_done.wait(5.0)
    assert take(q, 1) == [2]
    putter.join()


def test_closing_takes_what_is_queued_without_waiting() -> None:
    q = points_queue()
    q.put(1)
    closing = threading.Event()
    closing.set()
    started = time.monotonic()
    assert q.take(size=10, interval=5.0, idle=5.0, closing=closing) == [1]
    assert time.monotonic() - started < 1.0
