"""Visitor counts from an entrance counter's cumulative totals.

Boards report totals since their last reset, never increments, so a lost
message costs nothing: the next total includes it. Visitors in an interval are
the sum of the increases between consecutive totals. A total lower than the one
before means the board restarted and counted from 0 again, so that total itself
is the increase since the restart. (InfluxQL's ``NON_NEGATIVE_DIFFERENCE`` drops
that step and would lose those visitors; this is why it is computed here.)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

__all__ = ["counted_between", "increases"]


def increases(totals: Iterable[int]) -> list[int]:
    """The visitors counted between each total and the one before it."""
    out: list[int] = []
    previous: int | None = None
    for total in totals:
        if previous is not None:
            out.append(total - previous if total >= previous else total)
        previous = total
    return out


def counted_between(points: Iterable[tuple[datetime, int]], start: datetime, end: datetime) -> int:
    """Visitors counted in ``[start, end)``, from ``(time, total)`` points in time order.

    The total just before ``start`` (if any) is the baseline, so an interval that
    begins between two reports still counts everything after its start.
    """
    baseline: int | None = None
    inside: list[int] = []
    for moment, total in points:
        if moment < start:
            baseline = total
        elif moment < end:
            inside.append(total)
    series = ([baseline] if baseline is not None else []) + inside
    return sum(increases(series)) + (inside[0] if baseline is None and inside else 0)
