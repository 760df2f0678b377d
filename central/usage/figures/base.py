"""What a usage figure is (:class:`Figure`), and the one skeleton that computes every figure.

A figure is a name, bilingual titles, its columns and one function that works out the rows of a
single site (:attr:`Figure.rows`). :func:`compute` does the rest the same way for all of them:
it checks the range and stops it at ``now``, asks each site for its rows, puts the site's id and
name in front of them, gathers the notes and builds the :class:`~central.usage.table.Table`.

Conventions shared by all figures (``docs/statistics.md`` defines each one, with the query text
and the edge cases):

- ``start``/``end`` are aware datetimes, the range is ``[start, end)``; a range reaching past
  ``now`` stops at ``now`` (the last state holds until now, not into the future), and periods
  that have not begun are left out.
- Periods are local (the directory's zone, Asia/Shanghai by default): hours, days cut at local
  midnight, ISO weeks from Monday, months. ``period`` is the period's local start; the first and
  last period may be cut by the range.
- Seats are the directory's seats (``SiteSpec.all_seats()``); door and counter sensors are the
  ones that report at the site. A sensor without any reading counts as 0 (seat free).
- Figures never print; the command (:mod:`central.usage.run_figures`) and the charts render the
  Table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Literal

from central.calendar import NationalCalendar
from central.sites import SiteDirectory, SiteSpec
from central.usage.client import ReadingsSource, SelectionError
from central.usage.steps import Bucket, Granularity, buckets
from central.usage.table import Column, Table, Value

__all__ = ["PERIOD", "Ask", "Figure", "Row", "SiteRows", "Span", "compute", "rounded", "sites_in"]

#: One row of a site, without the site's id and name (:func:`compute` adds them).
Row = dict[str, Value]
#: A site's rows, and the notes a reader must know about them.
SiteRows = tuple[list[Row], list[str]]

PERIOD = Column("period", "时段", "Period", kind="time")
_SITE = Column("site", "站点编号", "Site ID")
_NAME = Column("site_name", "站点", "Site")
_FUTURE = "范围尚未开始 / the range lies in the future: nothing to count"


@dataclass(frozen=True, slots=True)
class Ask:
    """What a figure is asked besides the sites and the range. ``by``: the period of the rows
    (the figure's own default when None); ``per``: a row per site or per seat (utilisation);
    ``weeks``: how many weeks before the end are looked at (typical); ``co2_ppm``: the CO₂
    level whose minutes above are counted (air)."""

    by: Granularity | None = None
    per: Literal["site", "seat"] = "site"
    weeks: int = 4
    co2_ppm: float = 1000.0


@dataclass(frozen=True, slots=True)
class Span:
    """What a figure's rows are computed from: the readings, the range ``[start, stop)`` in UTC
    (``stop`` no later than now), the directory's zone, what was asked and the holiday
    calendar (``docs/calendar.md``)."""

    client: ReadingsSource
    start: datetime
    stop: datetime
    zone: tzinfo
    ask: Ask
    calendar: NationalCalendar = field(default_factory=NationalCalendar)
    _buckets: dict[Granularity, list[Bucket]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def begun(self) -> bool:
        """False when the whole range lies after now: there is nothing to read."""
        return self.stop > self.start

    def buckets(self, granularity: Granularity) -> list[Bucket]:
        """The local periods the range touches (the same list for every site)."""
        if granularity not in self._buckets:
            self._buckets[granularity] = buckets(self.start, self.stop, granularity, self.zone)
        return self._buckets[granularity]

    def periods(self) -> list[Bucket]:
        """The periods of ``ask.by``; without one, the whole range as one (none before it has
        begun)."""
        if self.ask.by is not None:
            return self.buckets(self.ask.by)
        return (
            [Bucket(self.start.astimezone(self.zone), self.start, self.stop)] if self.begun else []
        )


def _as_asked(start: datetime, end: datetime, ask: Ask, zone: tzinfo) -> tuple[datetime, datetime]:
    return start, end


def _unchanged(notes: tuple[str, ...], ask: Ask) -> tuple[str, ...]:
    return notes


@dataclass(frozen=True, slots=True)
class Figure:
    """One usage figure, as :func:`compute` needs it. Every figure is one of these, listed in
    :data:`central.usage.figures.registry.FIGURES`."""

    name: str
    title_zh: str
    title_en: str
    #: The columns after the site's id and name (some figures' columns depend on ``ask``).
    columns: Callable[[Ask], tuple[Column, ...]]
    #: One site's rows and the notes about it.
    rows: Callable[[Span, SiteSpec], SiteRows]
    #: The period of the rows when none is asked; None: the whole range, unless asked.
    by: Granularity | None = None
    #: The range looked at, from the one asked for (typical: the weeks before its end).
    window: Callable[[datetime, datetime, Ask, tzinfo], tuple[datetime, datetime]] = _as_asked
    #: The notes above the sites' own, from the skeleton's ("the range lies in the future",
    #: when it does): a figure adds what a reader must know about the figure itself.
    head_notes: Callable[[tuple[str, ...], Ask], tuple[str, ...]] = _unchanged


def compute(
    figure: Figure,
    client: ReadingsSource,
    directory: SiteDirectory,
    sites: Sequence[SiteSpec],
    start: datetime,
    end: datetime,
    ask: Ask = Ask(),
    *,
    now: datetime | None = None,
) -> Table:
    """``figure`` for ``sites`` over ``[start, end)``, the range stopped at ``now`` (the wall
    clock when None). Raises :class:`SelectionError` for a range that makes no sense."""
    ask = replace(ask, by=ask.by or figure.by)
    start, end = figure.window(start, end, ask, directory.zone)
    for name, moment in (("start", start), ("end", end)):
        if moment.tzinfo is None:
            raise SelectionError(f"{name} {moment.isoformat()} has no time zone")
    if end <= start:
        raise SelectionError(f"the range ends ({end.isoformat()}) before it starts")
    current = (now or datetime.now(UTC)).astimezone(UTC)
    span = Span(
        client, start.astimezone(UTC), min(end.astimezone(UTC), current), directory.zone, ask,
        directory.national,
    )  # fmt: skip
    rows: list[Row] = []
    notes: list[str] = []
    for site in sites:
        site_rows, site_notes = figure.rows(span, site)
        rows += [{"site": site.id, "site_name": site.name, **row} for row in site_rows]
        notes += site_notes
    head = figure.head_notes(() if span.begun else (_FUTURE,), ask)
    columns = (_SITE, _NAME, *figure.columns(ask))
    return Table(
        figure.name, figure.title_zh, figure.title_en, columns, tuple(rows), (*head, *notes)
    )


def sites_in(
    directory: SiteDirectory, ids: Sequence[str] = (), district: str | None = None
) -> list[SiteSpec]:
    """The sites asked for, in directory order: by id, by district (its Chinese or English
    name), both (a site must match both), or every site when neither is given."""
    known = [site.id for site in directory.sites]
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise SelectionError(f"unknown site {', '.join(unknown)} (known: {', '.join(known)})")
    chosen = [s for s in directory.sites if not ids or s.id in ids]
    if district is not None:
        wanted = district.strip().casefold()
        names = {d for s in directory.sites for d in (s.district, s.district_en) if d}
        if not any(d.casefold() == wanted for d in names):
            raise SelectionError(f"unknown district {district} (known: {', '.join(sorted(names))})")
        chosen = [
            s
            for s in chosen
            if wanted in {(d or "").casefold() for d in (s.district, s.district_en)}
        ]
        if not chosen:
            raise SelectionError(f"none of the sites {', '.join(ids)} is in district {district}")
    return chosen


def rounded(value: float | None, digits: int) -> float | None:
    """``value`` rounded for the table; None stays None (no data is not 0)."""
    return None if value is None else round(value, digits)
