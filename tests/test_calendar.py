"""The holiday calendar (``config/calendar/``) and a site's hours on each date.

Pure: no broker, no database, no wall clock — every function is given its date or moment. The
2026 dates are those of the State Council General Office's notice of 2025-11-04 (国务院办公厅
关于2026年部分节假日安排的通知): 春节 Feb 15-23 off, Saturdays Feb 14 and Feb 28 worked.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from central.calendar import NationalCalendar, load_calendar
from central.calendar_hours import SiteHours, Today, site_hours, today
from central.live.state import LiveState
from central.sites import SiteDirectory, SiteSpec, load_directory
from qihe.configfile import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CALENDAR = ROOT / "config" / "calendar"
HEBI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def national() -> NationalCalendar:
    return load_calendar(CALENDAR)


def write_sites(folder: Path, sites: list[dict[str, Any]], calendar: Path | None) -> Path:
    data: dict[str, Any] = {"timezone": "Asia/Shanghai", "sites": sites}
    if calendar is not None:
        data["calendar"] = str(calendar)
    path = folder / "sites.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


DAY_CARE: dict[str, Any] = {
    "id": "qixian-qiyuan-daycare",
    "name": "淇县淇园社区日间照料中心",
    "kind": "day_care",
    "opening_hours": {"mon-fri": "08:00-17:30", "sat-sun": "closed"},
}
BOOK_HOUSE: dict[str, Any] = {
    "id": "shancheng-xinyuan2",
    "name": "淇河书屋·馨苑二区站",
    "kind": "book_house",
    "opening_hours": {"daily": "09:00-21:00"},
}


def directory(tmp_path: Path, *sites: dict[str, Any], calendar: Path = CALENDAR) -> SiteDirectory:
    path = write_sites(tmp_path, list(sites), calendar)
    return load_directory(path, path)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=HEBI)


# --- the national calendar -------------------------------------------------------------------

#: Spring Festival week, day by day: the 调休 Saturday before, nine days off, the week after
#: and the 调休 Saturday that ends it.
SPRING_FESTIVAL = [
    ("2026-02-13", "workday"),  # Friday
    ("2026-02-14", "makeup_workday"),  # Saturday, worked (调休上班)
    ("2026-02-15", "holiday"),  # Sunday, 腊月二十八
    ("2026-02-16", "holiday"),  # 除夕
    ("2026-02-17", "holiday"),  # 正月初一
    ("2026-02-18", "holiday"),
    ("2026-02-19", "holiday"),
    ("2026-02-20", "holiday"),
    ("2026-02-21", "holiday"),  # Saturday
    ("2026-02-22", "holiday"),  # Sunday
    ("2026-02-23", "holiday"),  # Monday, 正月初七, the last day off
    ("2026-02-24", "workday"),
    ("2026-02-27", "workday"),
    ("2026-02-28", "makeup_workday"),  # Saturday, worked
    ("2026-03-01", "weekend"),  # Sunday, an ordinary one
]


@pytest.mark.parametrize(("day", "kind"), SPRING_FESTIVAL)
def test_the_spring_festival_week_day_by_day(
    national: NationalCalendar, day: str, kind: str
) -> None:
    found = national.day(date.fromisoformat(day))
    assert found.kind == kind
    if kind != "workday" and kind != "weekend":
        assert found.festival is not None and found.festival.name == "春节"


def test_2026_has_the_notices_33_days_off_and_6_weekend_days_worked(
    national: NationalCalendar,
) -> None:
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(365)]
    kinds = [national.day_kind(day) for day in days]
    worked = [
        day.isoformat() for day, kind in zip(days, kinds, strict=True) if kind == "makeup_workday"
    ]
    assert kinds.count("holiday") == 3 + 9 + 3 + 5 + 3 + 3 + 7
    assert worked == [
        "2026-01-04",  # Sunday, for 元旦
        "2026-02-14",
        "2026-02-28",
        "2026-05-09",
        "2026-09-20",  # Sunday, for 国庆节
        "2026-10-10",
    ]


def test_the_sunday_after_new_years_day_is_a_working_day(national: NationalCalendar) -> None:
    assert [national.day_kind(date(2026, 1, d)) for d in (1, 2, 3, 4, 5)] == [
        "holiday", "holiday", "holiday", "makeup_workday", "workday",
    ]  # fmt: skip


def test_a_provisional_year_is_used_with_a_warning_at_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="central.calendar"):
        national = load_calendar(CALENDAR)

    [warning] = [r.getMessage() for r in caplog.records]
    assert "2027 年节假日安排为暂定" in warning
    assert warning.index("暂定") < warning.index("provisional")  # Chinese first
    assert national.years[2027].provisional and not national.years[2026].provisional
    assert national.day_kind(date(2027, 2, 6)) == "holiday"  # 春节, a Saturday


def test_a_missing_year_counts_weekdays_and_weekends_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "2026.yaml").write_bytes((CALENDAR / "2026.yaml").read_bytes())
    national = load_calendar(tmp_path)
    with caplog.at_level(logging.WARNING, logger="central.calendar"):
        kinds = [national.day_kind(date(2027, 2, d)) for d in range(5, 10)]
        national.day_kind(date(2027, 10, 1))

    assert kinds == ["workday", "weekend", "weekend", "workday", "workday"]
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("2027 年节假日安排未配置")
    assert "no holiday calendar for 2027" in warning


def test_a_directory_without_a_calendar_has_no_holidays_and_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_sites(tmp_path, [DAY_CARE], calendar=None)
    plain = load_directory(path, path)
    with caplog.at_level(logging.WARNING):
        hours = site_hours(plain, plain.sites[0])
        assert hours.describe(date(2026, 2, 16)) == "08:00-17:30"  # 春节, but nobody said
    assert caplog.records == []


# --- a site's hours on each date --------------------------------------------------------------


def test_a_day_care_centre_closes_for_the_spring_festival_and_opens_on_the_makeup_saturdays(
    tmp_path: Path,
) -> None:
    hours = site_hours(centre := directory(tmp_path, DAY_CARE), centre.sites[0])
    shown = {
        day: (hours.describe(date.fromisoformat(day)), hours.note(date.fromisoformat(day)))
        for day, _ in SPRING_FESTIVAL
    }
    festival = ("春节假期 Spring Festival holiday",)
    makeup = "春节调休上班 make-up working day (Spring Festival)"
    assert shown == {
        "2026-02-13": ("08:00-17:30", None),
        "2026-02-14": ("08:00-17:30", makeup),
        **{f"2026-02-{d}": (None, *festival) for d in range(15, 24)},
        "2026-02-24": ("08:00-17:30", None),
        "2026-02-27": ("08:00-17:30", None),
        "2026-02-28": ("08:00-17:30", makeup),
        "2026-03-01": (None, None),
    }


def test_on_a_makeup_saturday_a_day_care_centre_is_open_and_a_book_house_keeps_its_weekend(
    tmp_path: Path,
) -> None:
    weekend_hours = {
        **BOOK_HOUSE,
        "opening_hours": {"mon-fri": "08:30-21:00", "sat-sun": "09:00-17:00"},
    }
    both = directory(tmp_path, DAY_CARE, weekend_hours)
    saturday = local(date(2026, 2, 14), 10)

    centre, house = (today(both, spec, saturday) for spec in both.sites)

    assert (centre.open_now, centre.hours) == (True, "08:00-17:30")
    assert (house.open_now, house.hours, house.note) == (True, "09:00-17:00", None)


def test_a_book_house_stays_open_on_holidays_unless_it_says_otherwise(tmp_path: Path) -> None:
    short = {**BOOK_HOUSE, "id": "qibin-dongfang", "on_holidays": "10:00-16:00"}
    shut = {**BOOK_HOUSE, "id": "qibin-taoyuan", "on_holidays": "closed"}
    sites = directory(tmp_path, BOOK_HOUSE, short, shut)
    new_year = local(date(2026, 1, 1), 9, 30)

    assert [today(sites, spec, new_year) for spec in sites.sites] == [
        today_of(True, "09:00-21:00", "元旦假期 New Year's Day holiday"),
        today_of(False, "10:00-16:00", "元旦假期 New Year's Day holiday"),
        today_of(False, None, "元旦假期 New Year's Day holiday"),
    ]


def today_of(open_now: bool, hours: str | None, note: str | None) -> Today:
    return Today(open_now, hours, note)


def test_the_year_turns_at_shanghai_midnight_which_is_1600_utc(tmp_path: Path) -> None:
    """Thursday 2026-12-31 is a working day; Friday 2027-01-01 is New Year's Day (from the
    provisional 2027 file), though it is still the 31st in UTC."""
    sites = directory(tmp_path, DAY_CARE)
    spec = sites.sites[0]
    before = datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC)
    after = datetime(2026, 12, 31, 16, 0, 0, tzinfo=UTC)
    morning = datetime(2027, 1, 1, 1, 0, tzinfo=UTC)  # 09:00 in Hebi

    assert today(sites, spec, before) == today_of(False, "08:00-17:30", None)
    assert today(sites, spec, after) == today_of(False, None, "元旦假期 New Year's Day holiday")
    assert today(sites, spec, morning).open_now is False
    hours = site_hours(sites, spec)
    assert hours.closed_for(morning.astimezone(HEBI)) == timedelta(hours=15, minutes=30)


def test_without_the_2027_file_new_years_day_2027_is_an_ordinary_friday(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    only_2026 = tmp_path / "calendar"
    only_2026.mkdir()
    (only_2026 / "2026.yaml").write_bytes((CALENDAR / "2026.yaml").read_bytes())
    sites = directory(tmp_path, DAY_CARE, calendar=only_2026)
    with caplog.at_level(logging.WARNING, logger="central.calendar"):
        friday = today(sites, sites.sites[0], datetime(2027, 1, 1, 1, 0, tzinfo=UTC))

    assert friday == today_of(True, "08:00-17:30", None)
    assert [r.getMessage()[:4] for r in caplog.records] == ["2027"]


def test_a_temporary_closure_closes_the_site_all_day_with_its_reason(tmp_path: Path) -> None:
    closing = {
        **BOOK_HOUSE,
        "closures": [
            {"from": "2026-03-02", "to": "2026-03-03", "reason": "设备检修",
             "reason_en": "equipment maintenance"},
            {"from": "2026-02-16", "to": "2026-02-16", "reason": "消杀"},
        ],
    }  # fmt: skip
    sites = directory(tmp_path, closing)
    hours = site_hours(sites, sites.sites[0])
    days = [date(2026, 3, d) for d in (1, 2, 3, 4)]

    assert [(hours.describe(d), hours.note(d)) for d in days] == [
        ("09:00-21:00", None),
        (None, "设备检修 equipment maintenance"),
        (None, "设备检修 equipment maintenance"),
        ("09:00-21:00", None),
    ]
    assert hours.is_open(local(date(2026, 3, 2), 12)) is False
    # A closure wins over a holiday the site would have opened on.
    assert (hours.describe(date(2026, 2, 16)), hours.note(date(2026, 2, 16))) == (None, "消杀")
    assert hours.day(date(2026, 2, 16)).kind == "holiday"


def test_the_spring_festival_closure_counts_back_for_a_week(tmp_path: Path) -> None:
    sites = directory(tmp_path, DAY_CARE)
    hours: SiteHours = site_hours(sites, sites.sites[0])

    # Closed since the 调休 Saturday's 17:30, not since Friday's.
    assert hours.closed_for(local(date(2026, 2, 15), 10)) == timedelta(hours=16, minutes=30)
    assert hours.closed_for(local(date(2026, 2, 23), 10)) == timedelta(days=7)  # at most
    assert hours.closed_for(local(date(2026, 2, 14), 10)) is None  # 调休: open


def test_the_sample_site_directory_loads_with_its_calendar() -> None:
    sample = load_directory(ROOT / "config" / "live.yaml", Path("sites.yaml"))
    by_id = {spec.id: spec for spec in sample.sites}

    assert set(sample.national.years) >= {2026, 2027}
    east_lane = site_hours(sample, by_id["shancheng-dongxiang"])
    assert east_lane.note(date(2026, 3, 2)) == "设备检修 equipment maintenance"
    assert east_lane.describe(date(2026, 2, 17)) == "10:00-17:00"  # its own holiday hours
    centre = site_hours(sample, by_id["qixian-qiyuan-daycare"])
    assert centre.describe(date(2026, 2, 17)) is None
    assert centre.describe(date(2026, 2, 28)) == "07:30-18:00"


# --- bad files ---------------------------------------------------------------------------------


def festival(**change: Any) -> dict[str, Any]:
    return {
        "name": "春节",
        "name_en": "Spring Festival",
        "days_off": {"from": "2026-02-15", "to": "2026-02-23"},
        "makeup_workdays": ["2026-02-14", "2026-02-28"],
        **change,
    }


QINGMING = {"name": "清明节", "name_en": "Qingming Festival",
            "days_off": {"from": "2026-04-04", "to": "2026-04-06"}}  # fmt: skip

BAD_YEARS = {
    "overlapping": (
        [festival(), {**QINGMING, "days_off": {"from": "2026-02-20", "to": "2026-02-25"}}],
        "清明节 2026-02-20..2026-02-25 overlaps 春节 on 2026-02-20",
    ),
    "outside-the-year": (
        [festival(makeup_workdays=["2027-03-06"])],
        "春节: 2027-03-06 is not in 2026",
    ),
    "holiday-and-working-day": (
        [festival(), {**QINGMING, "makeup_workdays": ["2026-02-21"]}],
        "2026-02-21 is both a holiday (春节) and a make-up working day (清明节)",
    ),
    "worked-weekday": (
        [festival(makeup_workdays=["2026-02-13"])],
        "make-up working day 2026-02-13 is a Friday, not a Saturday or Sunday",
    ),
    "backwards": (
        [festival(days_off={"from": "2026-02-23", "to": "2026-02-15"})],
        "to 2026-02-15 is before from 2026-02-23",
    ),
    "unknown-key": ([festival(off={"from": "2026-02-15", "to": "2026-02-23"})], "festivals.0.off"),
}


@pytest.mark.parametrize(("festivals", "problem"), BAD_YEARS.values(), ids=BAD_YEARS.keys())
def test_a_bad_year_file_is_refused_naming_the_file_and_the_problem(
    tmp_path: Path, festivals: list[dict[str, Any]], problem: str
) -> None:
    path = tmp_path / "2026.yaml"
    document = {"year": 2026, "source": "test", "festivals": festivals}
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")

    with pytest.raises(ConfigError) as refused:
        load_calendar(tmp_path)

    assert str(path) in str(refused.value)
    assert problem in str(refused.value)


def test_a_notice_may_reach_a_week_into_the_year_before(tmp_path: Path) -> None:
    """As the 2019 notice did: 2018-12-30..2019-01-01 off, Saturday 2018-12-29 worked."""
    new_year = {"name": "元旦", "name_en": "New Year's Day",
                "days_off": {"from": "2018-12-30", "to": "2019-01-01"},
                "makeup_workdays": ["2018-12-29"]}  # fmt: skip
    document = {"year": 2019, "source": "test", "festivals": [new_year]}
    (tmp_path / "2019.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")

    national = load_calendar(tmp_path)

    assert national.day_kind(date(2018, 12, 29)) == "makeup_workday"
    assert national.day_kind(date(2018, 12, 31)) == "holiday"


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("2025.yaml", "year: 2026\nsource: test\n", "says year 2026; the file is named for 2025"),
        ("holidays.yaml", "year: 2026\nsource: test\n", "is named for its year"),
        ("2026.yaml", "year: 2026\n", "source: Field required"),
        ("2026.yaml", "year: 2026\nsource: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_misnamed_or_malformed_file_is_refused(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=problem):
        load_calendar(tmp_path)


def test_two_years_that_disagree_about_a_day_are_refused(tmp_path: Path) -> None:
    """2027's notice reaching back into 2026 must agree with the 2026 file."""
    off = "    days_off: {from: 2026-12-27, to: 2026-12-27}\n"
    worked = "    days_off: {from: 2027-01-01, to: 2027-01-01}\n    makeup_workdays: [2026-12-27]\n"
    for year, days in ((2026, off), (2027, worked)):
        text = f"year: {year}\nsource: test\nfestivals:\n  - name: 元旦\n    name_en: New Year\n"
        (tmp_path / f"{year}.yaml").write_text(text + days, encoding="utf-8")

    with pytest.raises(
        ConfigError, match="the years disagree: 2026-12-27: 2027 says makeup_workday"
    ):
        load_calendar(tmp_path)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"closures": [{"from": "2026-03-02", "to": "2026-03-05", "reason": "检修"},
                          {"from": "2026-03-05", "to": "2026-03-06", "reason": "消杀"}]},
            "closures 2026-03-02..2026-03-05 and 2026-03-05..2026-03-06 overlap",
        ),
        (
            {"opening_hours": {"mon-thu": "08:00-17:30", "fri": "08:00-12:00"}},
            "'workday' means Monday to Friday's hours, but they differ",
        ),
        ({"on_holidays": "9-17"}, "'9-17' is not HH:MM-HH:MM"),
        ({"opening_hours": {}, "on_holidays": "closed"}, "need opening_hours"),
    ],
)  # fmt: skip
def test_bad_calendar_settings_of_a_site_are_refused(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        SiteSpec.model_validate({**DAY_CARE, **change})


def test_a_directory_naming_a_missing_calendar_folder_is_refused(tmp_path: Path) -> None:
    path = write_sites(tmp_path, [DAY_CARE], calendar=Path("nowhere"))
    with pytest.raises(ConfigError, match=r"calendar: holiday calendar folder .*nowhere not found"):
        load_directory(path, path)


# --- the live pages ------------------------------------------------------------------------


def test_the_live_summaries_turn_to_the_holiday_at_shanghai_midnight(tmp_path: Path) -> None:
    """No message comes in: a timed refresh at 00:00 local on 2026-02-15 (16:00 UTC the day
    before) says the day-care centre is closed today and why, on the public summary too."""
    sites = directory(tmp_path, {**DAY_CARE, "public": True})
    saturday_evening = local(date(2026, 2, 14), 23, 59)
    midnight = datetime(2026, 2, 14, 16, 0, 1, tzinfo=UTC)
    state = LiveState(sites, started_at=saturday_evening)
    state.refresh(saturday_evening)

    [event] = [e for e in state.refresh(midnight, timed=True) if e.kind == "site"]
    [public] = state.public(midnight).sites

    sent = json.loads(event.data)["site"]
    assert (sent["open_now"], sent["hours_today"], sent["hours_note"]) == (
        False,
        None,
        "春节假期 Spring Festival holiday",
    )
    assert public.model_dump(include={"open_now", "hours_today", "hours_note"}) == {
        "open_now": False,
        "hours_today": None,
        "hours_note": "春节假期 Spring Festival holiday",
    }
