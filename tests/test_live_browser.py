"""The operator page in a real browser: Debian's Chromium, headless, driven by Playwright.

An emulated board changes a seat; the page, opened once, shows the change without a reload.
Screenshots of the seat map and the overview are left under ``test-output/``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from central.sites import SiteDirectory
from devstack import MosquittoProcess
from edge.config import GatewayConfig
from edge.gateway import Gateway
from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort
from qihe.contract import GatewayStatus, SeatReading, TopicTree, encode_payload
from tests.mqtt_helpers import running, wait_until
from tests.test_live_service import DEVICE, SITE, live_config, serving

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
DISTRICTS = ["淇滨区", "山城区", "鹤山区", "淇县", "浚县", "市城乡一体化示范区"]
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


async def test_the_operator_page_stays_usable_at_65_book_houses_of_80_seats(
    mosquitto: MosquittoProcess, topic_prefix: str, browser: Browser, output_dir: Path
) -> None:
    """The city's scale: 65 sites × 80 seats retained on the broker, then a burst of changes."""
    tree = TopicTree(topic_prefix)
    sites = [f"book-{n:02d}" for n in range(1, 66)]
    directory = SiteDirectory.model_validate(
        {
            "sites": [
                {
                    "id": site,
                    "name": f"淇河书屋·第{n}站",
                    "district": DISTRICTS[n % len(DISTRICTS)],
                    "opening_hours": {"daily": "00:00-24:00"},
                    "seat_grids": [{"gateway": "gw1", "device": "board", "count": 80, "cols": 10}],
                }
                for n, site in enumerate(sites, start=1)
            ]
        }
    )
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()

    def publish(site: str, seat: int, occupied: bool) -> mqtt.MQTTMessageInfo:
        reading = SeatReading(
            site=site, gateway="gw1", device="board", sensor=f"board.{seat}",
            occupied=occupied, ts=datetime.now(UTC),
        )  # fmt: skip
        topic = tree.reading(site, "gw1", "seat", reading.sensor)
        return client.publish(topic, encode_payload(reading), qos=1, retain=True)

    try:
        infos = []
        for site in sites:
            status = GatewayStatus(
                site=site, gateway="gw1", state="online", session=1, ts=datetime.now(UTC)
            )
            infos.append(
                client.publish(tree.status(site, "gw1"), encode_payload(status), 1, retain=True)
            )
            infos.extend(publish(site, seat, seat % 3 == 0) for seat in range(1, 81))
        for info in infos:
            info.wait_for_publish(30)

        config = live_config(mosquitto, topic_prefix)
        async with serving(config, directory) as service:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors = watch_console(page)
            await page.goto(service.url)
            await expect(page.locator("a.card[data-site]")).to_have_count(65, timeout=20_000)
            card = page.locator('[data-site="book-65"] [data-role=free]')
            await expect(card).to_have_text("54", timeout=20_000)  # 80 - 26 occupied
            await page.screenshot(path=str(output_dir / "overview-65-sites.png"))

            await page.goto(f"{service.url}#/site/book-07")
            tiles = page.locator("[data-seat]")
            await expect(tiles).to_have_count(80, timeout=20_000)
            await page.evaluate("window.__opened_once = true")
            # A burst: every seat of book-07 flips, with other sites changing around it.
            for seat in range(1, 81):
                publish("book-07", seat, seat % 3 != 0)
                if sites[seat % 65] != "book-07":
                    publish(sites[seat % 65], seat, True)
            last = page.locator('[data-seat="board.80"]')
            await expect(last).to_have_attribute("data-state", "occupied", timeout=20_000)
            await expect(page.locator('[data-seat][data-state="occupied"]')).to_have_count(
                54, timeout=20_000
            )
            assert await page.evaluate("window.__opened_once === true")
            await page.screenshot(path=str(output_dir / "site-80-seats.png"), full_page=True)
    finally:
        client.loop_stop()
        client.disconnect()

    assert errors == []


async def test_the_site_page_lists_the_sites_alerts_live(
    mosquitto: MosquittoProcess, topic_prefix: str, browser: Browser, output_dir: Path
) -> None:
    tree = TopicTree(topic_prefix)
    alert = {
        "schema": 1,
        "id": "device_fault-0123456789ab",
        "rule": "device_fault",
        "severity": "warning",
        "state": "firing",
        "site": SITE,
        "site_name": "淇河书屋·馨苑二区站",
        "gateway": "gw1",
        "device": DEVICE,
        "sensor": f"{DEVICE}.3",
        "labels": {"site": SITE, "gateway": "gw1"},
        "summary_zh": f"座位传感器 {DEVICE}.3 报告故障：卡住",
        "summary_en": f"seat sensor {DEVICE}.3 reports a fault: stuck",
        "starts_at": datetime.now(UTC).isoformat(),
    }
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    topic = tree.alert(SITE, alert["id"])
    try:
        async with serving(live_config(mosquitto, topic_prefix)) as service:
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            errors = watch_console(page)
            await page.goto(f"{service.url}#/site/{SITE}")
            await expect(page.locator("[data-role=no-alerts]")).to_be_visible(timeout=15_000)

            client.publish(topic, json.dumps(alert), qos=1, retain=True).wait_for_publish(5)

            item = page.locator('[data-alert="device_fault-0123456789ab"]')
            await expect(item).to_contain_text("报告故障：卡住", timeout=15_000)
            await expect(item).to_have_attribute("data-severity", "warning")
            await page.screenshot(path=str(output_dir / "site-alerts-phone.png"), full_page=True)

            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # resolved

            await expect(item).to_have_count(0, timeout=15_000)
            await expect(page.locator("[data-role=no-alerts]")).to_be_visible()
    finally:
        client.loop_stop()
        client.disconnect()

    assert errors == []
