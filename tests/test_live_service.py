"""The live service against a real Mosquitto: its API, its event stream, and what it refuses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml

from central.live.api import create_app
from central.live.client import StreamEvent, read_events
from central.live.config import HttpConfig, LiveConfig, load_live_setup
from central.live.hub import EventHub
from central.live.service import LiveService
from central.live.state import LiveState
from central.live.views import PublicSites, SiteDetail, Sites
from central.sites import SiteDirectory
from devstack import MosquittoProcess
from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort
from qihe.clock import Clock, utc_now
from qihe.configfile import ConfigError, load_config_file
from qihe.contract import GatewayStatus, SeatReading, TopicTree, encode_payload
from tests.clocks import RunningClock
from tests.mqtt_helpers import GatewayProcess, wait_until

pytestmark = pytest.mark.integration

SITE = "shancheng-xinyuan2"
DEVICE = "xinyuan2-a"
DIRECTORY = SiteDirectory.model_validate(
    {
        "sites": [
            {
                "id": SITE,
                "name": "淇河书屋·馨苑二区站",
                "name_en": "Qihe Book House, Xinyuan No. 2",
                "district": "山城区",
                "opening_hours": {"daily": "00:00-24:00"},
                "seat_grids": [{"gateway": "gw1", "device": DEVICE, "count": 6, "cols": 3}],
            },
            {"id": "qixian-qiyuan-daycare", "name": "淇县淇园社区日间照料中心", "public": False},
        ]
    }
)


def live_config(broker: MosquittoProcess, prefix: str, **extra: Any) -> LiveConfig:
    return LiveConfig.model_validate(
        {
            "sites": "unused.yaml",
            "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
            "http": {"port": 0, **extra.pop("http", {})},
            "refresh_interval": 0.1,
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def serving(
    config: LiveConfig, directory: SiteDirectory = DIRECTORY, *, clock: Clock = utc_now
) -> AsyncIterator[LiveService]:
    service = LiveService(config, directory, clock=clock)
    task = asyncio.create_task(service.run(), name="live-under-test")
    try:
        async with asyncio.timeout(10):
            await service.wait_listening()
            await service.broker_connected.wait()
        yield service
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    if not task.cancelled() and task.exception() is not None:
        raise AssertionError("the live service crashed") from task.exception()


class Publisher:
    """Speaks for a gateway: publishes contract payloads where the gateway would."""

    def __init__(self, broker: MosquittoProcess, prefix: str) -> None:
        self.tree = TopicTree(prefix)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def raw(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def status(self, state: str, session: int = 1, *, retain: bool = True) -> None:
        status = GatewayStatus(
            site=SITE,
            gateway="gw1",
            state=state,
            session=session,
            ts=datetime.now(UTC),  # type: ignore[arg-type]
        )
        self.raw(self.tree.status(SITE, "gw1"), encode_payload(status), retain=retain)

    def seat(self, n: int, occupied: bool, *, retain: bool = True) -> None:
        reading = SeatReading(
            site=SITE,
            gateway="gw1",
            device=DEVICE,
            sensor=f"{DEVICE}.{n}",
            occupied=occupied,
            ts=datetime.now(UTC),
        )
        topic = self.tree.reading(SITE, "gw1", "seat", reading.sensor)
        self.raw(topic, encode_payload(reading), retain=retain)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def publisher(mosquitto: MosquittoProcess, topic_prefix: str) -> AsyncIterator[Publisher]:
    pub = Publisher(mosquitto, topic_prefix)
    yield pub  # type: ignore[misc]
    pub.close()


def seat_states(detail: dict[str, Any]) -> dict[str, str]:
    return {seat["id"]: seat["state"] for seat in detail["seats"]}


async def next_event(
    events: AsyncIterator[StreamEvent], matches: Callable[[StreamEvent], bool], timeout: float = 20
) -> StreamEvent:
    async with asyncio.timeout(timeout):
        async for event in events:
            if matches(event):
                return event
    raise AssertionError("the stream ended")


async def test_a_service_started_late_shows_the_retained_state_at_once(
    mosquitto: MosquittoProcess, topic_prefix: str, publisher: Publisher
) -> None:
    publisher.status("online")
    publisher.seat(1, True)
    publisher.seat(2, False)

    async with (
        serving(live_config(mosquitto, topic_prefix)) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):

        async def seats() -> dict[str, str]:
            return seat_states((await http.get(f"/api/v1/sites/{SITE}")).json())

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while (await seats())["xinyuan2-a.2"] != "free":
                    await asyncio.sleep(0.05)
        assert await seats() == {
            "xinyuan2-a.1": "occupied",
            "xinyuan2-a.2": "free",
            **{f"xinyuan2-a.{n}": "unknown" for n in range(3, 7)},
        }
        listing = (await http.get("/api/v1/sites")).json()

    site = next(s for s in listing["sites"] if s["id"] == SITE)
    assert site["name"] == "淇河书屋·馨苑二区站"
    assert site["district"] == "山城区"
    assert site["seats"] == {
        "total": 6, "free": 1, "occupied": 1, "unknown": 4, "fault": 0, "away": 0, "held": 0
    }  # fmt: skip
    assert site["online"] is True


async def test_an_emulated_seat_change_reaches_a_subscribed_client_without_polling(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    emulator = BookHouseEmulator(EmulatorConfig(device_id=DEVICE, seats=6, simulate=False, speed=1))
    link = tmp_path / "usb-qihe_board"
    async with (
        serving(live_config(mosquitto, topic_prefix)) as service,
        PtyPort(link) as port,
        GatewayProcess(mosquitto, topic_prefix, tmp_path, link, site=SITE, device=DEVICE),
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        events = read_events(http, "/api/v1/events", site=SITE)
        await next_event(events, lambda e: e.kind == "ready")
        await gateway_online(http)
        async with emulator.attach(port):
            await next_event(events, lambda e: e.kind == "site" and e.data["site"]["online"])
            emulator.set_seat(3, True)
            event = await next_event(
                events,
                lambda e: (
                    e.kind == "seat"
                    and e.data["seat"]["id"] == "xinyuan2-a.3"
                    and e.data["seat"]["state"] == "occupied"
                ),
            )
        await events.aclose()  # type: ignore[attr-defined]

    assert event.data["site"] == SITE
    assert event.data["seat"]["label"] == "3"
    assert event.data["v"] > 0


async def test_a_subscribed_client_sees_the_site_close_at_midnight_on_new_years_eve(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    """Open until 24:00 in Hebi: the site closes at 2026-12-31 16:00 UTC, as 2027 begins, and
    the service says so by itself (no message comes in)."""
    new_year = datetime(2026, 12, 31, 16, tzinfo=UTC)
    clock = RunningClock(new_year - timedelta(hours=1))
    spec = DIRECTORY.sites[0].model_copy(update={"opening_hours": {"daily": "08:00-24:00"}})
    until_midnight = DIRECTORY.model_copy(update={"sites": [spec]})
    async with (
        serving(live_config(mosquitto, topic_prefix), until_midnight, clock=clock) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        events = read_events(http, "/api/v1/events", site=SITE)
        await next_event(events, lambda e: e.kind == "ready")
        evening = (await http.get(f"/api/v1/sites/{SITE}")).json()["site"]
        clock.jump(new_year - timedelta(seconds=1))
        closed = await next_event(
            events, lambda e: e.kind == "site" and not e.data["site"]["open_now"]
        )
        closed_at = clock()
        await events.aclose()  # type: ignore[attr-defined]

    assert (evening["open_now"], evening["hours_today"]) == (True, "08:00-24:00")
    assert closed.data["site"]["hours_today"] == "08:00-24:00"  # New Year's Day: the same
    assert closed_at >= new_year


async def gateway_online(http: httpx.AsyncClient) -> None:
    async def online() -> bool:
        site = (await http.get(f"/api/v1/sites/{SITE}")).json()["site"]
        return bool(site["online"])

    async with asyncio.timeout(20):
        while not await online():
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def board_seat_occupied(
    service: LiveService, mosquitto: MosquittoProcess, prefix: str, folder: Path, seat: int
) -> AsyncIterator[tuple[GatewayProcess, AsyncIterator[StreamEvent], httpx.AsyncClient]]:
    """A gateway process reading an emulated board whose ``seat`` is occupied, and a stream."""
    emulator = BookHouseEmulator(EmulatorConfig(device_id=DEVICE, seats=6, simulate=False, speed=1))
    link = folder / "usb-qihe_board"
    async with (
        PtyPort(link) as port,
        GatewayProcess(mosquitto, prefix, folder, link, site=SITE, device=DEVICE) as gateway,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        events = read_events(http, "/api/v1/events", site=SITE)
        await next_event(events, lambda e: e.kind == "ready")
        await gateway_online(http)
        async with emulator.attach(port):
            emulator.set_seat(seat, True)
            await next_event(
                events,
                lambda e: (
                    e.kind == "seat"
                    and e.data["seat"]["id"] == f"{DEVICE}.{seat}"
                    and e.data["seat"]["state"] == "occupied"
                ),
            )
            yield gateway, events, http
        await events.aclose()  # type: ignore[attr-defined]


async def test_a_killed_gateway_shows_its_seats_unknown_through_its_last_will(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    async with (
        serving(live_config(mosquitto, topic_prefix)) as service,
        board_seat_occupied(service, mosquitto, topic_prefix, tmp_path, 2) as (gw, events, http),
    ):
        gw.signal(signal.SIGKILL)
        gone = await next_event(events, lambda e: e.kind == "site" and not e.data["site"]["online"])
        detail = (await http.get(f"/api/v1/sites/{SITE}")).json()

    assert gone.data["site"]["gateways"][0]["state"] == "offline"
    assert {(s["state"], s["reason"]) for s in detail["seats"]} == {("unknown", "gateway_offline")}


async def test_a_frozen_gateway_shows_its_seats_unknown_within_the_silence_timeout(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path
) -> None:
    config = live_config(mosquitto, topic_prefix, gateway_silent_after=2)
    async with (
        serving(config) as service,
        board_seat_occupied(service, mosquitto, topic_prefix, tmp_path, 4) as (gw, events, _),
    ):
        # Frozen, not dead: its connection stays open, so no Last Will for a while.
        gw.signal(signal.SIGSTOP)
        frozen_at = asyncio.get_running_loop().time()
        event = await next_event(
            events,
            lambda e: (
                e.kind == "seat"
                and e.data["seat"]["id"] == f"{DEVICE}.4"
                and e.data["seat"]["state"] == "unknown"
            ),
        )
        waited = asyncio.get_running_loop().time() - frozen_at
        gw.signal(signal.SIGCONT)

    assert event.data["seat"]["reason"] == "gateway_silent"
    # Its link report came at most a second before it froze, then 2 s of silence.
    assert waited < 2 + 1 + 5, waited


async def test_bad_messages_are_ignored_counted_and_cost_nothing_else(
    mosquitto: MosquittoProcess, topic_prefix: str, publisher: Publisher
) -> None:
    tree = TopicTree(topic_prefix)
    async with serving(live_config(mosquitto, topic_prefix)) as service:
        publisher.status("online", retain=False)
        publisher.seat(1, True, retain=False)
        seat_topic = tree.reading(SITE, "gw1", "seat", f"{DEVICE}.1")
        publisher.raw(seat_topic, b"not json")
        publisher.raw(seat_topic, b'{"schema": 1, "kind": "seat"}')
        # A gateway speaking for another site's seat: the topic and payload disagree.
        other = SeatReading(
            site="qixian-qiyuan-daycare", gateway="gw1", device=DEVICE,
            sensor=f"{DEVICE}.1", occupied=False, ts=datetime.now(UTC),
        )  # fmt: skip
        publisher.raw(seat_topic, encode_payload(other))
        publisher.raw(f"{tree.root}/{SITE}/gw1/seat/a b", b"{}")
        publisher.seat(2, True, retain=False)

        async with httpx.AsyncClient(base_url=service.url) as http:

            async def seats() -> dict[str, str]:
                return seat_states((await http.get(f"/api/v1/sites/{SITE}")).json())

            await wait_until(lambda: service.refused >= 4, timeout=10)
            async with asyncio.timeout(10):
                while (await seats())["xinyuan2-a.2"] != "occupied":
                    await asyncio.sleep(0.05)
            health = (await http.get("/healthz")).json()
            assert (await seats())["xinyuan2-a.1"] == "occupied"

    assert health["messages_refused"] == 4
    assert health["broker_connected"] is True


async def test_the_api_refuses_bad_input_with_short_errors_and_no_internals(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    async with (
        serving(live_config(mosquitto, topic_prefix)) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        missing = await http.get("/api/v1/sites/no-such-site")
        bad_id = await http.get("/api/v1/sites/a%20b%2Cc%3D1")
        bad_stream = await http.get("/api/v1/events", params={"site": "x\ny"})
        unknown_stream = await http.get("/api/v1/events", params={"site": "nowhere"})
        write = await http.post("/api/v1/sites", json={"id": "x"})
        delete = await http.delete(f"/api/v1/sites/{SITE}")
        openapi = (await http.get("/api/openapi.json")).json()
        page = await http.get("/")

    assert (missing.status_code, missing.json()) == (404, {"detail": "no such site"})
    assert bad_id.status_code == 422
    assert bad_stream.status_code == 422
    assert unknown_stream.status_code == 404
    assert write.status_code == 405
    assert delete.status_code == 405
    for response in (missing, bad_id, write):
        assert "Traceback" not in response.text
    # Commands to boards: an operators' write (docs/commands.md, tests/test_commands_api.py).
    commands = {"/api/v1/commands", "/api/v1/commands/{site}/{gateway}/{device}"}
    # Orders to the alert engine: operators' writes too (tests/test_alert_ack_api.py).
    commands |= {
        "/api/v1/alerts/{site}/{alert}/ack",
        "/api/v1/silences",
        "/api/v1/silences/{site}/{silence_id}",
    }
    assert set(openapi["paths"]) - commands == {
        "/api/v1/sites",
        "/api/v1/sites/{site_id}",
        "/api/v1/events",
        "/api/v1/public/sites",
        "/api/v1/public/sites/{site_id}",  # the public API: docs/public-api.md
        "/api/v1/public/events",
        "/healthz",
        "/api/v1/fleet",  # read-only: docs/fleet.md
    }
    assert all(set(ops) == {"get"} for p, ops in openapi["paths"].items() if p not in commands)
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_the_public_summary_holds_no_operator_detail_and_may_be_cached(
    mosquitto: MosquittoProcess, topic_prefix: str, publisher: Publisher
) -> None:
    publisher.status("online")
    publisher.seat(1, False)
    async with (
        serving(live_config(mosquitto, topic_prefix)) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        async with asyncio.timeout(5):
            while (await http.get("/api/v1/public/sites")).json()["sites"][0]["free_seats"] != 1:
                await asyncio.sleep(0.05)
        response = await http.get("/api/v1/public/sites")

    assert response.headers["cache-control"] == "public, max-age=10"
    sites = response.json()["sites"]
    assert [s["id"] for s in sites] == [SITE]  # the day-care centre is not public
    text = response.text
    for private in ("gw1", DEVICE, "gateway", "people_inside", "door"):
        assert private not in text


async def test_snapshots_taken_while_seats_change_leave_no_gap_or_double_in_a_streams_versions(
    mosquitto: MosquittoProcess, topic_prefix: str, publisher: Publisher
) -> None:
    publisher.status("online")
    changes = 120
    async with (
        serving(live_config(mosquitto, topic_prefix)) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        events = read_events(http, "/api/v1/events")
        ready = await next_event(events, lambda e: e.kind == "ready")
        await wait_until(lambda: service.received >= 1)
        seen: list[StreamEvent] = []
        snapshots: list[dict[str, Any]] = []
        done = asyncio.Event()

        async def read() -> None:
            async for event in events:
                seen.append(event)

        async def ask() -> None:  # many snapshots at once, again and again
            paths = [f"/api/v1/sites/{SITE}", "/api/v1/sites", "/api/v1/public/sites"]
            while not done.is_set():
                answers = await asyncio.gather(*(http.get(p) for p in paths * 3))
                assert all(a.status_code == 200 for a in answers)
                snapshots.extend(a.json() for a in answers[::3])

        def change() -> None:
            for n in range(changes):
                publisher.seat(n % 6 + 1, n % 12 < 6, retain=False)

        reader, asker = asyncio.create_task(read()), asyncio.create_task(ask())
        await asyncio.to_thread(change)
        await wait_until(lambda: service.received >= changes + 1)
        done.set()
        await asker
        final = (await http.get(f"/api/v1/sites/{SITE}")).json()
        await wait_until(lambda: bool(seen) and seen[-1].data["v"] >= final["version"])
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)

    versions = [e.data["v"] for e in seen]
    assert versions == list(range(ready.data["v"] + 1, ready.data["v"] + 1 + len(versions)))
    details = [s for s in snapshots if "seats" in s]
    assert len(details) >= 3
    for snapshot in (details[0], details[len(details) // 2], details[-1]):
        assert as_page(snapshot, seen) == as_page(final, [])
    last = {n % 6 + 1: n for n in range(changes)}  # each seat's last change
    assert seat_states(final) == {
        f"{DEVICE}.{seat}": "occupied" if n % 12 < 6 else "free" for seat, n in last.items()
    }


def as_page(snapshot: dict[str, Any], events: list[StreamEvent]) -> dict[str, Any]:
    """What the operator page shows: the snapshot, then the stream's newer events."""
    site, seats = snapshot["site"], {s["id"]: s for s in snapshot["seats"]}
    for event in events:
        if event.data["v"] <= snapshot["version"]:
            continue
        if event.kind == "seat" and event.data["site"] == SITE:
            seats[event.data["seat"]["id"]] = event.data["seat"]
        elif event.kind == "site" and event.data["site"]["id"] == SITE:
            site = event.data["site"]
    return {"site": site, "seats": seats}


class OnLoopSource:
    """A LiveSource that notes the thread of every snapshot it is asked for."""

    def __init__(self) -> None:
        self.state = LiveState(DIRECTORY, started_at=datetime.now(UTC))
        self.hub = EventHub()
        self.threads: set[int] = set()

    def sites(self) -> Sites:
        self.threads.add(threading.get_ident())
        return self.state.sites(datetime.now(UTC))

    def detail(self, site_id: str) -> SiteDetail | None:
        self.threads.add(threading.get_ident())
        return self.state.detail(site_id, datetime.now(UTC))

    def public(self) -> PublicSites:
        self.threads.add(threading.get_ident())
        return self.state.public(datetime.now(UTC))

    def has_site(self, site_id: str) -> bool:
        self.threads.add(threading.get_ident())
        return self.state.has_site(site_id)

    def health(self) -> dict[str, object]:
        self.threads.add(threading.get_ident())
        return {"status": "ok"}


async def test_the_api_reads_the_live_state_on_the_event_loop_only() -> None:
    # The state is changed by the loop's tasks; a handler in FastAPI's thread pool would
    # race them (versions handed out twice, a refresh seen halfway).
    source = OnLoopSource()
    app = create_app(source, HttpConfig())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://live") as http:
        answers = [
            await http.get(path)
            for path in (
                "/api/v1/sites",
                f"/api/v1/sites/{SITE}",
                "/api/v1/sites/nowhere",
                "/api/v1/public/sites",
                "/healthz",
            )
        ]

    assert [a.status_code for a in answers] == [200, 200, 404, 200, 200]
    assert answers[0].headers["cache-control"] == "no-store"
    assert answers[0].json()["sites"][0]["name"] == "淇河书屋·馨苑二区站"  # as UTF-8 JSON
    assert source.threads == {threading.get_ident()}


async def test_an_operator_token_guards_the_operator_api_but_not_the_public_summary(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    token = "qihe-secret-7f3a9c"
    config = live_config(mosquitto, topic_prefix, http={"operator_token": token})
    async with (
        serving(config) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        anonymous = await http.get("/api/v1/sites")
        wrong = await http.get("/api/v1/sites", headers={"Authorization": "Bearer nope"})
        stream = await http.get("/api/v1/events")
        bearer = await http.get("/api/v1/sites", headers={"Authorization": f"Bearer {token}"})
        http.cookies.set("qihe_operator", "ascii-only-cookie")
        cookie_wrong = await http.get("/api/v1/sites")
        public = await http.get("/api/v1/public/sites")
        page = await http.get("/")

    assert anonymous.status_code == wrong.status_code == stream.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert "secret" not in anonymous.text
    assert bearer.status_code == 200
    assert cookie_wrong.status_code == 401
    assert public.status_code == 200
    assert page.status_code == 200  # the page itself holds no data; it asks for the token


async def test_stopping_the_service_ends_open_streams(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    ended = asyncio.Event()
    async with serving(live_config(mosquitto, topic_prefix)) as service:
        http = httpx.AsyncClient(base_url=service.url)

        async def listen() -> None:
            with contextlib.suppress(httpx.HTTPError):
                async for _ in read_events(http, "/api/v1/events"):
                    pass
            ended.set()

        listener = asyncio.create_task(listen())
        await wait_until(lambda: service.hub.subscribers == 1)
    async with asyncio.timeout(10):
        await ended.wait()
    await listener
    await http.aclose()


async def test_connections_to_the_live_service_send_without_nagles_delay(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    # The listener the service binds, accepted from as uvicorn does (loop.create_server):
    # every stream's socket must have Nagle's algorithm off, or an event can wait up to
    # 40 ms for the reader's delayed ACK.
    listener = LiveService(live_config(mosquitto, topic_prefix), DIRECTORY)._bind()
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=listener)
    async with server:
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        try:
            async with asyncio.timeout(10):
                nodelay = await accepted
        finally:
            writer.close()
    assert nodelay != 0


@pytest.mark.parametrize("token", ["short", "淇河书屋的运营口令很长很长", "has spaces in it!"])
def test_an_operator_token_that_cannot_travel_in_a_header_is_refused_without_echoing_it(
    token: str, tmp_path: Path
) -> None:
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump({"sites": "s.yaml", "http": {"operator_token": token}}))

    with pytest.raises(ConfigError, match=r"http\.operator_token: .*printable ASCII") as caught:
        load_config_file(config, LiveConfig)
    assert token not in str(caught.value)


def test_the_sample_live_config_and_site_directory_load() -> None:
    setup = load_live_setup(Path(__file__).parent.parent / "config" / "live.yaml")

    names = {site.id: site.name for site in setup.directory.sites}
    assert names["qibin-taoyuan"] == "淇河书屋·桃园站"
    assert setup.config.gateway_silent_after == timedelta(seconds=180)
    assert json.dumps(names, ensure_ascii=False)


def test_a_bad_site_directory_is_refused_naming_the_file_and_the_key(tmp_path: Path) -> None:
    (tmp_path / "sites.yaml").write_text(
        "sites:\n  - id: a\n    name: 甲\n    opening_hours: {mon-fri: '8:30-25:00'}\n",
        encoding="utf-8",
    )
    (tmp_path / "live.yaml").write_text("sites: sites.yaml\n")

    result = subprocess.run(
        [sys.executable, "-m", "qihe_cli.main", "live", "--config", str(tmp_path / "live.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert f"{tmp_path / 'sites.yaml'}: invalid configuration" in result.stderr
    problem = "sites.0.opening_hours: Value error, '8:30-25:00': hour must be in 0..23"
    assert problem in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_site_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "live.yaml").write_text("sites: nowhere.yaml\n")

    with pytest.raises(ConfigError, match=r"site directory .*nowhere\.yaml not found"):
        load_live_setup(tmp_path / "live.yaml")
