"""The operator page draws away (暂离) and held-while-empty (占座) seats apart, in Chromium.

A gateway's seat readings (both channels) reach the live service, which runs on an injected
clock at 12:10 in Hebi: one seat was left at 11:55 (away, held at 13:25 with the lunch grace),
one at 10:00 (held since 10:30). The screenshot is left under ``test-output/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, expect

from devstack import MosquittoProcess
from qihe.contract import GatewayStatus, SeatReading, TopicTree, encode_payload
from tests.clocks import RunningClock
from tests.test_live_browser import browser, watch_console
from tests.test_live_service import DEVICE, SITE, Publisher, live_config, serving

pytestmark = pytest.mark.integration

__all__ = ["browser"]  # the fixture, imported to be used here

NOON = datetime(2026, 11, 30, 12, 10, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)


@pytest.fixture
def gateway(mosquitto: MosquittoProcess, topic_prefix: str) -> Iterator[Publisher]:
    publisher = Publisher(mosquitto, topic_prefix)
    yield publisher
    publisher.close()


def publish_seat(
    gateway: Publisher, n: int, occupied: bool, presence: bool | None, at: datetime
) -> None:
    reading = SeatReading(
        site=SITE, gateway="gw1", device=DEVICE, sensor=f"{DEVICE}.{n}",
        occupied=occupied, presence=presence, ts=at,
    )  # fmt: skip
    topic = TopicTree(gateway.tree.prefix).reading(SITE, "gw1", "seat", reading.sensor)
    gateway.raw(topic, encode_payload(reading), retain=True)


async def test_the_operator_page_marks_an_away_and_a_held_seat(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    gateway: Publisher,
    browser: Browser,
    output_dir: Path,
) -> None:
    clock = RunningClock(NOON)
    async with serving(live_config(mosquitto, topic_prefix), clock=clock) as service:
        status = GatewayStatus(site=SITE, gateway="gw1", state="online", session=1, ts=NOON)
        gateway.raw(gateway.tree.status(SITE, "gw1"), encode_payload(status), retain=True)
        morning = NOON - timedelta(hours=3)
        publish_seat(gateway, 1, False, False, morning)
        publish_seat(gateway, 2, True, True, morning)
        publish_seat(gateway, 3, True, False, NOON - timedelta(minutes=15))  # away since 11:55
        publish_seat(gateway, 4, True, False, NOON - timedelta(minutes=130))  # held since 10:30
        publish_seat(gateway, 5, True, None, morning)  # no presence channel: as always

        page = await browser.new_page(
            viewport={"width": 1280, "height": 800}, timezone_id="Asia/Shanghai"
        )
        errors = watch_console(page)
        await page.goto(f"{service.url}#/site/{SITE}")
        away, held = (
            page.locator(f'[data-seat="{DEVICE}.3"]'),
            page.locator(f'[data-seat="{DEVICE}.4"]'),
        )
        await expect(held).to_have_attribute("data-use", "held", timeout=15_000)
        await expect(away).to_have_attribute("data-use", "away")
        await expect(away).to_have_attribute("data-state", "occupied")
        await expect(held).to_have_attribute("data-state", "occupied")
        for plain in (2, 5):
            seat = page.locator(f'[data-seat="{DEVICE}.{plain}"]')
            await expect(seat).to_have_attribute("data-state", "occupied")
            assert await seat.get_attribute("data-use") is None
        await expect(page.locator("#legend")).to_contain_text("暂离 1")
        await expect(page.locator("#legend")).to_contain_text("占座（无人） 1")
        # The browser's own today is not 2026-11-30: the times come with their date.
        await expect(away).to_have_attribute(
            "title", re.compile(r"^3 · 暂离 · 自 \S*\s?11:55 起无人 · \S*\s?13:25 起视为占座$")
        )
        await held.click()
        await expect(page.locator("#seat-info")).to_have_text(
            re.compile(r"^4 · 占座（无人） · 自 \S*\s?10:00 起无人 · \S*\s?10:30 起占座$")
        )
        colours = await page.evaluate(
            """() => ["2", "3", "4"].map((n) => {
                const tile = document.querySelector(`[data-seat="xinyuan2-a.${n}"]`);
                const style = getComputedStyle(tile);
                return style.backgroundImage + style.backgroundColor;
            })"""
        )
        glyphs = [
            await page.locator(f'[data-seat="{DEVICE}.{n}"] .glyph').text_content() for n in (3, 4)
        ]
        await page.screenshot(path=str(output_dir / "operator-away-held.png"), full_page=True)

    assert errors == []
    assert len(set(colours)) == 3, "occupied, away and held look different"
    assert glyphs == ["◐", "占"]
    assert (output_dir / "operator-away-held.png").stat().st_size > 10_000
