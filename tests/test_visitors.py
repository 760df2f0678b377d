"""Visitor counts from cumulative entrance totals stay right across resets and lost reports."""

from __future__ import annotations

import pytest

from central.visitors import increases


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
