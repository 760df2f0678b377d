"""One worker per route: a bounded queue, a rate limit that merges, retries with backoff.

The engine ``offer()``s each :class:`Notification` to every route's :class:`RouteWorker`
and never waits: each worker runs as its own task, so a robot that is slow, down or
throttling us delays only its own messages. A worker:

* holds at most ``queue_size`` notifications; when full it drops the *oldest* (the newest
  state of a site matters more), counts ``dropped`` and logs once per overflow episode;
* sends at most ``max_per_minute`` messages in any 60 s. WeCom and DingTalk robots accept
  20 a minute and DingTalk throttles a robot for 10 minutes when exceeded, so a token
  comes back 60 s after it was used: a classic refilling bucket of 20 would let 40 through
  in one minute;
* merges: while every waiting notification fits in the tokens left, each goes in its own
  message; otherwise all that wait go in ONE message (a digest), so a burst of 65 sites
  becomes one or two messages, and notifications arriving while the tokens are spent wait
  and leave together when one comes back;
* retries a :class:`RouteError` with ``retryable=True`` with capped exponential backoff and
  jitter, every attempt taking a token, up to ``max_attempts``; then counts ``failed``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Protocol, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from central.alerts.model import Alert, Notification, Severity
from central.errors import CentralError
from qihe.backoff import Backoff
from qihe.configtypes import Duration, Ident
from qihe.once import Once

__all__ = [
    "HttpRouteSettings",
    "Route",
    "RouteError",
    "RouteName",
    "RouteSettings",
    "RouteWorker",
    "http_client",
]

log = logging.getLogger(__name__)

RouteName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
#: Seconds from an arbitrary start (``time.monotonic``), for rate limits and retry delays.
Monotonic = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: The rate limit's window: the robots count messages per minute.
WINDOW_S = 60.0


class RouteError(CentralError, OSError):
    """A route could not deliver; ``retryable`` says whether the same message may pass later.

    ``status`` is the HTTP status and ``errcode`` the robot's error code, when there was an
    answer; ``retry_after`` a minimum delay the server asked for; ``delivered`` how many
    notifications at the start of the batch did go through (a webhook POSTs one per site).
    The message never contains a secret: routes redact before raising.
    """

    def __init__(
        self,
        route: str,
        reason: str,
        *,
        retryable: bool,
        status: int | None = None,
        errcode: int | None = None,
        retry_after: float | None = None,
        delivered: int = 0,
    ) -> None:
        super().__init__(f"alert route {route}: {reason}")
        self.route = route
        self.reason = reason
        self.retryable = retryable
        self.status = status
        self.errcode = errcode
        self.retry_after = retry_after
        self.delivered = delivered


class Route(Protocol):
    """Delivers notifications somewhere people see them; one message per ``send`` call.

    ``send`` gets one notification, or several to merge into one digest, and raises
    :class:`RouteError` on failure. ``aclose`` releases what the route opened (its HTTP
    client); the worker calls it when it stops.
    """

    name: str

    async def send(self, notifications: Sequence[Notification]) -> None: ...

    async def aclose(self) -> None: ...


class RouteSettings(BaseModel):
    """What every route's config has: its worker's queue, rate limit and retries."""

    # hide_input_in_errors: a bad value next to a secret must not be echoed at start-up.
    model_config = ConfigDict(
        extra="forbid", frozen=True, hide_input_in_errors=True, coerce_numbers_to_str=True
    )

    #: Names the route in logs and counters; unique among the configured routes.
    name: RouteName
    #: Notifications held while the route is busy, slow or down.
    queue_size: int = Field(default=100, ge=1, le=100_000)
    #: Messages in any 60 s; ``None`` is unlimited.
    max_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    #: Tries of one message, the first included.
    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_min_delay: Duration = timedelta(seconds=1)
    retry_max_delay: Duration = timedelta(seconds=60)
    #: Which alerts this route carries (all that are given must match; none: every alert):
    #: a site's staff route names its sites, a gentle notice route its rules or severities.
    sites: tuple[Ident, ...] = ()
    rules: tuple[Ident, ...] = ()
    severities: tuple[Severity, ...] = ()

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.retry_max_delay < self.retry_min_delay:
            raise ValueError("retry_max_delay is shorter than retry_min_delay")
        return self

    def carries(self, notification: Notification) -> Notification | None:
        """``notification`` with only the alerts this route carries, or None if none."""
        if self.sites and notification.site not in self.sites:
            return None
        if not (self.rules or self.severities):
            return notification

        def wanted(alert: Alert) -> bool:
            return (not self.rules or alert.rule in self.rules) and (
                not self.severities or alert.severity in self.severities
            )

        firing = tuple(a for a in notification.firing if wanted(a))
        resolved = tuple(a for a in notification.resolved if wanted(a))
        if not (firing or resolved):
            return None
        if (firing, resolved) == (notification.firing, notification.resolved):
            return notification
        status = "firing" if firing else "resolved"
        return notification.model_copy(
            update={"firing": firing, "resolved": resolved, "status": status}
        )


class HttpRouteSettings(RouteSettings):
    """Routes that POST over HTTP: each request ends after ``timeout``, answered or not."""

    timeout: Duration = timedelta(seconds=10)


def http_client(timeout: float) -> httpx.AsyncClient:
    """The HTTP client of a route that POSTs, made on its first send (no I/O before): the one
    place the routes build one."""
    return httpx.AsyncClient(timeout=timeout)


class RateLimit:
    """At most ``per_minute`` uses in any 60 s: each token comes back 60 s after its use."""

    def __init__(self, per_minute: int, *, clock: Monotonic = time.monotonic) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._used: deque[float] = deque()

    def _expire(self) -> float:
        now = self._clock()
        while self._used and self._used[0] + WINDOW_S <= now:
            self._used.popleft()
        return now

    def available(self) -> int:
        self._expire()
        return self._per_minute - len(self._used)

    def delay(self) -> float:
        """Seconds until a token is available (0 when one is)."""
        now = self._expire()
        if len(self._used) < self._per_minute:
            return 0.0
        return self._used[0] + WINDOW_S - now

    def take(self) -> None:
        self._used.append(self._expire())


@dataclass
class RouteStats:
    """Counters of one route, in notifications (``attempts`` in messages)."""

    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    attempts: int = 0
    last_error: str | None = None


class RouteWorker:
    """Owns one route: queue, rate limit, merging and retries. ``run()`` until cancelled."""

    def __init__(
        self,
        route: Route,
        settings: RouteSettings,
        *,
        clock: Monotonic = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        backoff: Backoff | None = None,
    ) -> None:
        self.route = route
        self.stats = RouteStats()
        self._settings = settings
        self._queue: deque[Notification] = deque()
        self._ready = asyncio.Event()
        self._sleep = sleep
        self._limit = (
            RateLimit(settings.max_per_minute, clock=clock)
            if settings.max_per_minute is not None
            else None
        )
        self._backoff = backoff or Backoff(
            minimum=settings.retry_min_delay.total_seconds(),
            maximum=settings.retry_max_delay.total_seconds(),
        )
        #: The queue overflowed and has not drained since: each episode is logged once.
        self._overflowing = Once()

    @property
    def name(self) -> str:
        return self.route.name

    @property
    def pending(self) -> int:
        """Notifications waiting (not counting a message being sent or retried)."""
        return len(self._queue)

    def offer(self, notification: Notification) -> bool:
        """Queue ``notification`` (narrowed to the alerts this route carries, if any) without
        waiting; ``False`` when the oldest had to be dropped."""
        carried = self._settings.carries(notification)
        if carried is None:
            return True
        notification = carried
        dropped = False
        if len(self._queue) >= self._settings.queue_size:
            oldest = self._queue.popleft()
            self.stats.dropped += 1
            dropped = True
            if self._overflowing.first():
                log.warning(
                    "alert route %s: queue full (%d), dropping the oldest notification "
                    "(site %s); further drops are only counted until it drains",
                    self.name,
                    self._settings.queue_size,
                    oldest.site,
                )
        self._queue.append(notification)
        self._ready.set()
        return not dropped

    async def run(self) -> None:
        """Deliver until cancelled; at cancel, stop at once (a request in flight is abandoned)."""
        try:
            while True:
                batch = await self._next_batch()
                try:
                    await self._deliver(batch)
                except Exception:
                    # Supervisor: a bug in one route's rendering must not stop its later
                    # messages. RouteError never gets here; this is the unexpected.
                    self.stats.failed += len(batch)
                    self.stats.last_error = "internal error (see log)"
                    log.exception(
                        "alert route %s: cannot deliver %d notification(s)", self.name, len(batch)
                    )
        finally:
            await self.route.aclose()

    async def _next_batch(self) -> list[Notification]:
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        if self._limit is not None:
            # Wait for a token before choosing, so what arrives meanwhile joins the digest.
            while (delay := self._limit.delay()) > 0:
                await self._sleep(delay)
        if self._limit is not None and len(self._queue) > self._limit.available():
            batch = list(self._queue)
            self._queue.clear()
        else:
            batch = [self._queue.popleft()]
        if not self._queue:
            self._overflowing.reset()  # the next overflow is a new episode, logged again
        return batch

    async def _take_token(self) -> None:
        if self._limit is None:
            return
        while (delay := self._limit.delay()) > 0:
            await self._sleep(delay)
        self._limit.take()

    async def _deliver(self, batch: Sequence[Notification]) -> None:
        self._backoff.reset()
        attempt = 0
        while True:
            await self._take_token()
            attempt += 1
            self.stats.attempts += 1
            try:
                await self.route.send(batch)
            except RouteError as exc:
                self.stats.delivered += exc.delivered
                batch = batch[exc.delivered :]
                self.stats.last_error = str(exc)
                if not exc.retryable or attempt >= self._settings.max_attempts:
                    self._give_up(batch, attempt, exc)
                    return
                delay = max(self._backoff.next_delay(), exc.retry_after or 0.0)
                log.log(
                    logging.WARNING if attempt == 1 else logging.INFO,
                    "%s; attempt %d of %d, next in %.1f s",
                    exc,
                    attempt,
                    self._settings.max_attempts,
                    delay,
                )
                await self._sleep(delay)
            else:
                self.stats.delivered += len(batch)
                if attempt > 1:
                    log.info("alert route %s: delivered after %d attempts", self.name, attempt)
                return

    def _give_up(self, batch: Sequence[Notification], attempts: int, exc: RouteError) -> None:
        self.stats.failed += len(batch)
        sites = ", ".join(sorted({n.site for n in batch}))
        why = "not retryable" if not exc.retryable else f"gave up after {attempts} attempts"
        log.error("%s; %s: %d notification(s) lost (sites %s)", exc, why, len(batch), sites)
