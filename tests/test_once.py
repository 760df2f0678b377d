"""Saying a thing once: the helpers behind every "log this only once"."""

from __future__ import annotations

from qihe.once import Once, OncePerInterval, OncePerKey


def test_once_says_a_condition_when_it_starts_and_again_only_after_it_ended() -> None:
    once = Once()
    assert [once.first(), once.first()] == [True, False]
    once.reset()
    assert [once.first(), once.first()] == [True, False]


def test_once_per_key_says_each_key_once_and_forgets_the_oldest_beyond_its_bound() -> None:
    seen = OncePerKey(size=2)
    assert [seen.first("a"), seen.first("b"), seen.first("a")] == [True, True, False]
    assert seen.first("c")  # "b" was the least recent: forgotten
    assert seen.first("b")


def test_once_per_interval_says_a_key_once_per_interval_and_counts_what_it_held_back() -> None:
    every = OncePerInterval[int](60.0)
    assert every.due(0x87, 0.0)
    assert not every.due(0x87, 30.0)
    assert not every.due(0x87, 59.9)
    assert every.due(0x97, 10.0)  # each key has its own interval
    assert every.suppressed(0x87) == 2
    assert every.suppressed(0x87) == 0  # the count is handed over once
    assert every.due(0x87, 60.0)
