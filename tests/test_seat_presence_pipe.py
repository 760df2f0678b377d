"""Seat states through the whole pipe: an emulated board with presence channels on a pty → the
gateway → Mosquitto → the live service, the alert engine and the consumer → InfluxDB, every
service on one injected clock. A seat goes free → occupied → away (暂离) → held while empty
(占座) → free, with the lunch grace of 90 minutes; a seat without a presence channel stays
occupied as it always has been.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from central.consumer.service import Consumer
from central.live.config import LiveConfig
from central.live.service import LiveService
from devstack import InfluxdProcess, MosquittoProcess
from tests.alert_harness import (
    DEVICE,
    SITE,
    RecordingRoute,
    alerts_config,
    board_site,
    directory,
    engine_running,
    watching,
)
from tests.clocks import RunningClock
from tests.mqtt_helpers import wait_until

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: A Monday; 11:50 in Hebi, ten minutes before noon: within the lunch window.
LUNCH = datetime(2026, 11, 30, 11, 50, tzinfo=SHANGHAI)
DIRECTORY = directory(
    seat_grids=[{"gateway": "gw1", "device": DEVICE, "count": 6, "cols": 3, "label_prefix": "A"}]
)
#: Nobody falls silent when the clock jumps: only the hold changes a seat with the time.
QUIET = timedelta(hours=6)


@contextlib.asynccontextmanager
async def live_serving(
    broker: MosquittoProcess, prefix: str, clock: RunningClock
) -> AsyncIterator[LiveService]:
    config = LiveConfig.model_validate(
        {
            "sites": "unused.yaml",
            "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
            "http": {"port": 0},
            "refresh_interval": 0.1,
            "gateway_silent_after": QUIET,
            "device_silent_intervals": 100,
        }
    )
    service = LiveService(config, DIRECTORY, clock=clock)
    task = asyncio.create_task(service.run(), name="live-under-test")
    try:
        async with asyncio.timeout(10):
            await service.wait_listening()
            await service.broker_connected.wait()
        yield service
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def seat_until(
    http: httpx.AsyncClient, sensor: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The seat's view once ``check`` holds for it (polling the API, never sleeping blind)."""
    seen: dict[str, Any] = {}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(20):
            while True:
                detail = (await http.get(f"/api/v1/sites/{SITE}")).json()
                seen = next(s for s in detail["seats"] if s["id"] == sensor)
                if check(seen):
                    return seen
                await asyncio.sleep(0.2)
    raise AssertionError(f"seat {sensor} never got there; last seen {seen}")


def known(seat: dict[str, Any]) -> bool:
    """Not a moment of "unknown" right after a jump of the clock (the board speaks within 1 s)."""
    return bool(seat["state"] != "unknown")


def use_is(use: str) -> Callable[[dict[str, Any]], bool]:
    return lambda seat: seat["use"] == use


async def test_a_seat_goes_free_occupied_away_held_and_free_with_the_lunch_grace(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    influxd: InfluxdProcess,
    influx_db: str,
    consumer: Consumer,
    tmp_path: Path,
) -> None:
    clock = RunningClock(LUNCH.astimezone(UTC))
    route = RecordingRoute()
    rules = {"gateway_offline": {"silent_after": QUIET}, "device_silent": {"missed_reports": 1000}}
    async with (
        watching(mosquitto, topic_prefix) as alerts,
        live_serving(mosquitto, topic_prefix, clock) as live,
        engine_running(
            alerts_config(mosquitto, topic_prefix, rules=rules),
            DIRECTORY,
            [route.worker()],
            clock=clock,
        ),
        board_site(
            mosquitto,
            topic_prefix,
            tmp_path,
            emulator={"presence_seats": 2, "report_interval_s": 1},
            clock=clock,
        ) as (board, _gateway),  # fmt: skip
        httpx.AsyncClient(base_url=live.url) as http,
    ):
        free = await seat_until(http, f"{DEVICE}.1", use_is("free"))

        board.set_seat(1, True)  # a student sits down: both channels
        board.set_seat(3, True)  # and another on a seat without a radar
        occupied = await seat_until(http, f"{DEVICE}.1", use_is("occupied"))
        plain = await seat_until(http, f"{DEVICE}.3", use_is("occupied"))

        clock.jump(LUNCH + timedelta(minutes=5))  # 11:55: off to lunch, the books stay
        board.set_presence(1, False)
        away = await seat_until(http, f"{DEVICE}.1", use_is("away"))

        clock.jump(LUNCH + timedelta(minutes=94))  # 13:24: past 30 min, within the 90 of lunch
        await asyncio.sleep(0.5)  # a few refreshes and evaluations at 13:24
        still_away = await seat_until(http, f"{DEVICE}.1", known)
        assert alerts.states("seat_held_empty") == []

        clock.jump(LUNCH + timedelta(minutes=95, seconds=1))  # 13:25:01: held while empty
        held = await seat_until(http, f"{DEVICE}.1", use_is("held"))
        fired = await alerts.until("seat_held_empty", "firing")
        public = (await http.get("/api/v1/public/sites")).json()["sites"][0]
        summary = (await http.get(f"/api/v1/sites/{SITE}")).json()["site"]["seats"]
        plain_later = await seat_until(http, f"{DEVICE}.3", known)

        board.set_seat(1, False)  # back from lunch, packs up and leaves
        free_again = await seat_until(http, f"{DEVICE}.1", use_is("free"))
        resolved = await alerts.until("seat_held_empty", "resolved")
        await wait_until(lambda: any(n.firing for n in route.sent))

    assert (free["state"], free["use"]) == ("free", "free")
    assert (occupied["state"], occupied["use"]) == ("occupied", "occupied")
    assert (away["state"], away["use"]) == ("occupied", "away")
    assert away["away_since"].startswith("2026-11-30T03:55:")  # 11:55 in Hebi
    assert away["held_at"].startswith("2026-11-30T05:25:")  # + 90 min: left within lunch
    assert still_away["use"] == "away"
    assert (held["state"], held["use"], held["held_at"]) == ("occupied", "held", away["held_at"])
    assert (summary["occupied"], summary["away"], summary["held"]) == (2, 0, 1)
    assert (public["free_seats"], public["likely_free"]) == (4, 1)
    assert (free_again["state"], free_again["use"]) == ("free", "free")
    # The seat without a presence channel: occupied all along, never away nor held.
    assert plain["use"] == plain_later["use"] == "occupied"
    assert (plain_later["away_since"], plain_later["held_at"]) == (None, None)

    assert fired["severity"] == "info"
    assert fired["sensor"] == f"{DEVICE}.1"
    assert fired["summary_zh"].startswith("温馨提示：座位 A1 自 11:55 起有物品但无人")
    assert "held while empty" in fired["summary_en"]
    assert resolved["sensor"] == f"{DEVICE}.1"
    assert alerts.states("seat_held_empty") == ["firing", "resolved"]
    sent = [a for n in route.sent for a in n.firing if a.rule == "seat_held_empty"]
    assert [a.sensor for a in sent] == [f"{DEVICE}.1"]

    # InfluxDB: seat 1's presence next to its occupancy, seat 3 without the field.
    def presence_of(seat: int) -> list[object]:
        rows = influxd.rows(
            f"SELECT occupied, presence FROM seat WHERE sensor = '{DEVICE}.{seat}'", influx_db
        )
        return [(r["occupied"], r["presence"]) for r in rows]

    await wait_until(lambda: presence_of(1)[-2:] == [(0, 0), (0, 0)])
    one, three = presence_of(1), presence_of(3)
    # SEAT_PRESENCE then SEAT, both with both channels: never "away" while sitting down.
    assert one == [(0, 0), (0, 0), (1, 1), (1, 1), (1, 0), (0, 0), (0, 0)]
    assert three[-1] == (1, None)
