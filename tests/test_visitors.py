"""Visitor counts from cumulative entrance totals stay right across resets and lost reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from central.visitors import counted_between, increases

T0 = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("totals", "visitors"),
    [
        pytest.param([100, 130], 30, id="plain-increase"),
        pytest.param([100, 130, 12, 42], 72, id="reset-to-0-then-12-then-42"),
        pytest.param([100, 100, 100], 0, id="repeats-add-nothing"),
        pytest.param([5, 9, 0, 0, 3], 7, id="reset-with-nobody-yet"),
        pytest.param([10, 25], 15, id="reports-in-between-lost"),
    ],
)
def test_increases_count_a_lower_total_as_a_restart_from_zero(
    totals: list[int], visitors: int
) -> None:
    assert sum(increases(totals)) == visitors


def test_an_interval_counts_from_the_total_just_before_it() -> None:
    points = [
        (T0 + timedelta(minutes=m), total) for m, total in [(0, 100), (30, 130), (60, 12), (90, 42)]
    ]
    assert counted_between(points, T0 + timedelta(minutes=10), T0 + timedelta(minutes=70)) == 42
    assert counted_between(points, T0, T0 + timedelta(hours=2)) == 100 + 72


def test_a_counter_first_seen_inside_the_interval_counts_from_its_reset() -> None:
    points = [(T0, 4), (T0 + timedelta(minutes=5), 9)]
    assert counted_between(points, T0 - timedelta(hours=1), T0 + timedelta(hours=1)) == 9
