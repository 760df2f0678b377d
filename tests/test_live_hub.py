"""The event hub: filters per subscription, a slow client that cannot hold memory, the
stream's writes, and the events' encoding."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from central.alerts.model import Alert
from central.live.api import _stream
from central.live.events import LiveEvent
from central.live.hub import MOST_PER_WRITE, EventHub, HubFullError
from central.live.views import SeatView


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


async def test_events_queued_while_a_stream_waits_go_out_in_one_write() -> None:
    hub = EventHub()
    stream = _stream(hub, site=None, seats=True)
    opening = await anext(stream)
    assert opening.startswith(b"retry: 2000\n\n") and b"event: ready\n" in opening

    hub.publish(event("seat", "a", v) for v in range(1, 4))
    burst = await anext(stream)
    hub.close()
    rest = [chunk async for chunk in stream]

    assert burst == b"".join(event("seat", "a", v).frame for v in range(1, 4))
    assert burst.count(b"\n\n") == 3
    assert rest == []  # closing the hub ended the stream


async def test_a_burst_larger_than_one_write_is_split_and_nothing_is_lost() -> None:
    hub = EventHub(queue_size=2 * MOST_PER_WRITE)
    stream = _stream(hub, site=None, seats=True)
    await anext(stream)

    hub.publish(event("seat", "a", v) for v in range(1, MOST_PER_WRITE + 11))
    hub.close()
    chunks = [chunk async for chunk in stream]

    assert [c.count(b"\n\n") for c in chunks] == [MOST_PER_WRITE, 10]
    ids = [int(line[4:]) for line in b"".join(chunks).split(b"\n") if line.startswith(b"id: ")]
    assert ids == list(range(1, MOST_PER_WRITE + 11))


def test_an_event_holds_the_same_json_as_json_dumps_of_its_models() -> None:
    at = datetime(2026, 11, 30, 2, 0, 0, 123456, tzinfo=UTC)
    seat = SeatView(
        id="a.1", label="靠窗 \"1\"", row=1, col=2, x=None, y=0.25, state="free", since=at,
        reason=None,
    )  # fmt: skip
    alert = Alert.model_validate(
        {
            "id": "seat_stuck-000000000001", "rule": "seat_stuck", "severity": "warning",
            "state": "firing", "site": "qibin-taoyuan", "site_name": "淇河书屋·桃园站",
            "labels": {"site": "qibin-taoyuan"}, "summary_zh": "座位传感器卡住",
            "summary_en": "a seat sensor is stuck", "value": 0.1234, "starts_at": at,
        }
    )  # fmt: skip

    for body in ({"seat": seat}, {"alerts": (alert, alert)}, {}):
        event = LiveEvent.build("seat", "qibin-taoyuan", 7, body)  # type: ignore[arg-type]
        document = {"v": 7, "site": "qibin-taoyuan"} | {
            name: [v.model_dump(mode="json", by_alias=True) for v in value]
            if isinstance(value, tuple)
            else value.model_dump(mode="json", by_alias=True)
            for name, value in body.items()
        }
        assert event.data == json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        assert event.frame == f"id: 7\nevent: seat\ndata: {event.data}\n\n".encode()
