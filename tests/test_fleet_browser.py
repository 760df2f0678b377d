"""The fleet page (/fleet) in a real browser: Debian's Chromium, headless, driven by Playwright.

Gateways report through the real Mosquitto into the live service; the page asks for the
operator token, lists every gateway, sorts by a clicked heading, filters by district, marks the
stale row and shows under-voltage in red. Screenshots are left under ``test-output/``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from devstack import MosquittoProcess
from tests.mqtt_helpers import wait_until
from tests.test_fleet_live import DIRECTORY, TOKEN, FleetPublisher, fleet_city, links_of
from tests.test_live_browser import CHROMIUM, CHROMIUM_ARGS, watch_console
from tests.test_live_service import live_config, serving

pytestmark = pytest.mark.integration

#: What the table shows in the site column, in the order of each sort.
BY_SITE = [
    "淇河书屋·桃园站",
    "淇县淇园社区日间照料中心",
    "淇河书屋·馨苑二区站",
    "淇河书屋·繁花里站",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: ./dev.sh test installs Debian's chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
def fleet_publisher(mosquitto: MosquittoProcess, topic_prefix: str) -> FleetPublisher:
    return FleetPublisher(mosquitto, topic_prefix)


async def site_column(page: Page) -> list[str]:
    """The site names of the table's rows, top to bottom (the name, without the id below it)."""
    cells = page.locator("tbody[data-role=rows] td.site")
    return [await cell.evaluate("td => td.firstChild.textContent") for cell in await cells.all()]


async def test_the_fleet_page_lists_sorts_filters_and_marks_stale_and_power_rows(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    fleet_publisher: FleetPublisher,
    browser: Browser,
    output_dir: Path,
) -> None:
    config = live_config(mosquitto, topic_prefix, http={"operator_token": TOKEN})
    try:
        async with serving(config, DIRECTORY) as service:
            fleet_city(fleet_publisher)
            await wait_until(lambda: len(service.fleet_state) == 4)
            await wait_until(lambda: links_of(service, "shifanqu-fanhuali") == 1)
            page = await browser.new_page(viewport={"width": 1600, "height": 700})
            errors = watch_console(page)

            # From the operator page's link; without a token the page asks for one.
            await page.goto(service.url)
            await page.locator("[data-role=fleet-link]").click()
            await expect(page).to_have_url(f"{service.url}fleet")
            await expect(page.locator("[data-role=auth]")).to_be_visible(timeout=15_000)
            await page.locator("#auth-token").fill(TOKEN)
            await page.locator("#auth button[type=submit]").click()

            rows = page.locator("tbody[data-role=rows] tr")
            await expect(rows).to_have_count(4, timeout=15_000)
            await expect(page.locator("[data-role=conn]")).to_have_attribute("data-state", "live")
            assert await site_column(page) == BY_SITE
            await expect(page.locator("thead")).to_contain_text("站点 Site")
            await expect(page.locator("thead")).to_contain_text("供电/降频 Power")

            # The offline gateway's row is stale: greyed and marked.
            stale = page.locator('tr[data-gateway="qixian-qiyuan-daycare/gw1"]')
            await expect(stale).to_have_attribute("data-stale", "true")
            await expect(stale).to_have_class("stale")
            await expect(stale.locator("td.state")).to_contain_text("⚠ 失联 stale")
            assert await page.locator('tr[data-stale="true"]').count() == 1
            await expect(page.locator("[data-role=stale]")).to_have_text("1")

            # Under-voltage now: red; only earlier: not red.
            weak = page.locator('tr[data-gateway="shancheng-xinyuan2/gw1"] td.power')
            await expect(weak).to_have_attribute("data-power", "now")
            await expect(weak).to_contain_text("⚠ 欠压 under-voltage · 降频 throttled")
            assert await weak.evaluate("td => getComputedStyle(td).backgroundColor") == (
                "rgb(179, 38, 30)"
            )
            earlier = page.locator('tr[data-gateway="shifanqu-fanhuali/gw1"] td.power')
            await expect(earlier).to_have_attribute("data-power", "occurred")
            await expect(earlier).to_contain_text("曾欠压 under-voltage earlier")
            await expect(page.locator("[data-role=power]")).to_have_text("1")
            # Software and config versions; a rejected config push in red, its error on hover.
            taoyuan = page.locator('tr[data-gateway="qibin-taoyuan/gw1"]')
            await expect(taoyuan.locator("td.version")).to_have_text("0.2.0")
            await expect(taoyuan.locator("td.config")).to_have_text("v12已应用 applied")
            pushed = page.locator('tr[data-gateway="shancheng-xinyuan2/gw1"] td.config')
            await expect(pushed).to_contain_text("9b1c44e0a7d2⚠ 已拒绝 rejected")
            await expect(pushed).to_have_attribute("title", "serial.0.path: required")
            await page.screenshot(path=str(output_dir / "fleet-page.png"), full_page=True)

            # A click on a heading sorts by it (the hottest first), a second click reverses.
            cpu = page.locator('th[data-col="cpu_temp"]')
            await cpu.locator("button").click()
            await expect(cpu).to_have_attribute("aria-sort", "descending")
            await expect(rows.first).to_have_attribute("data-gateway", "shancheng-xinyuan2/gw1")
            assert await site_column(page) == [BY_SITE[2], BY_SITE[0], BY_SITE[3], BY_SITE[1]]
            await expect(page.locator('th[data-col="site"]')).not_to_have_attribute(
                "aria-sort", "ascending"
            )
            await cpu.locator("button").click()
            await expect(cpu).to_have_attribute("aria-sort", "ascending")
            await expect(rows.first).to_have_attribute("data-gateway", "shifanqu-fanhuali/gw1")
            # No temperature (the offline gateway never reported): last, either way.
            await expect(rows.last).to_have_attribute("data-gateway", "qixian-qiyuan-daycare/gw1")
            assert "sort=cpu_temp" in page.url

            # The district filter leaves that district's gateways.
            await page.locator("[data-role=district]").select_option("山城区")
            await expect(rows).to_have_count(1)
            await expect(rows.first).to_have_attribute("data-gateway", "shancheng-xinyuan2/gw1")
            await expect(page.locator("[data-role=shown]")).to_have_text("1")
            await expect(page.locator("[data-role=total]")).to_have_text("4")
            await page.screenshot(path=str(output_dir / "fleet-filtered.png"), full_page=True)

            # Reloaded, the page keeps its sort and filter (they are in its URL).
            await page.reload()
            await expect(rows).to_have_count(1, timeout=15_000)
            await expect(page.locator("[data-role=district]")).to_have_value("山城区")
            await page.locator("[data-role=district]").select_option("")
            await expect(rows).to_have_count(4)
            await expect(rows.first).to_have_attribute("data-gateway", "shifanqu-fanhuali/gw1")
    finally:
        fleet_publisher.close()

    assert [e for e in errors if "401" not in e] == []
    for name in ("fleet-page.png", "fleet-filtered.png"):
        assert (output_dir / name).stat().st_size > 10_000
