"""The public view of the live state, and its own event stream: counts only, nothing personal.

The live service hands every batch of its events to :meth:`PublicFeed.offer`; the feed's task
turns them into public events on a hub of its own (:attr:`PublicFeed.hub`), which the public
stream ``/api/v1/public/events`` serves:

- a ``site`` event of the operator stream (a summary changed) makes the feed rebuild the
  public houses (:class:`~central.live.public_views.PublicHouse`) whose public entry changed,
  and send each as a public ``site`` event;
- a ``seat`` event becomes a public ``seat`` event (number, label, place, free or not) when the
  seat's public state changed, for the seat maps some reader asked for (loaded on demand);
- the passing of the hour changes "usual at this hour": every house is looked at again then.

Nothing else crosses over: no gateway, board, door, alert, people count or time of a seat.
A public stream opens with the whole current view (``sites``, and ``seats`` for one site's
stream), so a client never has to merge a snapshot fetched from a cache with the stream; the
cacheable JSON (``/api/v1/public/sites``) is for a page whose stream dropped and for other
readers.

Everything here runs on the event loop, as the live state does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from central.live.events import EventKind, LiveEvent
from central.live.hub import EventHub
from central.live.public_views import (
    PublicHouse,
    PublicHouses,
    PublicSeat,
    PublicSeatState,
    PublicSiteDetail,
)
from central.live.typical import TypicalError, TypicalProfile, trend
from central.live.views import Layout, PublicSite, PublicSites, SiteDetail, Sites, SiteSummary
from qihe.clock import Clock, utc_now

__all__ = ["PublicFeed"]

log = logging.getLogger(__name__)

#: A seat's public state from its live state. An away seat (things there, nobody) is in use;
#: one held empty past its grace (占座) may well be free; faults and unknowns are unknown.
SEAT_STATES: dict[str, PublicSeatState] = {
    "free": "free",
    "occupied": "occupied",
    "away": "occupied",
    "held": "likely_free",
}
#: Events waiting for the feed's task, at most; beyond, they are dropped and the feed resyncs.
MOST_PENDING = 20_000
#: How often, at most, the hour and the profile file are looked at without any event.
TICK_S = 30.0
#: How often the profile file is looked at for a change.
TYPICAL_CHECK_S = 3600.0


class PublicSource(Protocol):
    """What the feed reads (the running :class:`~central.live.service.LiveService`)."""

    def sites(self) -> Sites: ...
    def detail(self, site_id: str) -> SiteDetail | None: ...
    def public(self) -> PublicSites: ...


class FollowedSource(PublicSource, Protocol):
    """A source the feed can follow site by site: the running service."""

    def public_site(self, site_id: str) -> tuple[PublicSite, SiteSummary] | None:
        """One site's public entry and the summary it was made from, as last refreshed
        (None: not on the public page)."""
        ...


@dataclass(slots=True)
class _SeatMap:
    layout: Layout
    #: By the seat's live id, in the map's order.
    seats: dict[str, PublicSeat]
    #: The operator stream's version the map was read at: older seat events are in it already.
    as_of: int


class PublicFeed:
    def __init__(
        self,
        source: PublicSource,
        *,
        zone: tzinfo | None = None,
        large_text: Iterable[str] = (),
        stale_after: timedelta = timedelta(seconds=180),
        typical: Path | None = None,
        clock: Clock = utc_now,
        max_streams: int = 500,
        queue_size: int = 1000,
    ) -> None:
        self._source = source
        self._zone = zone or ZoneInfo("Asia/Shanghai")
        self._large_text = frozenset(large_text)
        self.stale_after_s = int(stale_after.total_seconds())
        self._typical_path = typical
        self._clock = clock
        #: The public streams' hub, and how many it takes (503 beyond).
        self.max_streams = max_streams
        self.hub = EventHub(max_subscribers=max_streams, queue_size=queue_size)
        self.typical = TypicalProfile()
        self._typical_checked = float("-inf")
        #: Per site: the public entry and the hour a house was made from, and the house.
        self._made: dict[str, tuple[PublicSite, tuple[int, int], PublicHouse]] = {}
        #: The typical profile changed: every house is made again at the next site change.
        self._remake_all = False
        self._houses: dict[str, PublicHouse] = {}
        self._maps: dict[str, _SeatMap] = {}
        self._pending: list[LiveEvent] = []
        self._lost = False
        self._wake = asyncio.Event()
        #: While the task runs, the feed's view follows the events; otherwise every snapshot
        #: is read afresh from the source (an app without a running service, in tests).
        self._following = False
        self._version = 0
        self._hour: tuple[int, int] | None = None
        #: The operator stream's version the feed has taken events up to.
        self._main_version = 0

    # The service's side ----------------------------------------------------------------

    def offer(self, events: list[LiveEvent]) -> None:
        """Events the service just sent to its own streams (cheap: the task does the work)."""
        if not events or not self._following:
            return
        if len(self._pending) + len(events) > MOST_PENDING:
            self._pending.clear()
            self._lost = True
        else:
            self._pending.extend(events)
        self._wake.set()

    async def run(self) -> None:
        """Follow the offered events until cancelled; then end the public streams."""
        try:
            await self._check_typical()
            self._following = True
            self._maps.clear()
            self._refresh_houses(emit=True)
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK_S):
                        await self._wake.wait()
                self._wake.clear()
                await self._check_typical()
                self._take()
        finally:
            self._following = False
            self.hub.close()

    # Snapshots, for the API ------------------------------------------------------------

    def houses(self) -> PublicHouses:
        if not self._following:
            self._refresh_houses(emit=False)
        return PublicHouses(
            generated_at=self._clock(),
            stale_after_s=self.stale_after_s,
            sites=tuple(self._houses.values()),
        )

    def has_site(self, site_id: str) -> bool:
        if not self._following:
            self._refresh_houses(emit=False)
        return site_id in self._houses

    def site(self, site_id: str) -> PublicSiteDetail | None:
        """One house with its seat map; None when it is not on the public page."""
        if not self.has_site(site_id):
            return None
        seat_map = self._seat_map(site_id)
        if seat_map is None:
            return None
        return PublicSiteDetail(
            generated_at=self._clock(),
            stale_after_s=self.stale_after_s,
            site=self._houses[site_id],
            layout=seat_map.layout,
            seats=tuple(seat_map.seats.values()),
        )

    def opening(self, site_id: str | None) -> bytes:
        """What a new public stream starts with: ``ready``, then the whole view it follows
        (``sites``: all houses; or ``detail``: one house and its seat map). Called right after
        subscribing, with no await between, so that every event the stream gets is newer."""
        v = self._version
        frames = [_frame("ready", v, f'{{"v":{v}}}')]
        if site_id is None:
            body = self.houses().model_dump_json()
            frames.append(_frame("sites", v, f'{{"v":{v},{body[1:]}'))
        else:
            detail = self.site(site_id)
            if detail is not None:
                body = detail.model_dump_json()
                frames.append(_frame("detail", v, f'{{"v":{v},{body[1:]}'))
        return b"".join(frames)

    # Internals -------------------------------------------------------------------------

    def _take(self) -> None:
        events, self._pending = self._pending, []
        out: list[LiveEvent] = []
        whole = self._lost  # events were dropped: every house is looked at again
        #: Sites whose summary changed, in the order their events came.
        changed: dict[str, None] = {}
        if self._lost:
            self._lost = False
            for site_id in self._maps:  # those streams reconnect and read the map again
                out.append(self._event("resync", site_id, "{}"))
            self._maps.clear()
        for event in events:
            self._main_version = max(self._main_version, event.version)
            if event.kind == "site" and event.site is not None:
                changed[event.site] = None
            elif event.kind == "seat" and event.site in self._maps:
                self._seat_event(event, out)
        self.hub.publish(out)
        # Only the houses of the sites that changed are made again (a city sends a site event
        # for nearly every message); every house when the hour ("usual at this hour") moved
        # on, events were lost, or the profile changed.
        hour = self._local_hour()
        if whole or self._hour != hour or (changed and self._remake_all):
            self._refresh_houses(emit=True)
        elif changed:
            self._refresh_changed(changed, hour)

    def _refresh_changed(self, site_ids: Iterable[str], hour: tuple[int, int]) -> None:
        """Make again the houses of ``site_ids`` (the hour unchanged) and send those that
        changed; every house when a site joins or leaves the public page."""
        source = self._source
        if not hasattr(source, "public_site"):  # a source that cannot be read site by site
            self._refresh_houses(emit=True)
            return
        followed: FollowedSource = source  # type: ignore[assignment]
        out: list[LiveEvent] = []
        for site_id in site_ids:
            got = followed.public_site(site_id)
            old = self._houses.get(site_id)
            if got is None and old is None:
                continue  # not public
            if got is None or old is None:  # on or off the public page: the whole list again
                self._refresh_houses(emit=True)
                return
            entry, summary = got
            made = self._made.get(site_id)
            if made is not None and made[0] is entry and made[1] == hour:
                house = made[2]
            else:
                house = self._house(entry, summary, hour)
                self._made[site_id] = (entry, hour, house)
            self._houses[site_id] = house
            if house is not old and house != old:
                out.append(self._event("site", site_id, _body("site", None, house)))
        self.hub.publish(out)

    def _seat_event(self, event: LiveEvent, out: list[LiveEvent]) -> None:
        site_id = event.site
        assert site_id is not None
        seat_map = self._maps[site_id]
        if event.version <= seat_map.as_of:
            return  # read with the map already
        seat = json.loads(event.data)["seat"]
        shown = seat_map.seats.get(seat["id"])
        if shown is None:  # a seat the map did not have yet (not in the directory)
            del self._maps[site_id]
            out.append(self._event("resync", site_id, "{}"))
            return
        state = SEAT_STATES.get(seat["state"], "unknown")
        if state != shown.state:
            new = shown.model_copy(update={"state": state})
            seat_map.seats[seat["id"]] = new
            out.append(self._event("seat", site_id, _body("seat", site_id, new)))

    def _local_hour(self) -> tuple[int, int]:
        local = self._clock().astimezone(self._zone)
        return local.weekday(), local.hour

    def _refresh_houses(self, *, emit: bool) -> None:
        hour = self._hour = self._local_hour()
        self._remake_all = False
        summaries: dict[str, SiteSummary] | None = None
        houses: dict[str, PublicHouse] = {}
        out: list[LiveEvent] = []
        for entry in self._source.public().sites:
            made = self._made.get(entry.id)
            if made is not None and made[0] is entry and made[1] == hour:
                house = made[2]
            else:
                if summaries is None:
                    summaries = {s.id: s for s in self._source.sites().sites}
                house = self._house(entry, summaries.get(entry.id), hour)
                self._made[entry.id] = (entry, hour, house)
            houses[entry.id] = house
            old = self._houses.get(entry.id)
            if emit and house is not old and old != house:
                out.append(self._event("site", entry.id, _body("site", None, house)))
        self._houses = houses
        if emit:
            self.hub.publish(out)

    def _house(
        self, entry: PublicSite, summary: SiteSummary | None, hour: tuple[int, int]
    ) -> PublicHouse:
        busy = None
        if summary is not None and summary.occupancy is not None:
            busy = round(summary.occupancy * 100, 1)
        usual = self.typical.at(entry.id, *hour)
        return PublicHouse(
            **entry.model_dump(),
            busy_pct=busy,
            usual_pct=None if usual is None else usual.typical,
            trend=trend(busy, usual),
            large_text=entry.id in self._large_text,
        )

    def _seat_map(self, site_id: str) -> _SeatMap | None:
        seat_map = self._maps.get(site_id) if self._following else None
        if seat_map is not None:
            return seat_map
        detail = self._source.detail(site_id)
        if detail is None:
            return None
        seats: dict[str, PublicSeat] = {}
        for n, seat in enumerate(detail.seats, start=1):
            seats[seat.id] = PublicSeat(
                n=n,
                # A seat the directory does not list is labelled with its sensor: not public.
                label=str(n) if seat.label == seat.id else seat.label,
                row=seat.row,
                col=seat.col,
                x=seat.x,
                y=seat.y,
                state=SEAT_STATES.get(seat.state, "unknown"),
            )
        # The detail's own events were offered to the feed before it returned (the service
        # sends what a snapshot refreshed first): none newer than the map is skipped.
        seat_map = _SeatMap(detail.layout, seats, as_of=self._newest_main_version())
        if self._following:
            self._maps[site_id] = seat_map
        return seat_map

    def _newest_main_version(self) -> int:
        pending = self._pending[-1].version if self._pending else 0
        return max(self._main_version, pending)

    def _event(self, kind: EventKind, site_id: str, data: str) -> LiveEvent:
        # ``data`` is a JSON object; the version goes first, as in the operator stream.
        self._version += 1
        rest = "}" if data == "{}" else f",{data[1:]}"
        return LiveEvent(kind, site_id, self._version, f'{{"v":{self._version}{rest}')

    async def _check_typical(self) -> None:
        path = self._typical_path
        now = time.monotonic()
        if path is None or now - self._typical_checked < TYPICAL_CHECK_S:
            return
        self._typical_checked = now
        try:
            profile = await asyncio.to_thread(TypicalProfile.load, path)
        except TypicalError as exc:
            log.error("典型繁忙时段无法读取 typical busy times not loaded: %s", exc)
            return
        if profile.mtime_ns != self.typical.mtime_ns:
            self.typical = profile
            self._made.clear()  # every house again, with the new profile
            self._remake_all = True
            log.info(
                "典型繁忙时段已读取 typical busy times read: %d hours (%s)", len(profile), path
            )


def _body(name: str, site_id: str | None, model: PublicHouse | PublicSeat) -> str:
    site = "" if site_id is None else f'"site":{json.dumps(site_id)},'
    return f'{{{site}"{name}":{model.model_dump_json()}}}'


def _frame(kind: str, version: int, data: str) -> bytes:
    return f"id: {version}\nevent: {kind}\ndata: {data}\n\n".encode()
