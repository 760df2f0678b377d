"""China's public holidays and 调休 make-up working days, as yearly data (``config/calendar/``).

Every November the State Council General Office (国务院办公厅) publishes the next year's
holidays (节假日安排的通知): for each festival the days off (放假) and the Saturdays or Sundays
worked in exchange (调休上班). Each year is one file, ``YEAR.yaml``, read at start and never
downloaded (``docs/calendar.md``)::

    year: 2026
    source: 国务院办公厅关于2026年部分节假日安排的通知（2025年11月4日）
    festivals:
      - name: 春节
        name_en: Spring Festival
        days_off: {from: 2026-02-15, to: 2026-02-23}
        makeup_workdays: [2026-02-14, 2026-02-28]

A day is then a ``holiday`` (in a festival's days off), a ``makeup_workday`` (a weekend day
worked), or else a ``workday`` (Monday to Friday) or a ``weekend``. A year without a file counts
weekdays and weekends only, with a warning once; a ``provisional: true`` year (festival dates
from the lunar calendar, the notice not yet out) is used with a warning at start.

Dates are calendar dates of the site directory's zone (Asia/Shanghai): the functions here take
a date, never read a clock. The per-site side — opening hours on such days, temporary closures —
is :mod:`central.calendar_hours`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from qihe.configfile import ConfigError, load_config_file
from qihe.configtypes import StrictModel

__all__ = [
    "Closure",
    "DayKind",
    "Festival",
    "NationalCalendar",
    "closures_apart",
    "load_calendar",
]

log = logging.getLogger(__name__)

DayKind = Literal["workday", "weekend", "holiday", "makeup_workday"]

#: Text shown to people: any script, one line, bounded.
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\r\n\x00]+$")]

#: A notice may reach into the neighbouring year: the 2019 one gave 2018-12-30..2019-01-01 off
#: for New Year's Day and had 2018-12-29 worked. Further out than this is a mistake.
_SPILL = timedelta(days=7)
_YEAR_FILE = re.compile(r"^\d{4}$")


class _Span(StrictModel):
    """The days ``from`` .. ``to``, both included."""

    model_config = ConfigDict(populate_by_name=True)

    first: date = Field(alias="from")
    last: date = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.last < self.first:
            raise ValueError(f"to {self.last} is before from {self.first}")
        return self

    def days(self) -> Iterator[date]:
        day = self.first
        while day <= self.last:
            yield day
            day += timedelta(days=1)

    def covers(self, day: date) -> bool:
        return self.first <= day <= self.last

    def __str__(self) -> str:
        return f"{self.first}..{self.last}"


class Festival(StrictModel):
    """One festival of a year's notice: its days off and the weekend days worked for it."""

    name: Text
    name_en: Text
    #: ``days_off``, not ``off``: YAML reads a bare ``off`` as false.
    days_off: _Span
    makeup_workdays: tuple[date, ...] = ()


class _Year(StrictModel):
    """One ``YEAR.yaml`` file."""

    year: Annotated[int, Field(ge=2000, le=2100)]
    #: The notice the dates come from (or, provisional, how they were worked out).
    source: Text
    #: The notice is not out yet: dates from the lunar calendar, to be checked when it is.
    provisional: bool = False
    festivals: tuple[Festival, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        lo, hi = date(self.year, 1, 1) - _SPILL, date(self.year, 12, 31) + _SPILL
        off: dict[date, str] = {}
        work: dict[date, str] = {}
        for festival in self.festivals:
            for day in (festival.days_off.first, festival.days_off.last, *festival.makeup_workdays):
                if not lo <= day <= hi:
                    raise ValueError(f"{festival.name}: {day} is not in {self.year}")
            for day in festival.days_off.days():
                if day in off:
                    raise ValueError(
                        f"{festival.name} {festival.days_off} overlaps {off[day]} on {day}"
                    )
                off[day] = festival.name
            for day in festival.makeup_workdays:
                if day.weekday() < 5:
                    raise ValueError(
                        f"{festival.name}: make-up working day {day} is a "
                        f"{day:%A}, not a Saturday or Sunday"
                    )
                if day in work:
                    raise ValueError(f"{festival.name}: {day} is a make-up working day twice")
                work[day] = festival.name
        both = sorted(set(off) & set(work))
        if both:
            raise ValueError(
                f"{both[0]} is both a holiday ({off[both[0]]}) "
                f"and a make-up working day ({work[both[0]]})"
            )
        return self


@dataclass(frozen=True, slots=True)
class CalendarDay:
    """What kind of day ``day`` is, and for which festival (holidays and make-up days)."""

    day: date
    kind: DayKind
    festival: Festival | None = None


class NationalCalendar:
    """The holiday years known, by date. ``NationalCalendar()`` knows none and never warns:
    a site directory without ``calendar:`` has weekdays and weekends only."""

    def __init__(self, years: Iterable[_Year] = (), *, warn_missing: bool = False) -> None:
        self._days: dict[date, tuple[DayKind, Festival, int]] = {}
        self.years: dict[int, _Year] = {}
        self._warn_missing = warn_missing
        self._warned: set[int] = set()
        for year in years:
            if year.year in self.years:
                raise ValueError(f"{year.year} is given twice")
            self.years[year.year] = year
            for festival in year.festivals:
                self._put(festival.days_off.days(), "holiday", festival, year.year)
                self._put(festival.makeup_workdays, "makeup_workday", festival, year.year)

    def _put(self, days: Iterable[date], kind: DayKind, festival: Festival, year: int) -> None:
        for day in days:
            known = self._days.get(day)
            if known is not None and known[:2] != (kind, festival):
                raise ValueError(
                    f"{day}: {year} says {kind} ({festival.name}), "
                    f"{known[2]} says {known[0]} ({known[1].name})"
                )
            self._days[day] = (kind, festival, year)

    def day(self, day: date) -> CalendarDay:
        """The kind of ``day`` (a date in the directory's zone)."""
        known = self._days.get(day)
        if known is not None:
            return CalendarDay(day, known[0], known[1])
        if self._warn_missing and day.year not in self.years and day.year not in self._warned:
            self._warned.add(day.year)
            log.warning(
                "%d 年节假日安排未配置（calendar/%d.yaml），按周一至周五上班、周六周日休息计算 / "
                "no holiday calendar for %d: weekdays and weekends only (docs/calendar.md)",
                day.year,
                day.year,
                day.year,
            )
        return CalendarDay(day, "workday" if day.weekday() < 5 else "weekend")

    def day_kind(self, day: date) -> DayKind:
        return self.day(day).kind


def load_calendar(folder: Path) -> NationalCalendar:
    """Every ``YEAR.yaml`` in ``folder``; raise :class:`ConfigError` naming the file and what is
    wrong (no network). A provisional year is logged as a warning."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: holiday calendar folder not found")
    years: list[_Year] = []
    for path in sorted(folder.glob("*.y*ml")):
        if not _YEAR_FILE.fullmatch(path.stem) or path.suffix not in (".yaml", ".yml"):
            raise ConfigError(f"{path}: a holiday calendar file is named for its year: 2026.yaml")
        year = load_config_file(path, _Year)
        if year.year != int(path.stem):
            raise ConfigError(f"{path}: says year {year.year}; the file is named for {path.stem}")
        if year.provisional:
            log.warning(
                "%s：%d 年节假日安排为暂定（按农历推算，国务院办公厅通知尚未核对），"
                "通知发布后请核对更新 / the %d holidays are provisional (lunar calendar dates, "
                "not yet checked against the State Council notice): update the file when the "
                "notice is out",
                path,
                year.year,
                year.year,
            )
        years.append(year)
    try:
        return NationalCalendar(years, warn_missing=True)
    except ValueError as exc:
        raise ConfigError(f"{folder}: the years disagree: {exc}") from None


class Closure(_Span):
    """A site closed for whole days (设备检修, 消杀, 搬迁...): ``from``/``to`` included."""

    #: Why, as people should read it; Chinese first (``设备检修``).
    reason: Text
    reason_en: Text | None = None


def closures_apart(closures: tuple[Closure, ...]) -> tuple[Closure, ...]:
    """A site's closures, refused when two of them share a day."""
    ordered = sorted(closures, key=lambda c: c.first)
    for before, after in pairwise(ordered):
        if after.first <= before.last:
            raise ValueError(f"closures {before} and {after} overlap")
    return closures
