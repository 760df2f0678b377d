"""The public page in a real browser (Debian's Chromium through Playwright), against the live
service on a real Mosquitto: at a phone's 360 px and at 1280 px, in normal and large-text mode,
the seat map, live updates through server-sent events, and the JSON fallback.

Screenshots are left under ``test-output/`` (and looked at); what they must show is checked
here: nothing wider than the screen, the large mode's text size, the figures in place.
"""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Route, async_playwright, expect

from central.sites import SiteDirectory
from devstack import MosquittoProcess
from tests.test_live_browser import CHROMIUM, CHROMIUM_ARGS, watch_console
from tests.test_live_service import DEVICE, SITE, Publisher, live_config, serving

pytestmark = pytest.mark.integration

DAYCARE = "qibin-fenghuang-daycare"
DIRECTORY = SiteDirectory.model_validate(
    {
        "sites": [
            {
                "id": SITE,
                "name": "淇河书屋·馨苑二区站",
                "name_en": "Qihe Book House, Xinyuan No. 2",
                "district": "山城区",
                "district_en": "Shancheng",
                "address": "山城区馨苑二区",
                "opening_hours": {"daily": "00:00-24:00"},
                "seat_grids": [
                    {"gateway": "gw1", "device": DEVICE, "count": 6, "cols": 3, "label_prefix": "A"}
                ],
            },
            {
                "id": DAYCARE,
                "name": "淇滨区凤凰城社区日间照料中心",
                "name_en": "Fenghuangcheng Community Day-Care Centre",
                "kind": "day_care",
                "district": "淇滨区",
                "opening_hours": {"daily": "00:00-24:00"},
                "public_large_text": True,
            },
        ]
    }
)
#: Usually 20 % of the seats are taken (P25 10 %, P75 30 %), at every hour of the week: the
#: test holds whatever the machine's clock says.
PROFILE = [
    {"site": SITE, "weekday": d, "hour": h, "low": 10.0, "typical": 20.0, "high": 30.0}
    for d in range(7)
    for h in range(24)
]
WIDTHS = (360, 1280)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def live(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[str, Publisher]]:
    """The live service with the profile, and four of six seats taken (67 %: busier)."""
    typical = tmp_path / "typical.json"
    typical.write_text(json.dumps(PROFILE), encoding="utf-8")
    publisher = Publisher(mosquitto, topic_prefix)
    publisher.status("online")
    for n in range(1, 7):
        publisher.seat(n, n <= 4)
    config = live_config(mosquitto, topic_prefix, public={"typical": str(typical)})
    try:
        async with serving(config, DIRECTORY) as service:
            yield service.url, publisher
    finally:
        publisher.close()


async def open_page(browser: Browser, url: str, *, width: int, large: bool | None) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": 900})
    if large is not None:
        await context.add_init_script(
            f"localStorage.setItem('qihe.large', '{'1' if large else '0'}')"
        )
    page = await context.new_page()
    await page.goto(url)
    return page


async def check_layout(page: Page, width: int, *, large: bool) -> None:
    """No horizontal scrolling; the large mode's base text at least 18 px, targets 48 px."""
    scroll = await page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll <= width, f"the page is {scroll} px wide at a {width} px screen"
    size = await page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    button = await page.locator("[data-role=large]").bounding_box()
    assert button is not None
    if large:
        assert size >= 18
        assert button["height"] >= 48
        await expect(page.locator("html")).to_have_class("large")
    else:
        assert size < 18
        await expect(page.locator("html")).not_to_have_class("large")


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


async def shoot(page: Page, path: Path, width: int) -> None:
    await page.screenshot(path=str(path), full_page=True)
    check_shot(path, width)


def check_shot(path: Path, width: int) -> None:
    shot_width, shot_height = png_size(path)
    assert shot_width == width  # nothing pushed the page wider than the screen
    assert shot_height >= 300
    assert path.stat().st_size > 10_000


@pytest.mark.parametrize("large", [False, True], ids=["normal", "large"])
@pytest.mark.parametrize("width", WIDTHS, ids=["phone-360", "desktop-1280"])
async def test_the_public_page_shows_each_house_and_updates_live(
    live: tuple[str, Publisher], browser: Browser, output_dir: Path, width: int, large: bool
) -> None:
    url, publisher = live
    page = await open_page(browser, f"{url}public", width=width, large=large)
    errors = watch_console(page)
    row = page.locator(f'[data-site="{SITE}"]')
    await expect(row.locator("[data-role=free]")).to_have_text("2", timeout=15_000)
    await expect(page.locator("[data-role=status]")).to_have_attribute("data-state", "live")
    # Busy now (4 of 6: 67 %) against usual at this hour (20 %): busier, with its arrow.
    busy = row.locator("[data-role=busy]")
    await expect(busy).to_have_attribute("data-trend", "busier")
    await expect(busy).to_contain_text("↑")
    await expect(busy).to_contain_text("比平时忙")
    await expect(busy).to_contain_text("现在 67% · 通常 20%")
    await expect(row.locator("[data-role=age]")).to_have_attribute("data-stale", "false")
    await expect(row).to_contain_text("开放中")
    await expect(row).to_contain_text("今日 00:00-24:00")
    await expect(page.locator(f'[data-site="{DAYCARE}"]')).to_contain_text("日间照料中心")
    await check_layout(page, width, large=large)
    mode = "large" if large else "normal"
    await shoot(page, output_dir / f"public-{width}-{mode}.png", width)

    await page.evaluate("window.__opened_once = true")
    publisher.seat(5, True)  # through the stream, not a reload
    await expect(row.locator("[data-role=free]")).to_have_text("1", timeout=15_000)
    assert await page.evaluate("window.__opened_once === true")
    assert errors == []


@pytest.mark.parametrize("large", [False, True], ids=["normal", "large"])
@pytest.mark.parametrize("width", WIDTHS, ids=["phone-360", "desktop-1280"])
async def test_the_seat_map_shows_each_seat_and_follows_it_live(
    live: tuple[str, Publisher], browser: Browser, output_dir: Path, width: int, large: bool
) -> None:
    url, publisher = live
    page = await open_page(browser, f"{url}public?site={SITE}", width=width, large=large)
    errors = watch_console(page)
    seats = page.locator("svg.seat-svg [data-seat]")
    await expect(seats).to_have_count(6, timeout=15_000)
    await expect(page.locator('[data-seat="1"]')).to_have_attribute("data-state", "occupied")
    await expect(page.locator('[data-seat="6"]')).to_have_attribute("data-state", "free")
    await expect(page.locator('[data-seat="6"]')).to_contain_text("A6")
    await expect(page.locator("[data-role=legend]")).to_contain_text("可能空闲")
    await expect(page.locator("[data-site]")).to_have_count(1)  # only this house
    await expect(page.locator("[data-role=back]")).to_be_visible()
    svg = await page.locator("svg.seat-svg").bounding_box()
    assert svg is not None and svg["width"] <= width
    await check_layout(page, width, large=large)
    mode = "large" if large else "normal"
    await shoot(page, output_dir / f"seatmap-{width}-{mode}.png", width)

    publisher.seat(1, False)
    await expect(page.locator('[data-seat="1"]')).to_have_attribute(
        "data-state", "free", timeout=15_000
    )
    await expect(page.locator("[data-role=free]")).to_have_text("3")
    assert errors == []


async def test_a_day_care_centre_opens_in_large_text_until_the_reader_chooses(
    live: tuple[str, Publisher], browser: Browser, output_dir: Path
) -> None:
    url, _ = live
    page = await open_page(browser, f"{url}public?site={DAYCARE}", width=360, large=None)
    await expect(page.locator(f'[data-site="{DAYCARE}"]')).to_be_visible(timeout=15_000)
    await expect(page.locator("html")).to_have_class("large")
    await check_layout(page, 360, large=True)
    await shoot(page, output_dir / "daycare-360-default-large.png", 360)

    await page.locator("[data-role=large]").click()  # the reader's choice wins, and is kept
    await expect(page.locator("html")).not_to_have_class("large")
    await page.reload()
    await expect(page.locator(f'[data-site="{DAYCARE}"]')).to_be_visible(timeout=15_000)
    await expect(page.locator("html")).not_to_have_class("large")
    assert await page.evaluate("localStorage.getItem('qihe.large')") == "0"


async def test_without_the_stream_the_page_reads_the_cacheable_json(
    live: tuple[str, Publisher], browser: Browser
) -> None:
    url, _ = live
    context = await browser.new_context(viewport={"width": 360, "height": 800})

    async def refuse(route: Route) -> None:
        await route.fulfill(status=503, body="")

    await context.route("**/api/v1/public/events*", refuse)
    asked: list[str] = []
    context.on("request", lambda r: asked.append(r.url) if "/api/v1/public/sites" in r.url else 0)
    page = await context.new_page()
    await page.goto(f"{url}public")
    row = page.locator(f'[data-site="{SITE}"]')
    await expect(row.locator("[data-role=free]")).to_have_text("2", timeout=15_000)
    await expect(page.locator("[data-role=status]")).to_have_attribute("data-state", "polling")
    await expect(page.locator("[data-role=status]")).to_contain_text("每 30 秒刷新")
    assert asked and all(u.endswith("/api/v1/public/sites") for u in asked)  # no cache-busting


async def test_a_house_whose_gateway_went_offline_is_shown_as_stale(
    live: tuple[str, Publisher], browser: Browser, output_dir: Path
) -> None:
    url, publisher = live
    page = await open_page(browser, f"{url}public", width=360, large=False)
    row = page.locator(f'[data-site="{SITE}"]')
    await expect(row.locator("[data-role=free]")).to_have_text("2", timeout=15_000)

    publisher.status("offline")

    age = row.locator("[data-role=age]")
    await expect(age).to_have_attribute("data-stale", "true", timeout=15_000)
    await expect(age).to_contain_text("数据已过期")
    await expect(row.locator("[data-role=free]")).to_have_text("暂无数据")
    await expect(row.locator("[data-role=busy]")).to_be_hidden()
    await shoot(page, output_dir / "public-360-stale.png", 360)
