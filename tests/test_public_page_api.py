"""The public API (docs/public-api.md) against the live service on a real Mosquitto: the
stream of the public view, the cacheable documents with their ETags, the rate limits, the
typical busy times — and nothing about a person, a gateway or a board anywhere."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from central.live.api import create_app
from central.live.client import StreamEvent, read_events
from central.live.config import HttpConfig
from central.live.typical import TypicalError, TypicalHour, TypicalProfile, trend
from devstack import MosquittoProcess
from tests.test_live_service import (
    DEVICE,
    SITE,
    OnLoopSource,
    Publisher,
    live_config,
    next_event,
    serving,
)
from tests.test_public_page import DAYCARE, DIRECTORY, PROFILE

#: What must never reach the public: ids of gateways and boards, people, doors, seat times.
PRIVATE = ("gw1", DEVICE, "gateway", "people_inside", "door", "since", "reason", "last_seen")


@pytest.fixture
def publisher(mosquitto: MosquittoProcess, topic_prefix: str) -> AsyncIterator[Publisher]:
    pub = Publisher(mosquitto, topic_prefix)
    pub.status("online")
    for n in range(1, 7):
        pub.seat(n, n <= 4)
    yield pub  # type: ignore[misc]
    pub.close()


def typical_file(tmp_path: Path, rows: object = PROFILE) -> str:
    path = tmp_path / "typical.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    return str(path)


async def test_the_public_stream_opens_with_the_whole_view_then_follows_changes(
    mosquitto: MosquittoProcess, topic_prefix: str, publisher: Publisher, tmp_path: Path
) -> None:
    config = live_config(mosquitto, topic_prefix, public={"typical": typical_file(tmp_path)})
    async with (
        serving(config, DIRECTORY) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        await service.broker_connected.wait()
        events = read_events(http, "/api/v1/public/events")
        ready = await next_event(events, lambda e: e.kind == "ready")
        opening = await next_event(events, lambda e: e.kind == "sites")
        houses = {s["id"]: s for s in opening.data["sites"]}
        if houses[SITE]["free_seats"] != 2:  # the retained replay still coming in
            await next_event(events, lambda e: _free(e) == 2)
        publisher.seat(5, True)
        changed = await next_event(events, lambda e: _free(e) == 1)
        seen = [ready, opening, changed]

    assert set(houses) == {SITE, DAYCARE}
    assert houses[DAYCARE]["large_text"] is True
    house = changed.data["site"]
    assert house["total_seats"] == 6
    assert house["busy_pct"] == pytest.approx(83.3)  # 5 of 6
    assert (house["usual_pct"], house["trend"]) == (20.0, "busier")
    assert changed.data["v"] > opening.data["v"]
    for event in seen:
        for private in PRIVATE:
            assert private not in json.dumps(event.data)


def _free(event: StreamEvent) -> int | None:
    return event.data["site"].get("free_seats") if event.kind == "site" else None


async def test_a_sites_stream_sends_its_seat_map_and_each_seat_that_changes(
    mosquitto: MosquittoProcess, topic_prefix: str, publisher: Publisher
) -> None:
    async with (
        serving(live_config(mosquitto, topic_prefix), DIRECTORY) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        document = await http.get(f"/api/v1/public/sites/{SITE}")
        while [s["state"] for s in document.json()["seats"]].count("occupied") != 4:
            document = await http.get(f"/api/v1/public/sites/{SITE}")
        events = read_events(http, "/api/v1/public/events", site=SITE)
        opening = await next_event(events, lambda e: e.kind == "detail")
        publisher.seat(1, False)
        # A late event of the initial seats may still come first: wait for seat 1's.
        seat = await next_event(events, lambda e: e.kind == "seat" and e.data["seat"]["n"] == 1)
        site = await next_event(
            events, lambda e: e.kind == "site" and e.data["site"]["free_seats"] == 3
        )

    assert [(s["n"], s["label"], s["row"], s["col"]) for s in opening.data["seats"]] == [
        (1, "A1", 1, 1), (2, "A2", 1, 2), (3, "A3", 1, 3),
        (4, "A4", 2, 1), (5, "A5", 2, 2), (6, "A6", 2, 3),
    ]  # fmt: skip
    assert opening.data["layout"] == {"rows": 2, "cols": 3}
    assert seat.data["site"] == SITE
    assert seat.data["seat"] == {
        "n": 1, "label": "A1", "row": 1, "col": 1, "x": None, "y": None, "state": "free"
    }  # fmt: skip
    assert site.data["site"]["free_seats"] == 3
    for private in PRIVATE:
        assert private not in document.text
        assert private not in json.dumps(opening.data)


async def test_the_documents_may_be_cached_and_asked_again_with_their_etag(
    mosquitto: MosquittoProcess, topic_prefix: str, publisher: Publisher
) -> None:
    async with (
        serving(live_config(mosquitto, topic_prefix), DIRECTORY) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        url = f"/api/v1/public/sites/{SITE}"
        first = await http.get(url)
        while first.json()["site"]["free_seats"] != 2:
            first = await http.get(url)
        again = await http.get(url, headers={"If-None-Match": first.headers["etag"]})
        publisher.seat(6, True)
        changed = again
        while changed.status_code == 304:
            changed = await http.get(url, headers={"If-None-Match": first.headers["etag"]})
        listing = await http.get("/api/v1/public/sites")

    assert first.headers["cache-control"] == "public, max-age=10"
    assert first.headers["etag"].startswith('"')
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert changed.status_code == 200
    assert changed.headers["etag"] != first.headers["etag"]
    assert listing.headers["cache-control"] == "public, max-age=10"
    assert [s["id"] for s in listing.json()["sites"]] == [SITE, DAYCARE]


async def test_unknown_private_and_malformed_sites_are_refused_shortly(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    directory = DIRECTORY.model_copy(
        update={"sites": (*DIRECTORY.sites, DIRECTORY.sites[1].model_copy(
            update={"id": "qixian-qiyuan-daycare", "public": False}))}
    )  # fmt: skip
    async with (
        serving(live_config(mosquitto, topic_prefix), directory) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        answers = [
            await http.get("/api/v1/public/sites/nowhere"),
            await http.get("/api/v1/public/sites/qixian-qiyuan-daycare"),
            await http.get("/api/v1/public/events", params={"site": "qixian-qiyuan-daycare"}),
            await http.get("/api/v1/public/sites/<script>"),
            await http.get("/api/v1/public/events", params={"site": "../x"}),
        ]

    assert [a.status_code for a in answers] == [404, 404, 404, 422, 422]
    assert answers[0].json() == {"detail": "没有这个公开站点 no such public site"}
    for answer in answers:
        assert "Traceback" not in answer.text


async def test_a_client_over_its_limit_gets_429_with_retry_after(
    mosquitto: MosquittoProcess, topic_prefix: str
) -> None:
    config = live_config(
        mosquitto,
        topic_prefix,
        public={"rate_limit": {"rate": 0.01, "burst": 3, "trusted_proxies": ["127.0.0.1"]}},
    )
    async with (
        serving(config, DIRECTORY) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        mine = [(await http.get("/api/v1/public/sites")).status_code for _ in range(4)]
        refused = await http.get(f"/api/v1/public/sites/{SITE}")
        # Behind the (trusted) proxy each resident has a bucket of their own.
        forwarded = {"X-Forwarded-For": "203.0.113.7"}
        theirs = [
            (await http.get("/api/v1/public/sites", headers=forwarded)).status_code
            for _ in range(3)
        ]
        page = await http.get("/public")  # the page itself and the operator API are not limited
        operator = await http.get("/api/v1/sites")

    assert mine == [200, 200, 200, 429]
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "100"
    assert refused.json()["detail"].startswith("请求过于频繁")
    assert theirs == [200, 200, 200]
    assert page.status_code == operator.status_code == 200


async def test_a_bad_typical_file_leaves_the_page_without_the_comparison_and_says_why(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    publisher: Publisher,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = typical_file(tmp_path, [{"site": SITE, "weekday": 9, "hour": 1}])
    config = live_config(mosquitto, topic_prefix, public={"typical": bad})
    async with (
        serving(config, DIRECTORY) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        house = (await http.get(f"/api/v1/public/sites/{SITE}")).json()["site"]

    assert (house["usual_pct"], house["trend"]) == (None, None)
    assert any(
        "typical busy times not loaded" in r.message and "0.weekday" in r.message
        for r in caplog.records
    )


async def test_the_public_api_answers_from_the_state_without_a_running_service() -> None:
    app = create_app(OnLoopSource(), HttpConfig())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://live") as http:
        listing = await http.get("/api/v1/public/sites")
        detail = await http.get(f"/api/v1/public/sites/{SITE}")

    assert [s["id"] for s in listing.json()["sites"]] == [SITE]
    assert [s["state"] for s in detail.json()["seats"]] == ["unknown"] * 6


@pytest.mark.parametrize(
    ("level", "expected"),
    [(None, None), (35.0, "busier"), (30.0, "usual"), (24.0, "usual"), (9.0, "quieter")],
)
def test_busy_now_is_compared_with_the_usual_band_and_a_margin(
    level: float | None, expected: str | None
) -> None:
    # Usually 20 % (P25 10 %, P75 30 %): above 30 and 25 is busier, below 10 and 15 quieter.
    assert trend(level, TypicalHour(low=10.0, typical=20.0, high=30.0)) == expected
    assert trend(level, None) is None


def test_a_narrow_band_still_needs_five_points_to_be_busier() -> None:
    usual = TypicalHour(low=19.0, typical=20.0, high=21.0)
    assert trend(24.0, usual) == "usual"
    assert trend(25.5, usual) == "busier"


def test_the_profile_reads_qihe_stats_typical_json_and_skips_hours_without_samples(
    tmp_path: Path,
) -> None:
    rows = [
        {"site": SITE, "site_name": "馨苑二区站", "weekday": 0, "hour": 9,
         "low": 10.0, "typical": 20.0, "high": 30.0},
        {"site": SITE, "site_name": "馨苑二区站", "weekday": 0, "hour": 3,
         "low": None, "typical": None, "high": None},
    ]  # fmt: skip
    profile = TypicalProfile.load(Path(typical_file(tmp_path, rows)))

    assert len(profile) == 1
    assert profile.at(SITE, 0, 9) == TypicalHour(10.0, 20.0, 30.0)
    assert profile.at(SITE, 0, 3) is None
    with pytest.raises(TypicalError, match="cannot read"):
        TypicalProfile.load(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    with pytest.raises(TypicalError, match="not the output of 'qihe stats typical"):
        TypicalProfile.load(tmp_path / "broken.json")
