"""The air of each room through the live service (real Mosquitto): in the site's API document,
and on the operator page in a real browser (Debian's Chromium through Playwright) — 温度 / 湿度 /
二氧化碳, and 离线 when Zigbee2MQTT says the device is unavailable, without a reload."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, async_playwright, expect

from devstack import MosquittoProcess
from qihe.contract import AirReading, FaultReading, encode_payload
from tests.test_live_browser import CHROMIUM, CHROMIUM_ARGS, watch_console
from tests.test_live_service import SITE, Publisher, live_config, serving

pytestmark = pytest.mark.integration

ROOM = "reading-room-air"
IDS = {"site": SITE, "gateway": "gw1", "device": ROOM}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: ./dev.sh test installs Debian's chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def air_rows(http: httpx.AsyncClient, url: str, done: Any) -> list[dict[str, Any]]:
    """The site document's ``air`` once ``done(rows)`` holds (a bound wait, no timing)."""
    async with asyncio.timeout(10):
        while True:
            rows: list[dict[str, Any]] = (await http.get(url)).json()["air"]
            if done(rows):
                return rows
            await asyncio.sleep(0.02)


def publish_air(pub: Publisher, **values: float) -> None:
    reading = AirReading(sensor=ROOM, ts=datetime.now(UTC), **IDS, **values)  # type: ignore[arg-type]
    pub.raw(pub.tree.reading(SITE, "gw1", "air", ROOM), encode_payload(reading))


def publish_unavailable(pub: Publisher, active: bool) -> None:
    fault = FaultReading(
        sensor=f"{ROOM}.offline", code="offline", active=active, target_kind="air", target=ROOM,
        ts=datetime.now(UTC), **IDS,
    )  # fmt: skip
    topic = pub.tree.reading(SITE, "gw1", "fault", fault.sensor)
    pub.raw(topic, encode_payload(fault), retain=True)


async def test_the_site_api_carries_the_newest_air_of_each_room(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    pub = Publisher(mosquitto, topic_prefix)
    try:
        async with serving(live_config(mosquitto, topic_prefix)) as service:
            pub.status("online")
            publish_air(pub, temperature_c=22.4, humidity_pct=41.5, co2_ppm=870)
            url = f"{service.url}api/v1/sites/{SITE}"
            async with httpx.AsyncClient() as http:
                [row] = await air_rows(http, url, lambda rows: len(rows) == 1)
                assert {k: row[k] for k in ("id", "gateway", "device", "state", "reason")} == {
                    "id": ROOM, "gateway": "gw1", "device": ROOM, "state": "ok", "reason": None,
                }  # fmt: skip
                assert (row["temperature_c"], row["humidity_pct"], row["co2_ppm"]) == (
                    22.4,
                    41.5,
                    870.0,
                )
                publish_unavailable(pub, True)
                [row] = await air_rows(http, url, lambda rows: rows[0]["state"] == "stale")
                assert row["reason"] == "offline"
    finally:
        pub.close()


async def test_the_operator_page_shows_the_air_and_marks_an_unavailable_sensor_offline(
    mosquitto: MosquittoProcess, topic_prefix: str, browser: Browser, output_dir: Path
) -> None:
    pub = Publisher(mosquitto, topic_prefix)
    try:
        async with serving(live_config(mosquitto, topic_prefix)) as service:
            pub.status("online")
            publish_air(pub, temperature_c=22.4, humidity_pct=41.5, co2_ppm=1240)
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            errors = watch_console(page)
            await page.goto(f"{service.url}#/site/{SITE}")
            room = page.locator(f'[data-air="{ROOM}"]')
            await expect(room).to_have_attribute("data-state", "ok", timeout=15_000)
            await expect(room.locator('[data-value="temperature"]')).to_have_text("温度 22.4 °C")
            await expect(room.locator('[data-value="humidity"]')).to_have_text("湿度 42 %")
            await expect(room.locator('[data-value="co2"]')).to_have_text("二氧化碳 1240 ppm")
            await page.evaluate("window.__opened_once = true")

            publish_unavailable(pub, True)

            await expect(room).to_have_attribute("data-state", "stale", timeout=15_000)
            await expect(room).to_contain_text("离线")
            await page.screenshot(
                path=str(output_dir / "site-air-offline-phone.png"), full_page=True
            )

            publish_unavailable(pub, False)
            publish_air(pub, co2_ppm=900)

            await expect(room.locator('[data-value="co2"]')).to_have_text(
                "二氧化碳 900 ppm", timeout=15_000
            )
            await expect(room).to_have_attribute("data-state", "ok")
            assert await page.evaluate("window.__opened_once === true")
            await page.locator("[data-role=lang]").click()
            await expect(room.locator('[data-value="co2"]')).to_have_text("CO₂ 900 ppm")
    finally:
        pub.close()
    assert errors == []
