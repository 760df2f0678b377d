"""The event hub: filters per subscription, and a slow client that cannot hold memory."""

from __future__ import annotations

import pytest

from central.live.events import LiveEvent
from central.live.hub import EventHub, HubFullError


def event(kind: str, site: str, version: int) -> LiveEvent:
    return LiveEvent.build(kind, site, version, {})  # type: ignore[arg-type]


async def test_a_site_subscription_gets_only_that_sites_events() -> None:
    hub = EventHub()
    async with hub.subscribe(site="qibin-taoyuan", seats=True) as sub:
        hub.publish([event("seat", "qibin-taoyuan", 1), event("seat", "qibin-dongfang", 2)])

        assert sub.queue.qsize() == 1
        assert sub.queue.get_nowait() == event("seat", "qibin-taoyuan", 1)


async def test_an_overview_subscription_gets_no_seat_or_device_events() -> None:
    hub = EventHub()
    async with hub.subscribe(site=None, seats=False) as sub:
        hub.publish(
            [
                event("seat", "a", 1),
                event("device", "a", 2),
                event("site", "a", 3),
                event("door", "a", 4),
            ]
        )
        kinds = [sub.queue.get_nowait().kind for _ in range(sub.queue.qsize())]  # type: ignore[union-attr]

    assert kinds == ["site", "door"]


async def test_a_client_that_falls_behind_is_told_to_resync_instead_of_queueing_more() -> None:
    hub = EventHub(queue_size=10)
    async with hub.subscribe(site=None, seats=True) as slow:
        hub.publish(event("seat", "a", v) for v in range(1, 26))

        queued = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]

    # Overflowed at the 11th and the 21st event: each time the backlog was dropped for one
    # resync (the snapshot it fetches holds everything dropped); later events follow it.
    assert slow.resyncs == 2
    assert [(e.kind, e.version) for e in queued if e is not None] == [
        ("resync", 21),
        *(("seat", v) for v in range(22, 26)),
    ]


async def test_more_streams_than_the_limit_are_refused() -> None:
    hub = EventHub(max_subscribers=1)
    async with hub.subscribe(site=None, seats=True):
        with pytest.raises(HubFullError):
            async with hub.subscribe(site=None, seats=True):
                pass


async def test_closing_the_hub_ends_every_stream_even_a_full_one() -> None:
    hub = EventHub(queue_size=10)
    async with hub.subscribe(site=None, seats=True) as sub:
        hub.publish(event("seat", "a", v) for v in range(1, 11))
        hub.close()
        queued = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]

    assert queued[-1] is None
