"""Alert routes: where notifications go — the log, a JSON webhook, WeCom and DingTalk robots.

The explicit registry: a route is chosen by the ``type`` of its config, never imported by
name. Each configured route runs in its own :class:`RouteWorker`::

    workers = [build_worker(config) for config in routes]
    async with asyncio.TaskGroup() as tg:
        for worker in workers:
            tg.create_task(worker.run(), name=f"alert-route-{worker.name}")
        ...
        for worker in workers:
            worker.offer(notification)   # never blocks

Adding a route: a module with its config model (``type: Literal[...]``) and route class,
then one line in :data:`RouteConfig` and one in :func:`build_route`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, assert_never

import httpx
from pydantic import Field

from central.alerts.routes.base import Route, RouteError, RouteSettings, RouteWorker
from central.alerts.routes.dingtalk import DingTalkRoute, DingTalkRouteConfig
from central.alerts.routes.log import LogRoute, LogRouteConfig
from central.alerts.routes.webhook import WebhookRoute, WebhookRouteConfig
from central.alerts.routes.wecom import WeComRoute, WeComRouteConfig

__all__ = [
    "DingTalkRoute",
    "DingTalkRouteConfig",
    "LogRoute",
    "LogRouteConfig",
    "Route",
    "RouteConfig",
    "RouteError",
    "RouteSettings",
    "RouteWorker",
    "WeComRoute",
    "WeComRouteConfig",
    "WebhookRoute",
    "WebhookRouteConfig",
    "build_route",
    "build_worker",
    "check_unique_names",
]

RouteConfig = Annotated[
    LogRouteConfig | WebhookRouteConfig | WeComRouteConfig | DingTalkRouteConfig,
    Field(discriminator="type"),
]


def build_route(config: RouteConfig, *, client: httpx.AsyncClient | None = None) -> Route:
    """The route ``config`` describes; no I/O (HTTP clients are made on first send).

    ``client`` is shared by HTTP routes and then not closed by them (tests, or a process
    that pools connections); by default each HTTP route makes and closes its own.
    """
    if isinstance(config, LogRouteConfig):
        return LogRoute(config)
    if isinstance(config, WebhookRouteConfig):
        return WebhookRoute(config, client=client)
    if isinstance(config, WeComRouteConfig):
        return WeComRoute(config, client=client)
    if isinstance(config, DingTalkRouteConfig):
        return DingTalkRoute(config, client=client)
    assert_never(config)


def build_worker(config: RouteConfig, *, client: httpx.AsyncClient | None = None) -> RouteWorker:
    """The route and its worker (queue, rate limit, retries) as ``config`` says."""
    return RouteWorker(build_route(config, client=client), config)


def check_unique_names(configs: Sequence[RouteConfig]) -> Sequence[RouteConfig]:
    """For an ``AfterValidator`` on the list of routes: names key the logs and counters."""
    seen: set[str] = set()
    for config in configs:
        if config.name in seen:
            raise ValueError(f"two routes are named {config.name!r}; give each a unique name")
        seen.add(config.name)
    return configs
