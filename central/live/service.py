"""``LiveService``: MQTT in, live state, HTTP out — one asyncio process.

Three owned tasks: the MQTT subscriber (reconnects with backoff; the broker replays the
retained state on every subscribe, so the service is right at once after a start or a
reconnect), the refresher (sends what changed, and turns seats unknown as time passes),
and the HTTP server (uvicorn on a socket bound before start, so port 0 works).

Everything that reads or changes the :class:`LiveState` runs on the event loop — the
subscriber, the refresher and the API's handlers alike — so versions are handed out in one
order and a snapshot is never taken halfway through a refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import TypeVar

import uvicorn

from central.fleet import Fleet, FleetState
from central.live.alerts_api import AlertDesk
from central.live.api import create_app
from central.live.config import LiveConfig
from central.live.events import LiveEvent
from central.live.hub import EventHub
from central.live.public_feed import PublicFeed
from central.live.state import LiveState, Timeouts
from central.live.views import PublicSite, PublicSites, SiteDetail, Sites, SiteSummary
from central.metrics import live_metrics
from central.reload import ReloadRefusedError
from central.site_feed import SiteFeed
from central.sites import SiteDirectory
from qihe.clock import Clock, utc_now
from qihe.contract import GatewayStatus, Reading

__all__ = ["LiveService"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Least time between two refreshes (seconds): a burst of messages is sent as one batch.
BATCH_GAP_S = 0.005


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the process that embeds it owns signals."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


class LiveService:
    def __init__(
        self, config: LiveConfig, directory: SiteDirectory, *, clock: Clock = utc_now
    ) -> None:
        self.config = config
        self.directory = directory
        self._clock = clock
        self._feed = SiteFeed(config.mqtt, name="live", logger=log, clock=clock)
        self.state = LiveState(
            directory,
            started_at=clock(),
            timeouts=Timeouts(
                config.gateway_silent_after, config.device_silent_intervals, config.air_stale_after
            ),
        )
        #: Every gateway's health for the fleet view (``/fleet``, ``qihe fleet``).
        self.fleet_state = FleetState(directory)
        self.hub = EventHub(
            max_subscribers=config.http.max_streams, queue_size=config.http.stream_queue
        )
        #: The public view and its own stream (central/live/public_feed.py).
        self.public_feed = PublicFeed(
            self,
            zone=directory.zone,
            large_text=[site.id for site in directory.sites if site.public_large_text],
            stale_after=config.gateway_silent_after,
            typical=config.public.typical,
            clock=clock,
            max_streams=config.http.max_streams,
            queue_size=config.http.stream_queue,
        )
        #: Operators' orders to the alert engine (acknowledge, silence) and its silences.
        self.alert_desk = AlertDesk(config.mqtt, config.commands)
        self.app = create_app(
            self,
            config.http,
            fleet=self,
            commands=config.commands,
            alerts=self.alert_desk,
            public=self.public_feed,
            limits=config.public.rate_limit,
        )
        #: ``/metrics`` when the config asks for it (docs/metrics.md).
        self.metrics = None if config.metrics is None else live_metrics(config.metrics, self)
        self.port: int | None = None
        self.broker_connected = asyncio.Event()
        self._changed = asyncio.Event()
        self._listening = asyncio.Event()

    @property
    def received(self) -> int:
        """Messages taken from the broker, refused ones included."""
        return self._feed.received

    @property
    def refused(self) -> int:
        return self._feed.refused

    # The API's view (LiveSource); on the event loop only --------------------------------

    def sites(self) -> Sites:
        return self._sent(self.state.sites(self._clock()))

    def detail(self, site_id: str) -> SiteDetail | None:
        return self._sent(self.state.detail(site_id, self._clock()))

    def public(self) -> PublicSites:
        return self._sent(self.state.public(self._clock()))

    def public_site(self, site_id: str) -> tuple[PublicSite, SiteSummary] | None:
        # No snapshot: the public feed asks for the sites whose events it was just sent.
        return self.state.public_site(site_id)

    def has_site(self, site_id: str) -> bool:
        return self.state.has_site(site_id)

    def fleet(self, *, district: str | None, sort: str) -> Fleet:
        return self.fleet_state.view(self._clock(), district=district, sort=sort)

    def _sent(self, snapshot: _T) -> _T:
        # What answering it refreshed is sent at once, so that the streams have every
        # version up to the snapshot's before the next message is taken.
        self._publish(self.state.take_pending())
        return snapshot

    def _publish(self, events: list[LiveEvent]) -> None:
        self.hub.publish(events)
        self.public_feed.offer(events)

    def health(self) -> dict[str, object]:
        return {
            "status": "ok" if self.broker_connected.is_set() else "degraded",
            "broker_connected": self.broker_connected.is_set(),
            "messages_received": self.received,
            "messages_refused": self.refused,
            "streams": self.hub.subscribers,
            "version": self.state.version,
        }

    def reload(self, config: LiveConfig, directory: SiteDirectory) -> None:
        """Take a new config (SIGHUP) keeping the live state and the open streams: the
        operator token, the public cache time and the silence timeouts change at once; a
        config that changes anything else (broker, socket, sites, accounts) needs a restart
        and is refused (:class:`~central.reload.ReloadRefusedError`)."""
        live = {"http": {"operator_token", "public_max_age"}}
        live_top = {"gateway_silent_after", "device_silent_intervals", "air_stale_after"}
        old, new = self.config.model_dump(), config.model_dump()
        fixed = [k for k in new if k not in live_top and k != "http" and new[k] != old[k]]
        fixed += [f"http.{k}" for k in new["http"]
                  if k not in live["http"] and new["http"][k] != old["http"][k]]  # fmt: skip
        if directory.model_dump() != self.directory.model_dump():
            fixed.append("sites (the directory)")
        if fixed:
            raise ReloadRefusedError(
                f"需要重启 these take effect only at a restart: {', '.join(fixed)}"
            )
        self.config = config
        self.app.state.http = config.http
        self.state.timeouts = Timeouts(
            config.gateway_silent_after, config.device_silent_intervals, config.air_stale_after
        )
        self._changed.set()

    # Running -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the live service is not listening yet")
        host = self.config.http.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        return f"http://{shown}:{self.port}/"

    async def wait_listening(self) -> None:
        await self._listening.wait()

    async def run(self) -> None:
        """Serve until cancelled; then end the streams and stop the server cleanly."""
        sock = await asyncio.to_thread(self._bind)
        self.port = sock.getsockname()[1]
        try:
            if self.metrics is not None:
                await self.metrics.astart()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._serve_http(sock), name="live-http")
                tg.create_task(self._subscribe(), name="live-mqtt")
                tg.create_task(self._refresh(), name="live-refresh")
                tg.create_task(self.alert_desk.run(), name="live-alert-desk")
                tg.create_task(self.public_feed.run(), name="live-public")
        finally:
            sock.close()
            if self.metrics is not None:
                await asyncio.shield(self.metrics.astop())

    def _bind(self) -> socket.socket:
        http = self.config.http
        family = socket.AF_INET6 if ":" in http.host else socket.AF_INET
        # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY only on sockets accepted
        # from a listener whose protocol says TCP. Without it, an event written while the
        # previous one is still unacknowledged waits for the reader's delayed ACK (up to
        # 40 ms on Linux): that was the p99 of seat change → live page at city scale
        # (docs/benchmarks.md, "Nagle and the city's 41 ms").
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((http.host, http.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"live service cannot listen on {http.host}:{http.port}: {exc}") from exc
        sock.listen(128)
        sock.setblocking(False)
        return sock

    async def _serve_http(self, sock: socket.socket) -> None:
        server = _EmbeddedServer(
            uvicorn.Config(
                self.app,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=2,
                access_log=False,
            )
        )
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="live-uvicorn")
        self._listening.set()
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            # Streams never end by themselves: end them, then let uvicorn close politely.
            self.hub.close()
            self.public_feed.hub.close()
            server.should_exit = True
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await serving
            raise

    async def _subscribe(self) -> None:
        await self._feed.follow(
            self._take,
            self._take_alert,
            on_connected=lambda _client: self.broker_connected.set(),
            on_lost=self.broker_connected.clear,
        )

    def _take(self, message: GatewayStatus | Reading, retained: bool) -> None:
        now = self._clock()
        self.state.apply(message, now, retained=retained)
        self.fleet_state.apply(message, now, retained=retained)
        self._changed.set()

    def _take_alert(self, topic: str, payload: bytes, _retained: bool) -> None:
        taken = self._feed.alert(topic, payload, "alert")
        if taken is not None:
            self.state.apply_alert(*taken)
            self._changed.set()

    async def _refresh(self) -> None:
        """Send changes as soon as messages were taken, and check the clock every interval
        (a timed refresh looks only at the sites time alone may have changed: cheap).

        At most one refresh per ``BATCH_GAP_S``: the first message after a quiet spell is
        sent at once, and under load what arrives meanwhile goes out together — one refresh
        per site and one write per stream for many messages."""
        interval = self.config.refresh_interval.total_seconds()
        loop = asyncio.get_running_loop()
        next_check = last = loop.time()
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that races the event, and this task would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(next_check):
                    await self._changed.wait()
            if (pause := last + BATCH_GAP_S - loop.time()) > 0:
                await asyncio.sleep(pause)
            self._changed.clear()
            last = loop.time()
            timed = last >= next_check
            if timed:
                next_check = last + interval
            if timed:
                self._feed.tick()
            events = self.state.take_pending() + self.state.refresh(self._clock(), timed=timed)
            self._publish(events)
