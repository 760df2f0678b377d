"""The fleet view's state (central/fleet.py), fed typed messages and told the time: rows, stale
marking, sorting, the district filter, and the messages it ignores (each with a log line)."""

from __future__ import annotations

import logging
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from central.fleet import SORT_COLUMNS, FleetRow, FleetState, power_flags
from central.fleet_cli import render_table
from central.sites import SiteDirectory
from qihe.contract import (
    ConfigReport,
    GatewayStatus,
    LinkReading,
    OutboxReading,
    SeatReading,
    SystemReading,
)

T0 = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
DIRECTORY = SiteDirectory.model_validate(
    {
        "sites": [
            {
                "id": "qibin-taoyuan",
                "name": "淇河书屋·桃园站",
                "name_en": "Qihe Book House, Taoyuan",
                "district": "淇滨区",
                "district_en": "Qibin",
            },
            {
                "id": "shancheng-xinyuan2",
                "name": "淇河书屋·馨苑二区站",
                "district": "山城区",
                "district_en": "Shancheng",
            },
            {
                "id": "shifanqu-fanhuali",
                "name": "淇河书屋·繁花里站",
                "district": "市城乡一体化示范区",
                "district_en": "Demonstration Zone",
            },
        ]
    }
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def status(
    site: str,
    state: str = "online",
    session: int = 1,
    gateway: str = "gw1",
    version: str | None = None,
    config: dict[str, Any] | None = None,
) -> GatewayStatus:
    return GatewayStatus(
        site=site,
        gateway=gateway,
        state=state,  # type: ignore[arg-type]
        session=session,
        ts=T0,
        version=version,
        config=None if config is None else ConfigReport(**({"at": T0} | config)),
    )


def system(site: str, ts: datetime = T0, gateway: str = "gw1", **fields: Any) -> SystemReading:
    values: dict[str, Any] = {
        "disk_free_bytes": 8_000_000_000,
        "disk_total_bytes": 32_000_000_000,
        "mem_available_bytes": 2_000_000_000,
        "mem_total_bytes": 4_000_000_000,
        "cpu_temp_c": 48.5,
        "load_1m": 0.4,
        "throttled": 0,
        "host_uptime_s": 86_400,
        "process_uptime_s": 3_600,
    } | fields
    return SystemReading(
        site=site, gateway=gateway, device="gateway", sensor=gateway, ts=ts, **values
    )


def outbox(site: str, queued: int = 0, *drops: int, device: str = "gateway") -> OutboxReading:
    periodic, state, clock = (*drops, 0, 0, 0)[:3]
    return OutboxReading(
        site=site, gateway="gw1", device=device, sensor="gw1", ts=T0, queued=queued,
        dropped_periodic=periodic, dropped_state=state, dropped_clock=clock,
    )  # fmt: skip


def link(site: str, board: str, crc: int = 0, malformed: int = 0, lost: int = 0) -> LinkReading:
    return LinkReading(
        site=site, gateway="gw1", device=board, sensor=board, ts=T0, frames=1000,
        crc_errors=crc, malformed=malformed, lost=lost, duplicates=5, reconnects=1,
    )  # fmt: skip


def seat(site: str) -> SeatReading:
    return SeatReading(
        site=site, gateway="gw1", device="board-a", sensor="board-a.1", ts=T0, occupied=True
    )


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def only(state: FleetState, now: datetime, **query: Any) -> FleetRow:
    [row] = state.view(now, **query).gateways
    return row


# --- rows -----------------------------------------------------------------------------


def test_a_gateway_is_listed_with_what_its_status_and_reports_say() -> None:
    fleet = FleetState(DIRECTORY)
    fleet.apply(status("qibin-taoyuan"), at(0))
    fleet.apply(system("qibin-taoyuan", throttled=0x50005), at(1))
    fleet.apply(outbox("qibin-taoyuan", 12, 3, 2, 1), at(2))
    fleet.apply(link("qibin-taoyuan", "board-a", crc=3, malformed=1, lost=2), at(3))
    fleet.apply(link("qibin-taoyuan", "board-b", lost=4), at(4))

    row = only(fleet, at(5))

    assert row.model_dump() == {
        "site": "qibin-taoyuan",
        "gateway": "gw1",
        "site_name": "淇河书屋·桃园站",
        "site_name_en": "Qihe Book House, Taoyuan",
        "district": "淇滨区",
        "district_en": "Qibin",
        "state": "online",
        "stale": False,
        "version": None,
        "config_version": None,
        "config_hash": None,
        "config_state": None,
        "config_error": None,
        "uptime_s": 3_600,
        "host_uptime_s": 86_400,
        "last_seen": at(4),
        "outbox": 12,
        "drops": 6,
        "link_errors": 10,  # 3 + 1 + 2 on board-a, 4 lost on board-b; duplicates are no error
        "links": 2,
        "cpu_temp_c": 48.5,
        "disk_free_bytes": 8_000_000_000,
        "disk_total_bytes": 32_000_000_000,
        "disk_used_pct": 75.0,
        "throttled": 0x50005,
        "power": "now",
        "power_flags": (
            "under_voltage",
            "throttled",
            "under_voltage_occurred",
            "throttled_occurred",
        ),
    }


def test_the_software_and_config_versions_come_from_the_status() -> None:
    fleet = FleetState(DIRECTORY)
    config = {"version": "v12", "hash": "3f2a9c0d1e4b", "state": "applied"}
    fleet.apply(status("qibin-taoyuan", version="0.2.0", config=config), at(0))

    row = only(fleet, at(1))

    assert (row.version, row.config_version, row.config_hash, row.config_state) == (
        "0.2.0",
        "v12",
        "3f2a9c0d1e4b",
        "applied",
    )


def test_a_rejected_push_is_shown_with_its_one_line_error() -> None:
    fleet = FleetState(DIRECTORY)
    config = {
        "hash": "3f2a9c0d1e4b",
        "state": "rejected",
        "error": "serial.0.path: field required",
    }
    fleet.apply(status("qibin-taoyuan", version="0.2.0", config=config), at(0))

    row = only(fleet, at(1))

    assert (row.config_version, row.config_state, row.config_error) == (
        None,
        "rejected",
        "serial.0.path: field required",
    )
    assert "3f2a9c0d1e4b ⚠ 已拒绝 rejected" in render_table(fleet.view(at(1)))


def test_a_last_will_without_versions_keeps_the_versions_last_reported() -> None:
    fleet = FleetState(DIRECTORY)
    config = {"version": "v12", "hash": "3f2a9c0d1e4b", "state": "applied"}
    fleet.apply(status("qibin-taoyuan", version="0.2.0", config=config), at(0))
    fleet.apply(status("qibin-taoyuan", "offline"), at(1))

    row = only(fleet, at(2))

    assert (row.state, row.version, row.config_version) == ("offline", "0.2.0", "v12")
    # A gateway back online says what it runs now, even nothing (an older version).
    fleet.apply(status("qibin-taoyuan", session=2), at(3))
    assert (only(fleet, at(4)).version, only(fleet, at(4)).config_version) == (None, None)


def test_versions_sort_by_their_numbers_not_their_letters() -> None:
    fleet = FleetState(DIRECTORY)
    fleet.apply(status("qibin-taoyuan", version="0.10.0"), at(0))
    fleet.apply(status("shancheng-xinyuan2", version="0.9.2"), at(0))
    fleet.apply(status("shifanqu-fanhuali", version="0.9.10"), at(0))

    assert order(fleet, "version") == [
        "shancheng-xinyuan2/gw1",
        "shifanqu-fanhuali/gw1",
        "qibin-taoyuan/gw1",
    ]


def test_a_gateway_heard_only_through_its_status_has_no_figures_yet() -> None:
    fleet = FleetState(DIRECTORY)
    fleet.apply(status("shancheng-xinyuan2"), at(0))

    row = only(fleet, at(1))

    assert (row.state, row.stale, row.last_seen) == ("online", False, at(0))
    assert [row.uptime_s, row.outbox, row.drops, row.link_errors, row.cpu_temp_c] == [None] * 5
    assert (row.disk_used_pct, row.throttled, row.power, row.power_flags) == (None, None, None, ())
    assert row.links == 0


def test_a_pi_without_a_firmware_file_has_no_power_state() -> None:
    fleet = FleetState(DIRECTORY)
    fleet.apply(system("qibin-taoyuan", throttled=None, cpu_temp_c=None), at(0))

    row = only(fleet, at(1))

    assert (row.throttled, row.power, row.power_flags, row.cpu_temp_c) == (None, None, (), None)


@pytest.mark.parametrize(
    ("mask", "power", "flags"),
    [
        (0x0, "ok", ()),
        (0x1, "now", ("under_voltage",)),
        (0x2, "now", ("freq_capped",)),
        (0x4, "now", ("throttled",)),
        (0x8, "now", ("soft_temp_limit",)),
        (0x10000, "occurred", ("under_voltage_occurred",)),
        (0x20000, "occurred", ("freq_capped_occurred",)),
        (0x40000, "occurred", ("throttled_occurred",)),
        (0x80000, "occurred", ("soft_temp_limit_occurred",)),
        (0x50000, "occurred", ("under_voltage_occurred", "throttled_occurred")),
        (0x100, "ok", ()),  # a bit the firmware does not define: named by nobody
    ],
)
def test_each_throttling_bit_has_its_name_and_says_now_or_earlier(
    mask: int, power: str, flags: tuple[str, ...]
) -> None:
    fleet = FleetState(DIRECTORY)
    fleet.apply(system("qibin-taoyuan", throttled=mask), at(0))

    row = only(fleet, at(1))

    assert (row.power, row.power_flags) == (power, flags)
    assert power_flags(mask) == flags


def test_a_late_older_system_reading_does_not_replace_the_newer_one() -> None:
    fleet = FleetState(DIRECTORY)
    fleet.apply(system("qibin-taoyuan", ts=at(60), cpu_temp_c=50.0), at(60))
    fleet.apply(system("qibin-taoyuan", ts=at(0), cpu_temp_c=40.0), at(61))

    assert only(fleet, at(62)).cpu_temp_c == 50.0


# --- stale ----------------------------------------------------------------------------


def test_a_gateway_silent_for_three_report_intervals_is_stale() -> None:
    fleet = FleetState(DIRECTORY)  # 60 s until the gateway's own interval is known
    fleet.apply(status("qibin-taoyuan"), at(0))
    fleet.apply(outbox("qibin-taoyuan"), at(10))

    assert only(fleet, at(190)).stale is False
    assert only(fleet, at(190.001)).stale is True
    fleet.apply(outbox("qibin-taoyuan"), at(200))
    assert only(fleet, at(201)).stale is False


def test_a_gateway_whose_status_says_offline_is_stale_at_once() -> None:
    fleet = FleetState(DIRECTORY)
    fleet.apply(status("qibin-taoyuan"), at(0))
    fleet.apply(status("qibin-taoyuan", "offline"), at(1))

    row = only(fleet, at(1))

    assert (row.state, row.stale) == ("offline", True)
    assert fleet.view(at(1)).stale == 1


def test_the_report_interval_is_learned_from_the_gateways_system_readings() -> None:
    fleet = FleetState(DIRECTORY)
    fleet.apply(system("qibin-taoyuan", ts=at(0)), at(0))
    fleet.apply(system("qibin-taoyuan", ts=at(300)), at(300))  # link_report_interval: 5 min

    assert only(fleet, at(300 + 899)).stale is False  # 60 s would have said stale long ago
    assert only(fleet, at(300 + 901)).stale is True


def test_retained_messages_are_not_hearing_from_the_gateway_but_start_its_grace() -> None:
    fleet = FleetState(DIRECTORY)
    # The live service (re)subscribed: the broker replays the retained status and seats.
    fleet.apply(status("qibin-taoyuan"), at(1000), retained=True)
    fleet.apply(seat("qibin-taoyuan"), at(1000), retained=True)

    row = only(fleet, at(1100))
    assert (row.last_seen, row.stale) == (None, False)
    assert only(fleet, at(1181)).stale is True


# --- what is ignored, with a log line -----------------------------------------------------


def test_a_late_will_of_an_older_session_is_ignored_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="central.fleet")
    fleet = FleetState(DIRECTORY)
    fleet.apply(status("qibin-taoyuan", "online", session=8), at(0))

    fleet.apply(status("qibin-taoyuan", "offline", session=7), at(1))

    assert (only(fleet, at(2)).state, only(fleet, at(2)).stale) == ("online", False)
    assert [r.getMessage() for r in caplog.records] == [
        "网关一览：忽略 qibin-taoyuan/gw1 旧会话 7 的状态（当前 8） "
        "fleet: status of older session 7 of qibin-taoyuan/gw1 ignored (current 8)"
    ]


def test_a_gateway_report_from_another_device_is_ignored_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fleet = FleetState(DIRECTORY)
    fleet.apply(outbox("qibin-taoyuan", 5), at(0))
    for n in range(3):
        fleet.apply(outbox("qibin-taoyuan", 999, device="board-a"), at(1 + n))

    row = only(fleet, at(5))

    assert row.outbox == 5
    assert row.last_seen == at(3)  # still heard from the gateway
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "网关一览：忽略 qibin-taoyuan/gw1 的 outbox 读数：设备应为 gateway，而非 board-a "
            "fleet: outbox reading of qibin-taoyuan/gw1 ignored: its device is board-a, "
            "not gateway",
        )
    ]


def test_a_gateway_of_a_site_missing_from_the_directory_is_listed_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fleet = FleetState(DIRECTORY)
    fleet.apply(status("heshan-wenti"), at(0))
    fleet.apply(system("heshan-wenti"), at(1))

    row = only(fleet, at(2))

    assert (row.site, row.site_name, row.district, row.uptime_s) == (
        "heshan-wenti",
        None,
        None,
        3_600,
    )
    assert [r.getMessage() for r in caplog.records] == [
        "网关一览：站点 heshan-wenti 不在站点目录中，网关 gw1 照常列出 "
        "fleet: site heshan-wenti is not in the site directory; gateway gw1 is listed anyway"
    ]


# --- sorting and the district filter ----------------------------------------------------------


def city() -> FleetState:
    """Three gateways with different figures, and one heard only through its status."""
    fleet = FleetState(DIRECTORY)
    fleet.apply(status("qibin-taoyuan"), at(0))
    fleet.apply(system("qibin-taoyuan", cpu_temp_c=61.0, throttled=0x50000), at(10))
    fleet.apply(outbox("qibin-taoyuan", 40, 1), at(10))
    fleet.apply(status("shancheng-xinyuan2"), at(0))
    fleet.apply(system("shancheng-xinyuan2", cpu_temp_c=72.5, throttled=0x1), at(20))
    fleet.apply(outbox("shancheng-xinyuan2", 0), at(20))
    fleet.apply(system("shifanqu-fanhuali", cpu_temp_c=45.0, throttled=0), at(30))
    fleet.apply(outbox("shifanqu-fanhuali", 7), at(30))
    fleet.apply(status("shancheng-xinyuan2", gateway="gw2", state="offline"), at(40))
    return fleet


def order(fleet: FleetState, sort: str, **query: Any) -> list[str]:
    return [f"{r.site}/{r.gateway}" for r in fleet.view(at(50), sort=sort, **query).gateways]


def test_rows_sort_by_site_and_gateway_by_default() -> None:
    assert order(city(), "site") == [
        "qibin-taoyuan/gw1",
        "shancheng-xinyuan2/gw1",
        "shancheng-xinyuan2/gw2",
        "shifanqu-fanhuali/gw1",
    ]


def test_a_minus_sorts_descending_and_rows_without_the_value_stay_last() -> None:
    fleet = city()
    assert order(fleet, "-cpu_temp") == [
        "shancheng-xinyuan2/gw1",
        "qibin-taoyuan/gw1",
        "shifanqu-fanhuali/gw1",
        "shancheng-xinyuan2/gw2",
    ]
    assert order(fleet, "cpu_temp") == [
        "shifanqu-fanhuali/gw1",
        "qibin-taoyuan/gw1",
        "shancheng-xinyuan2/gw1",
        "shancheng-xinyuan2/gw2",
    ]


def test_power_sorts_by_severity_and_state_puts_stale_rows_last() -> None:
    fleet = city()
    assert order(fleet, "-power")[:3] == [
        "shancheng-xinyuan2/gw1",  # under-voltage now
        "qibin-taoyuan/gw1",  # under-voltage and throttling earlier
        "shifanqu-fanhuali/gw1",  # fine
    ]
    assert order(fleet, "state")[-1] == "shancheng-xinyuan2/gw2"
    assert order(fleet, "-outbox")[:3] == [
        "qibin-taoyuan/gw1",
        "shifanqu-fanhuali/gw1",
        "shancheng-xinyuan2/gw1",
    ]


@pytest.mark.parametrize("column", SORT_COLUMNS)
def test_every_column_sorts_both_ways(column: str) -> None:
    fleet = city()
    up, down = order(fleet, column), order(fleet, f"-{column}")
    assert sorted(up) == sorted(down) == order(fleet, "site")


def test_an_unknown_sort_column_is_refused_naming_the_columns() -> None:
    with pytest.raises(ValueError, match=r"cannot sort by 'temperature': use one of site, "):
        city().view(at(50), sort="temperature")


@pytest.mark.parametrize("district", ["山城区", "Shancheng", "shancheng"])
def test_the_district_filter_takes_the_chinese_or_the_english_name(district: str) -> None:
    view = city().view(at(50), district=district)

    assert [(r.site, r.gateway) for r in view.gateways] == [
        ("shancheng-xinyuan2", "gw1"),
        ("shancheng-xinyuan2", "gw2"),
    ]
    assert (view.total, view.stale, view.district) == (4, 1, district)


def test_an_unknown_district_shows_no_rows_and_still_offers_the_real_ones() -> None:
    view = city().view(at(50), district="鹤山区")

    assert view.gateways == ()
    assert (view.total, view.stale) == (4, 0)  # stale: of the rows shown
    assert view.districts == ("淇滨区", "山城区", "市城乡一体化示范区")


# --- the CLI's table ----------------------------------------------------------------------


def test_the_text_table_has_chinese_headings_aligned_and_marks_stale_rows() -> None:
    text = render_table(city().view(at(50), sort="-cpu_temp"))
    lines = text.splitlines()

    assert lines[0].split("  ")[0] == "站点 Site"
    assert "状态 State" in lines[0] and "供电 Power" in lines[0]
    # Every column starts at the same display column (Chinese counts two).
    last_column_starts = {
        display_width(line[: line.rindex(re.split(r" {2,}", line)[-1])]) for line in lines[:-1]
    }
    assert len(last_column_starts) == 1, text
    assert "⚠ 离线 offline" in lines[-2]
    assert "⚠ 欠压 under-voltage" in lines[2]
    assert "曾欠压 under-voltage earlier, 曾降频 throttled earlier" in lines[3]
    assert lines[-1] == "共 4 台网关，显示 4 台，失联 1 台 · 4 gateways, 4 shown, 1 stale"
