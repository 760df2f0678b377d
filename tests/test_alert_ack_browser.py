"""Acknowledging an alert on the operator page, in Debian's Chromium (headless, Playwright).

A board's stuck seat raises an alert through the real alert engine; the operator opens the
site, writes a note, presses "确认 Acknowledge"; the engine takes the order and the page shows
the alert acknowledged — without a reload. A screenshot is left under ``test-output/``.
"""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from playwright.async_api import Browser, expect

from devstack import MosquittoProcess
from tests.alert_control_harness import raise_fault
from tests.alert_harness import alerts_config, engine_running
from tests.test_live_browser import browser, watch_console  # noqa: F401 - the fixture
from tests.test_live_service import DEVICE, DIRECTORY, SITE, live_config, serving

pytestmark = pytest.mark.integration

TOKEN = "operator-token-for-tests"


async def test_an_operator_acknowledges_an_alert_with_a_note_on_the_page(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    publisher: mqtt.Client,
    browser: Browser,  # noqa: F811
    output_dir: Path,
) -> None:
    commands = {"mqtt": {"host": mosquitto.host, "port": mosquitto.port,
                         "topic_prefix": topic_prefix}, "operator": "wang"}  # fmt: skip
    live = live_config(mosquitto, topic_prefix, http={"operator_token": TOKEN}, commands=commands)
    engine_config = alerts_config(mosquitto, topic_prefix)
    async with (
        engine_running(engine_config, DIRECTORY) as engine,
        serving(live) as service,
    ):
        raise_fault(publisher, topic_prefix, site=SITE, device=DEVICE)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        # Signed in already (the page's own sign-in form sets this cookie).
        await page.context.add_cookies([{"name": "qihe_operator", "value": TOKEN,
                                         "url": service.url}])  # fmt: skip
        errors = watch_console(page)
        await page.goto(f"{service.url}#/site/{SITE}")
        alert = page.locator("li.alert[data-rule=device_fault]")
        await expect(alert).to_contain_text("座位传感器", timeout=15_000)
        await page.evaluate("window.__opened_once = true")

        await alert.locator("[data-role=ack-note]").fill("已派王工更换传感器")
        await page.locator("#alerts-panel").screenshot(
            path=str(output_dir / "operator-alert-before-ack.png")
        )
        await alert.locator("[data-role=ack]").click()

        badge = alert.locator("[data-tag=acknowledged]")
        await expect(badge).to_contain_text("已确认 Acknowledged · wang", timeout=15_000)
        await expect(badge).to_contain_text("已派王工更换传感器")
        await expect(alert.locator("[data-role=ack]")).to_have_count(0)
        await expect(page.locator("[data-role=silence-form]")).to_be_visible()
        assert await page.evaluate("window.__opened_once === true")
        await page.screenshot(path=str(output_dir / "operator-alert-acknowledged.png"),
                              full_page=True)  # fmt: skip
        acknowledged = engine.book.firing[0].acknowledged

    assert acknowledged is not None
    assert (acknowledged.by, acknowledged.note) == ("wang", "已派王工更换传感器")
    assert errors == []
