"""A site's hours on a given date: its weekly opening hours, the holiday calendar and closures.

:class:`SiteHours` is :class:`~central.sites.OpeningHours` that knows which dates are public
holidays, 调休 make-up working days (:mod:`central.calendar`) and the site's temporary
closures, so everything written against opening hours — ``is_open``, ``closed_for``,
``describe``, the statistics' open windows — honours them without knowing about them.

For each date, in order:

1. a temporary closure of the site (``closures``) closes it all day, with its reason;
2. a public holiday (法定节假日) takes the site's ``on_holidays`` rule;
3. a make-up working day (调休上班) takes its ``on_makeup_workdays`` rule;
4. any other day has the weekday's hours (``opening_hours``).

A rule is ``closed``, ``weekly`` (the weekday's usual hours), ``workday`` (Monday to Friday's
hours) or hours of its own (``"09:00-17:00"``); a site that gives none has its kind's
(:data:`central.sites.CALENDAR_DEFAULTS`). A site without opening hours is open all the time,
holidays included. Nothing here reads a clock: every function is given the date or moment.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date, datetime, time

from central.calendar import DayKind, NationalCalendar
from central.sites import OpeningHours, SiteDirectory, SiteSpec

__all__ = ["SiteHours", "Today", "hours_key", "site_hours", "today"]

Intervals = tuple[tuple[time, time], ...]
#: How many dates a :class:`SiteHours` remembers (a long-lived one asks about a few a day).
_REMEMBERED = 400


@dataclass(frozen=True, slots=True)
class DayHours:
    """A site's hours on one date: empty when closed. ``note_zh``/``note_en`` say why the day
    is not an ordinary one (a festival, a make-up working day, a closure's reason)."""

    day: date
    kind: DayKind
    intervals: Intervals
    note_zh: str | None = None
    note_en: str | None = None
    #: Closed by one of the site's temporary closures.
    closure: bool = False

    @property
    def note(self) -> str | None:
        """The note as pages show it, Chinese then English: ``"春节假期 Spring Festival
        holiday"``."""
        parts = [text for text in (self.note_zh, self.note_en) if text]
        return " ".join(parts) or None


@dataclass(frozen=True, slots=True)
class Today:
    """What a page says about a site at a moment: open now, today's hours, why they differ."""

    open_now: bool
    #: ``"08:30-12:00, 14:00-21:00"`` in local time; None when closed all day.
    hours: str | None
    #: :attr:`DayHours.note`; None on an ordinary day.
    note: str | None


class SiteHours(OpeningHours):
    """The hours of one site, date by date (see the module's docstring)."""

    def __init__(self, spec: SiteSpec, national: NationalCalendar) -> None:
        super().__init__(spec.opening_hours)
        self.national = national
        self.closures = spec.closures
        on_holidays, on_makeup = spec.day_rules()
        self._on_holidays = self._rule(on_holidays)
        self._on_makeup = self._rule(on_makeup)
        self._days: dict[date, DayHours] = {}

    def _rule(self, rule: str) -> Intervals | None:
        """The intervals a rule gives every such day; None: the weekday's own."""
        if rule == "weekly":
            return None
        if rule == "workday":
            return self.week[0]  # Monday to Friday agree (SiteSpec checks it)
        return OpeningHours({"daily": rule}).week[0]

    def day(self, day: date) -> DayHours:
        """The site's hours on ``day`` (a date in the directory's zone)."""
        known = self._days.get(day)
        if known is None:
            if len(self._days) >= _REMEMBERED:
                self._days.clear()
            known = self._days[day] = self._work_out(day)
        return known

    def _work_out(self, day: date) -> DayHours:
        weekly = self.week[day.weekday()]
        if not self.known:
            return DayHours(day, self.national.day_kind(day), weekly)
        national = self.national.day(day)
        for closure in self.closures:
            if closure.covers(day):
                return DayHours(
                    day, national.kind, (), closure.reason, closure.reason_en, closure=True
                )
        festival = national.festival
        if national.kind == "holiday" and festival is not None:
            rule = self._on_holidays
            return DayHours(
                day, "holiday", weekly if rule is None else rule,
                f"{festival.name}假期", f"{festival.name_en} holiday",
            )  # fmt: skip
        if (
            national.kind == "makeup_workday"
            and festival is not None
            and self._on_makeup is not None
        ):
            # Said only where it changes the hours: "weekly" sites keep their weekend.
            return DayHours(
                day, "makeup_workday", self._on_makeup,
                f"{festival.name}调休上班", f"make-up working day ({festival.name_en})",
            )  # fmt: skip
        return DayHours(day, national.kind, weekly)

    def intervals_on(self, day: date) -> Intervals:
        return self.day(day).intervals

    def note(self, day: date) -> str | None:
        return self.day(day).note

    def today(self, local: datetime) -> Today:
        """At ``local`` (an aware time in the directory's zone): open now, today's hours, why."""
        day = local.date()
        return Today(self.is_open(local), self.describe(day), self.note(day))


def site_hours(directory: SiteDirectory, spec: SiteSpec) -> SiteHours:
    """``spec``'s hours with the holiday calendar ``directory`` was loaded with."""
    return SiteHours(spec, directory.national)


def hours_key(spec: SiteSpec) -> Hashable:
    """Equal for two sites whose hours are the same on every date (to share one
    :class:`SiteHours`)."""
    return tuple(spec.opening_hours.items()), spec.day_rules(), spec.closures


def today(directory: SiteDirectory, spec: SiteSpec, instant: datetime) -> Today:
    """Is ``spec`` open at ``instant`` (any aware time), its hours that local day, and why
    they are not the usual ones (a holiday, a make-up working day, a closure) — for pages."""
    if instant.tzinfo is None:
        raise ValueError(f"instant {instant.isoformat()} has no time zone")
    return site_hours(directory, spec).today(instant.astimezone(directory.zone))
