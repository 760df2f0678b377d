"""The log route: one line per alert, WARNING while firing, INFO once resolved.

It is the route that always works, so an operator reading the service's log (journald)
sees every notification even when the robots are down. Lines are plain text, Chinese
first then English, e.g.::

    告警 严重 淇河书屋·馨苑二区站 | 🔴 网关离线 / Gateway offline · 起于 / since 11-28 19:40
    [gateway-offline-3f2a9c1b7d40]

(one line in the log; cut here to fit).

Each record also carries ``alert_id``, ``site``, ``rule``, ``severity`` and ``state`` as
attributes, for a structured log handler.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import StringConstraints

from central.alerts import render
from central.alerts.model import Notification
from central.alerts.routes.base import RouteName, RouteSettings

__all__ = ["LogRoute", "LogRouteConfig"]

_SEVERITY_ZH = {"critical": "严重", "warning": "警告", "info": "提示"}


class LogRouteConfig(RouteSettings):
    """Writes notifications to the service's log."""

    type: Literal["log"]
    name: RouteName = "log"
    #: The logger written to, so a handler can send alert lines elsewhere.
    logger: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.]{1,128}$")] = "central.alerts"


class LogRoute:
    """Logs each alert of each notification; never fails."""

    def __init__(self, config: LogRouteConfig) -> None:
        self.name = config.name
        self._log = logging.getLogger(config.logger)

    async def send(self, notifications: Sequence[Notification]) -> None:
        for notification in notifications:
            site = render.one_line(notification.site_name)
            for alert in notification.alerts:
                firing = alert.state == "firing"
                severity = _SEVERITY_ZH.get(alert.severity, alert.severity)
                word = f"告警 {severity}" if firing else "恢复"
                self._log.log(
                    logging.WARNING if firing else logging.INFO,
                    "%s %s | %s [%s]",
                    word,
                    site,
                    render.alert_text(alert),
                    render.one_line(alert.id),
                    extra={
                        "alert_id": alert.id,
                        "site": alert.site,
                        "rule": alert.rule,
                        "severity": alert.severity,
                        "state": alert.state,
                    },
                )

    async def aclose(self) -> None:
        """Nothing to release."""
