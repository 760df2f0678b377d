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

__all__ = ["increases"]


def increases(totals: Iterable[int]) -> list[int]:
    """The visitors counted between each total and the one before it."""
    out: list[int] = []
    previous: int | None = None
    for total in totals:
        if previous is not None:
            out.append(total - previous if total >= previous else total)
        previous = total
    return out
