"""The operator page in a real browser: Debian's Chromium, headless, driven by Playwright.

An emulated board changes a seat; the page, opened once, shows the change without a reload.
Screenshots of the seat map and the overview are left under ``test-output/``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from edge.config import GatewayConfig
from edge.gateway import Gateway
from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort
from qihe.devstack import MosquittoProcess
from tests.mqtt_helpers import running, wait_until
from tests.test_live_service import DEVICE, SITE, live_config, serving

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
#: What a closed network needs (no background fetches) and a root sandbox-less container allows.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: ./dev.sh test installs Debian's chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


def watch_console(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


async def test_the_operator_page_shows_a_seat_change_live_without_a_reload(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    browser: Browser,
    output_dir: Path,
) -> None:
    emulator = BookHouseEmulator(EmulatorConfig(device_id=DEVICE, seats=6, simulate=False, speed=1))
    link = tmp_path / "usb-qihe_board"
    gateway = Gateway(
        GatewayConfig.model_validate(
            {
                "site": SITE,
                "gateway": "gw1",
                "state_dir": tmp_path / "state",
                "broker": {
                    "host": mosquitto.host,
                    "port": mosquitto.port,
                    "topic_prefix": topic_prefix,
                },
                "serial": [{"path": str(link), "device": DEVICE}],
            }
        )
    )
    async with (
        serving(live_config(mosquitto, topic_prefix)) as service,
        PtyPort(link) as port,
        running(gateway),
    ):
        await wait_until(lambda: gateway.serial_sources[0].connected.is_set())
        async with emulator.attach(port):
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            errors = watch_console(page)
            await page.goto(f"{service.url}#/site/{SITE}")
            await expect(page.locator("[data-role=conn]")).to_have_attribute(
                "data-state", "live", timeout=15_000
            )
            seat = page.locator('[data-seat="xinyuan2-a.3"]')
            await expect(seat).to_have_attribute("data-state", "free", timeout=15_000)
            # A marker that a reload would wipe out.
            await page.evaluate("window.__opened_once = true")

            emulator.set_seat(3, True)

            await expect(seat).to_have_attribute("data-state", "occupied", timeout=15_000)
            assert await page.evaluate("window.__opened_once === true")
            await expect(page.locator('[data-seat="xinyuan2-a.4"]')).to_have_attribute(
                "data-state", "free"
            )
            await expect(page.locator("body")).to_contain_text("淇河书屋·馨苑二区站")
            await page.screenshot(path=str(output_dir / "operator-seat-map.png"), full_page=True)

            await page.goto(f"{service.url}#/")
            card = page.locator(f'[data-site="{SITE}"]')
            await expect(card.locator("[data-role=free]")).to_have_text("5", timeout=15_000)
            await page.screenshot(path=str(output_dir / "operator-overview.png"), full_page=True)

            phone = await browser.new_page(viewport={"width": 390, "height": 844})
            await phone.goto(f"{service.url}public")
            row = phone.locator(f'[data-site="{SITE}"]')
            await expect(row.locator("[data-role=free]")).to_contain_text("5", timeout=15_000)
            await phone.screenshot(path=str(output_dir / "public-phone.png"), full_page=True)

    assert errors == []
    for name in ("operator-seat-map.png", "operator-overview.png", "public-phone.png"):
        assert (output_dir / name).stat().st_size > 10_000


async def test_the_english_switch_turns_the_page_into_english_and_back(
    mosquitto: MosquittoProcess, topic_prefix: str, browser: Browser, output_dir: Path
) -> None:
    async with serving(live_config(mosquitto, topic_prefix)) as service:
        page = await browser.new_page(viewport={"width": 390, "height": 844})
        errors = watch_console(page)
        await page.goto(service.url)
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        await expect(page.locator(f'[data-site="{SITE}"]')).to_contain_text("馨苑二区站")

        await page.locator("[data-role=lang]").click()

        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await expect(page.locator(f'[data-site="{SITE}"]')).to_contain_text(
            "Qihe Book House, Xinyuan No. 2"
        )
        await page.screenshot(path=str(output_dir / "operator-english-phone.png"))
        await page.reload()  # the choice is remembered
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await page.locator("[data-role=lang]").click()
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")

    assert errors == []
