"""The public feed follows the live state site by site: a change at one site makes that site's
house again and reads no other (a city sends a site event for nearly every message); the whole
page is read again only when the hour, the profile or the list of public sites moves on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from central.live.events import LiveEvent
from central.live.public_feed import PublicFeed
from central.live.state import LiveState
from central.live.views import PublicSite, PublicSites, SiteDetail, Sites, SiteSummary
from central.sites import SiteDirectory
from qihe.contract import GatewayStatus, SeatReading

_T = TypeVar("_T")

T0 = datetime(2026, 3, 2, 1, 10, tzinfo=UTC)  # 09:10 in Shanghai, a Monday
DIRECTORY = SiteDirectory.model_validate(
    {
        "sites": [
            {
                "id": site,
                "name": site,
                "opening_hours": {"daily": "00:00-24:00"},
                "seats": [{"gateway": "gw1", "sensor": f"{site}-a.{n}"} for n in (1, 2)],
            }
            for site in ("north", "south", "east")
        ]
    }
)


class Source:
    """The service's reading side over a bare live state, counting the whole-page reads."""

    def __init__(self, state: LiveState, now: datetime) -> None:
        self.state, self.now = state, now
        self.feed: PublicFeed | None = None
        self.whole_reads = 0

    def _sent(self, snapshot: _T) -> _T:
        assert self.feed is not None
        self.feed.offer(self.state.take_pending())
        return snapshot

    def sites(self) -> Sites:
        self.whole_reads += 1
        return self._sent(self.state.sites(self.now))

    def detail(self, site_id: str) -> SiteDetail | None:
        return self._sent(self.state.detail(site_id, self.now))

    def public(self) -> PublicSites:
        self.whole_reads += 1
        return self._sent(self.state.public(self.now))

    def public_site(self, site_id: str) -> tuple[PublicSite, SiteSummary] | None:
        return self.state.public_site(site_id)


def seat(site: str, n: int, occupied: bool, at: datetime) -> SeatReading:
    return SeatReading(
        site=site, gateway="gw1", device=f"{site}-a", sensor=f"{site}-a.{n}",
        occupied=occupied, ts=at,
    )  # fmt: skip


def online(site: str, at: datetime) -> GatewayStatus:
    return GatewayStatus(site=site, gateway="gw1", state="online", ts=at, session=1)


async def site_events(queue: asyncio.Queue[LiveEvent | None], count: int) -> list[LiveEvent]:
    async with asyncio.timeout(5):
        return [event for _ in range(count) if (event := await queue.get()) is not None]


async def test_a_change_at_one_site_sends_only_that_house_and_reads_no_other() -> None:
    now = T0
    state = LiveState(DIRECTORY, started_at=now)
    for site in ("north", "south", "east"):
        state.apply(online(site, now), now, retained=False)
        for n in (1, 2):
            state.apply(seat(site, n, False, now), now, retained=False)
    state.refresh(now)
    source = Source(state, now)
    feed = source.feed = PublicFeed(source, clock=lambda: source.now)
    async with feed.hub.subscribe(site=None, seats=False) as sub:
        task = asyncio.create_task(feed.run())
        try:
            await site_events(sub.queue, 3)  # the task made every house once
            before = {h.id: h for h in feed.houses().sites}
            reads = source.whole_reads

            source.now = now = now + timedelta(seconds=5)
            state.apply(seat("south", 1, True, now), now, retained=False)
            feed.offer(state.refresh(now))
            (event,) = await site_events(sub.queue, 1)

            assert event.kind == "site" and event.site == "south"
            assert '"free_seats":1' in event.data and '"busy_pct":50.0' in event.data
            assert source.whole_reads == reads  # no whole-page read for one site's change
            after = {h.id: h for h in feed.houses().sites}
            assert list(after) == list(before)  # the page's order kept
            assert after["north"] is before["north"] and after["east"] is before["east"]
            assert after["south"].free_seats == 1
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_the_hour_moving_on_looks_at_every_house_again() -> None:
    now = T0
    state = LiveState(DIRECTORY, started_at=now)
    for site in ("north", "south", "east"):
        state.apply(seat(site, 1, True, now), now, retained=False)
    state.refresh(now)
    source = Source(state, now)
    feed = source.feed = PublicFeed(source, clock=lambda: source.now)
    task = asyncio.create_task(feed.run())
    try:
        async with feed.hub.subscribe(site=None, seats=False) as sub:
            await site_events(sub.queue, 3)  # the task made every house once
        reads = source.whole_reads
        source.now = now = now + timedelta(hours=1)  # 10:10 in Shanghai
        state.apply(seat("north", 2, True, now), now, retained=False)
        feed.offer(state.refresh(now))
        async with asyncio.timeout(5):
            while source.whole_reads == reads:
                await asyncio.sleep(0.01)
        assert {h.id for h in feed.houses().sites} == {"north", "south", "east"}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
