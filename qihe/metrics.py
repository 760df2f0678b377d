"""Prometheus metrics of a qihe service: the ``metrics`` config block and the ``/metrics`` server.

Every service (consumer, live, alerts, gateway) exposes what it already counts, read at scrape
time by custom collectors (:mod:`central.metrics`, :mod:`edge.metrics`) from the service's own
stats; nothing here counts. Each service has its own :class:`~prometheus_client.CollectorRegistry`
(never the global one: tests run several services in one process) served by prometheus_client's
threaded HTTP server on the configured address, off the event loop::

    metrics:
      listen: 9464              # 127.0.0.1:9464 — loopback unless an address is given
      # listen: "0.0.0.0:9464"  # every interface (then firewall it)
      # listen: "[::1]:9464"

A service on asyncio starts it with :meth:`MetricsServer.astart`: its collectors then read the
service's state on the event loop that owns it (the HTTP thread hands the read over and waits),
so a scrape never sees a dict halfway through a change. A blocked loop fails the scrape (its
``up`` goes to 0), which is what an operator should see.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Annotated, NamedTuple, TypeVar

from pydantic import BeforeValidator

from qihe.configtypes import StrictModel

if TYPE_CHECKING:  # prometheus_client loads with the server (80 ms): configs import this module
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

__all__ = ["MetricsConfig", "MetricsError", "MetricsServer", "parse_listen"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Longest a scrape waits for the event loop to read the service's state.
LOOP_READ_TIMEOUT_S = 5.0


class MetricsError(OSError):
    """The metrics endpoint cannot listen where it was told (address in use, not ours...)."""


class Listen(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(value: str | int) -> Listen:
    """``9464``, ``":9464"``, ``"127.0.0.1:9464"``, ``"[::1]:9464"`` → :class:`Listen`.

    The host is an IP address (or ``localhost``), never a name to look up: binding must not
    wait on DNS, and a typo must be an error at start, not a socket on some other interface.
    Without a host it is loopback. Port 0 takes a free port (tests)."""
    text = str(value).strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:9464")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"{text!r}: the port must be a number from 0 to 65535")
    host = host or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{text!r}: the host must be an IP address such as 127.0.0.1, 0.0.0.0 or [::1]"
        ) from None
    return Listen(host, int(port_text))


def _listen(value: object) -> object:
    # Before validation: a bare port may come as a YAML number; anything else fails as usual.
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(parse_listen(value))
    return value


class MetricsConfig(StrictModel):
    """Where the service serves ``/metrics`` (the whole block absent: no endpoint)."""

    #: ``PORT`` (on 127.0.0.1) or ``HOST:PORT`` with HOST an IP address; kept normalised.
    listen: Annotated[str, BeforeValidator(_listen)]

    @property
    def address(self) -> Listen:
        return parse_listen(self.listen)


class _OnLoop:
    """A collector whose reads happen on ``loop`` (the HTTP thread waits for them)."""

    def __init__(self, inner: Collector, loop: asyncio.AbstractEventLoop) -> None:
        self._inner = inner
        self._loop = loop

    def collect(self) -> Iterable[Metric]:
        return _call_on_loop(self._loop, lambda: list(self._inner.collect()))


def _call_on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], _T]) -> _T:
    future: concurrent.futures.Future[_T] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the scrape, which answers 500
            future.set_exception(exc)

    loop.call_soon_threadsafe(run)
    try:
        return future.result(LOOP_READ_TIMEOUT_S)
    except TimeoutError:
        future.cancel()
        raise


class MetricsServer:
    """``/metrics`` for one service, from ``collectors``, on ``config.listen``.

    The constructor does no I/O; :meth:`start` (or :meth:`astart` on asyncio) binds and serves
    from a daemon thread, raising :class:`MetricsError` naming the service and the address;
    :meth:`stop` (:meth:`astop`) closes it. ``service`` names it in errors and logs.
    """

    def __init__(
        self, config: MetricsConfig, collectors: Sequence[Collector], *, service: str
    ) -> None:
        self.config = config
        self.service = service
        self._collectors = tuple(collectors)
        self._shutdown: Callable[[], None] | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"the metrics endpoint of {self.service} is not listening")
        return f"http://{Listen(self.config.address.host, self.port)}/metrics"

    def start(self) -> None:
        """Serve collectors that are safe to read from another thread."""
        self._serve(self._collectors)

    async def astart(self) -> None:
        """Serve collectors that read state owned by the running event loop."""
        loop = asyncio.get_running_loop()
        wrapped = [_OnLoop(collector, loop) for collector in self._collectors]
        await asyncio.to_thread(self._serve, wrapped)

    def stop(self) -> None:
        shutdown, self._shutdown = self._shutdown, None
        if shutdown is not None:
            shutdown()
            self.port = None

    async def astop(self) -> None:
        # shutdown() waits for the server's poll loop (up to half a second): off the loop.
        await asyncio.to_thread(self.stop)

    async def serve(self) -> None:
        """Keep serving until cancelled, then stop: a task in the service's TaskGroup owns the
        endpoint that :meth:`astart` opened before the group (so that a port in use is one
        plain error, not an exception group)."""
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self.astop())

    def _serve(self, collectors: Iterable[Collector]) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        if self._shutdown is not None:
            raise RuntimeError(f"the metrics endpoint of {self.service} is already serving")
        registry = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            registry.register(collector)
        host, port = self.config.address
        try:
            server, thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise MetricsError(
                f"{self.service}: 指标端点无法监听 the metrics endpoint cannot listen on "
                f"{self.config.listen}: {exc.strerror or exc}"
            ) from exc
        thread.name = f"qihe-{self.service}-metrics"

        def shutdown() -> None:
            server.shutdown()
            server.server_close()
            thread.join()

        self._shutdown = shutdown
        self.port = int(server.server_port)
        log.info("%s: 指标 metrics on %s", self.service, self.url)
