"""The stress ladder: when a step holds, which rates to try next, and where two consumers
are tried after one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from bench.city.measure import Span

__all__ = ["MAX_GROWTH", "Step", "climb", "holds", "shared_rates"]

#: A step holds while the consumer's backlog grows by at most this share of the rate. Its
#: batches (up to 1 s each) make the backlog a sawtooth: over one step, a smaller deficit
#: cannot be told from it.
MAX_GROWTH = 0.10

#: Measures one step at a rate (messages/s offered) and returns its figures.
Step = Callable[[float], Awaitable[Span]]


def holds(span: Span, max_lag: float) -> bool:
    """The broker took ≥ 95 % of the offered rate, the consumer's backlog grew by at most
    ``MAX_GROWTH`` of it, its lag stayed ≤ ``max_lag`` s and it drained after."""
    growth = span.lag_growth / max(span.published, 1.0)
    return (
        span.published >= 0.95 * span.offered
        and growth <= MAX_GROWTH
        and span.lag_max_s <= max_lag
        and span.drained_s is not None
    )


async def climb(step: Step, rates: Sequence[float], *, search: bool) -> list[Span]:
    """Each rate until one does not hold. With ``search``: if even the first did not, halve
    it (twice at most) until one does; then once halfway between the highest rate that held
    and the lowest that did not. A step that did not drain ends the ladder (the next would
    start on a backlog)."""
    spans: list[Span] = []

    async def measured(rate: float) -> bool:
        span = await step(rate)
        spans.append(span)
        return span.drained_s is not None  # else the next step would start on a backlog

    for rate in rates:
        if not await measured(rate) or not spans[-1].holds:
            break
    if search:
        for _ in range(2):
            if any(s.holds for s in spans) or spans[-1].drained_s is None:
                break
            await measured(min(s.offered for s in spans) / 2)
        good = [s.offered for s in spans if s.holds]
        bad = [s.offered for s in spans if not s.holds]
        if good and bad and spans[-1].drained_s is not None:
            await measured((max(good) + min(bad)) / 2)
    return spans


def shared_rates(one: Sequence[Span]) -> list[float]:
    """Where one consumer stopped keeping up: its best rate, and the next it failed."""
    good = [s.offered for s in one if s.holds]
    bad = [s.offered for s in one if not s.holds and (not good or s.offered > max(good))]
    return sorted({*([max(good)] if good else []), *([min(bad)] if bad else [])})
