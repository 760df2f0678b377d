"""The site directory (``config/sites.yaml``): what people call each site and how it is laid out.

Ids (site, gateway, sensor) are the ASCII slugs of the wire contract; everything a person
reads — names, districts, addresses, seat labels — may be Chinese. Opening hours are in the
directory's time zone (Asia/Shanghai by default) and are used by the live pages, the alert
rules and the statistics alike.

Opening hours are written per weekday or weekday range::

    opening_hours:
      mon-fri: "08:30-12:00, 14:00-21:00"
      sat: "09:00-17:00"
      sun: closed

``daily`` sets every day; a later key overrides an earlier one for its days. Public holidays,
调休 make-up working days and temporary closures (``on_holidays``, ``on_makeup_workdays``,
``closures``) and the national holiday calendar (``calendar:``) are in ``docs/calendar.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Literal, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PrivateAttr,
    StringConstraints,
    model_validator,
)

from central.calendar import Closure, NationalCalendar, closures_apart, load_calendar
from central.seat_state import SeatHold
from qihe.configfile import ConfigError, load_config_file
from qihe.configtypes import StrictModel
from qihe.contract import ID_PATTERN

__all__ = [
    "OpeningHours",
    "SiteDirectory",
    "SiteSpec",
    "load_directory",
    "load_with_directory",
]

Ident = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
#: Text shown to people: any script, one line, bounded.
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\r\n\x00]+$")]
SiteKind = Literal["book_house", "day_care", "canteen", "other"]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_INTERVAL = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def _days_of(key: str) -> list[int]:
    key = key.strip().lower()
    if key == "daily":
        return list(range(7))
    if key in _DAYS:
        return [_DAYS.index(key)]
    first, sep, last = key.partition("-")
    if sep and first in _DAYS and last in _DAYS:
        start, end = _DAYS.index(first), _DAYS.index(last)
        if start <= end:
            return list(range(start, end + 1))
    raise ValueError(f"{key!r} is not a day: use daily, mon..sun, or a range such as mon-fri")


def _intervals_of(text: str) -> tuple[tuple[time, time], ...]:
    if text.strip().lower() == "closed":
        return ()
    out: list[tuple[time, time]] = []
    for part in text.split(","):
        match = _INTERVAL.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"{part.strip()!r} is not HH:MM-HH:MM (or 'closed')")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        try:
            start = time(h1, m1)
            # "24:00" is midnight at the end of the day: open through 23:59:59.999999.
            end = time.max if (h2, m2) == (24, 0) else time(h2, m2)
        except ValueError as exc:
            raise ValueError(f"{part.strip()!r}: {exc}") from None
        if end <= start:
            raise ValueError(f"{part.strip()!r} ends before it starts (one day at a time)")
        if out and start < out[-1][1]:
            raise ValueError(f"{part.strip()!r} overlaps the interval before it")
        out.append((start, end))
    return tuple(out)


class OpeningHours:
    """Per weekday (Monday = 0), the local-time intervals a site is open."""

    def __init__(self, spec: dict[str, str]) -> None:
        self.spec = dict(spec)
        self.week: list[tuple[tuple[time, time], ...]] = [() for _ in range(7)]
        for key, text in spec.items():
            intervals = _intervals_of(text)
            for day in _days_of(key):
                self.week[day] = intervals

    def intervals_on(self, day: date) -> tuple[tuple[time, time], ...]:
        return self.week[day.weekday()]

    def is_open(self, local: datetime) -> bool:
        moment = local.time()
        # "24:00" is time.max, the day's last microsecond: open through it, not closed there.
        return any(
            start <= moment and (moment < end or end == time.max)
            for start, end in self.intervals_on(local.date())
        )

    @property
    def known(self) -> bool:
        """False when the directory gives no opening hours (then nothing is "after hours")."""
        return bool(self.spec)

    def closed_for(self, local: datetime) -> timedelta | None:
        """How long the site has been closed at ``local``; None while it is open or when its
        hours are not known. A site closed all week counts as closed for a week."""
        if not self.known or self.is_open(local):
            return None
        for back in range(8):
            day = local.date() - timedelta(days=back)
            for _start, end in reversed(self.intervals_on(day)):
                closed_at = datetime.combine(day, end, local.tzinfo)
                if end == time.max:
                    closed_at = datetime.combine(day + timedelta(days=1), time(0), local.tzinfo)
                if closed_at <= local:
                    return local - closed_at
        return timedelta(days=7)

    def describe(self, day: date) -> str | None:
        """``"08:30-12:00, 14:00-21:00"``, or None when closed all day."""
        intervals = self.intervals_on(day)
        if not intervals:
            return None
        return ", ".join(f"{s:%H:%M}-{_hhmm(e)}" for s, e in intervals)


def _hhmm(moment: time) -> str:
    return "24:00" if moment == time.max else f"{moment:%H:%M}"


def _opening_hours(value: dict[str, str]) -> dict[str, str]:
    OpeningHours(value)  # raises ValueError naming the bad day or interval
    return value


def _day_rule(value: str) -> str:
    if value.strip().lower() not in ("weekly", "workday"):
        _intervals_of(value)  # "closed" or hours; raises ValueError naming the bad interval
    return value


#: What a public holiday or a 调休 make-up working day means at a site: ``closed``, ``weekly``
#: (the weekday's usual hours), ``workday`` (Monday to Friday's hours) or hours of its own.
DayRule = Annotated[str, AfterValidator(_day_rule)]
#: ``(on_holidays, on_makeup_workdays)`` of a site that does not say: day-care centres and
#: canteens keep the working calendar, book houses their weekly hours.
CALENDAR_DEFAULTS: dict[str, tuple[str, str]] = {
    "book_house": ("weekly", "weekly"),
    "day_care": ("closed", "workday"),
    "canteen": ("closed", "workday"),
    "other": ("weekly", "weekly"),
}


class SeatSpec(StrictModel):
    """One self-study seat: which sensor reports it, its label and where it is drawn."""

    gateway: Ident
    sensor: Ident
    label: Text | None = None
    row: Annotated[int, Field(ge=1, le=200)] | None = None
    col: Annotated[int, Field(ge=1, le=200)] | None = None
    x: Annotated[float, Field(ge=0, le=1)] | None = None
    y: Annotated[float, Field(ge=0, le=1)] | None = None

    @model_validator(mode="after")
    def _placed_once(self) -> Self:
        if (self.row is None) != (self.col is None):
            raise ValueError("give both row and col, or neither")
        if (self.x is None) != (self.y is None):
            raise ValueError("give both x and y, or neither")
        return self


class SeatGrid(StrictModel):
    """Shorthand for a board's seats ``{device}.1 .. {device}.{count}`` laid out row by row."""

    gateway: Ident
    device: Ident
    count: Annotated[int, Field(ge=1, le=1000)]
    cols: Annotated[int, Field(ge=1, le=200)]
    #: Labels are ``{label_prefix}{n}``; the first row starts at ``first_row``.
    label_prefix: Annotated[str, StringConstraints(max_length=20, pattern=r"^[^\r\n\x00]*$")] = ""
    first_row: Annotated[int, Field(ge=1, le=200)] = 1

    def seats(self) -> Iterator[SeatSpec]:
        for n in range(1, self.count + 1):
            yield SeatSpec(
                gateway=self.gateway,
                sensor=f"{self.device}.{n}",
                label=f"{self.label_prefix}{n}",
                row=self.first_row + (n - 1) // self.cols,
                col=1 + (n - 1) % self.cols,
            )


class DoorSpec(StrictModel):
    gateway: Ident
    sensor: Ident
    label: Text | None = None


class SiteSpec(StrictModel):
    id: Ident
    name: Text
    name_en: Text | None = None
    kind: SiteKind = "book_house"
    district: Text | None = None
    district_en: Text | None = None
    address: Text | None = None
    #: People the site takes (defaults to its number of seats).
    capacity: Annotated[int, Field(ge=0, le=100_000)] | None = None
    opening_hours: Annotated[dict[str, str], AfterValidator(_opening_hours)] = Field(
        default_factory=dict
    )
    #: Public holidays and 调休 make-up working days (``DayRule``; defaults by ``kind``).
    on_holidays: DayRule | None = None
    on_makeup_workdays: DayRule | None = None
    #: Days the site is closed whatever its hours say (dates in the directory's zone).
    closures: Annotated[tuple[Closure, ...], AfterValidator(closures_apart)] = ()
    #: Listed on the public summary page.
    public: bool = True
    #: Its public page opens in large-text mode (适老化: day-care centres); a reader may switch.
    public_large_text: bool = False
    #: When an away seat counts as held while empty (占座): grace times and meal windows.
    seat_hold: SeatHold = Field(default_factory=SeatHold)
    seat_grids: tuple[SeatGrid, ...] = ()
    seats: tuple[SeatSpec, ...] = ()
    doors: tuple[DoorSpec, ...] = ()

    @model_validator(mode="after")
    def _seats_unique(self) -> Self:
        seen: set[tuple[str, str]] = set()
        cells: set[tuple[int, int]] = set()
        for seat in self.all_seats():
            key = (seat.gateway, seat.sensor)
            if key in seen:
                raise ValueError(f"seat {seat.gateway}/{seat.sensor} is listed twice")
            seen.add(key)
            if seat.row is not None and seat.col is not None:
                if (seat.row, seat.col) in cells:
                    raise ValueError(f"two seats at row {seat.row}, col {seat.col}")
                cells.add((seat.row, seat.col))
        return self

    @model_validator(mode="after")
    def _calendar_fits(self) -> Self:
        hours = OpeningHours(self.opening_hours)
        if not hours.known and (self.on_holidays or self.on_makeup_workdays or self.closures):
            raise ValueError("on_holidays, on_makeup_workdays and closures need opening_hours")
        if "workday" in self.day_rules() and len(set(hours.week[:5])) > 1:
            raise ValueError(
                "'workday' means Monday to Friday's hours, but they differ: give the hours"
            )
        return self

    def day_rules(self) -> tuple[str, str]:
        """``(on_holidays, on_makeup_workdays)``, the defaults of its ``kind`` filled in."""
        holidays, makeup = CALENDAR_DEFAULTS[self.kind]
        rules = (self.on_holidays or holidays, self.on_makeup_workdays or makeup)
        return rules[0].strip().lower(), rules[1].strip().lower()

    def all_seats(self) -> list[SeatSpec]:
        return [seat for grid in self.seat_grids for seat in grid.seats()] + list(self.seats)

    def hours(self) -> OpeningHours:
        return OpeningHours(self.opening_hours)


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


class SiteDirectory(StrictModel):
    """Every site a city runs, in the order its pages list them."""

    timezone: Annotated[str, AfterValidator(_zone)] = "Asia/Shanghai"
    #: The folder of the national holiday calendar's ``YEAR.yaml`` files, relative to this
    #: file (``docs/calendar.md``); without it, weekdays and weekends only.
    calendar: Path | None = None
    sites: tuple[SiteSpec, ...] = ()
    _national: NationalCalendar = PrivateAttr(default_factory=NationalCalendar)

    @model_validator(mode="after")
    def _ids_unique(self) -> Self:
        ids = [site.id for site in self.sites]
        doubled = sorted({i for i in ids if ids.count(i) > 1})
        if doubled:
            raise ValueError(f"site ids listed more than once: {', '.join(doubled)}")
        return self

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    @property
    def national(self) -> NationalCalendar:
        """The holiday years :func:`load_directory` read from ``calendar:`` (none if not)."""
        return self._national


M = TypeVar("M", bound=BaseModel)


def load_with_directory(path: str | Path, model: type[M]) -> tuple[M, SiteDirectory]:
    """A service's config file (a model with a ``sites: Path``) and the site directory it
    names; raise :class:`ConfigError` (no network)."""
    path = Path(path)
    config = load_config_file(path, model)
    sites = getattr(config, "sites")  # noqa: B009 - any service model that names a directory
    if not isinstance(sites, Path):
        raise TypeError(f"{model.__name__} has no sites: path")
    return config, load_directory(path, sites)


def load_directory(config_file: Path, sites: Path) -> SiteDirectory:
    """The directory a service config names (``sites:``, relative to that config file)."""
    path = sites if sites.is_absolute() else config_file.resolve().parent / sites
    if not path.is_file():
        raise ConfigError(f"{config_file}: sites: site directory {path} not found")
    directory = load_config_file(path, SiteDirectory)
    if directory.calendar is not None:
        folder = directory.calendar
        folder = folder if folder.is_absolute() else path.resolve().parent / folder
        if not folder.is_dir():
            raise ConfigError(f"{path}: calendar: holiday calendar folder {folder} not found")
        directory._national = load_calendar(folder)
    return directory
