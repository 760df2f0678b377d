"""Reloading a central service's config file on SIGHUP, keeping everything it holds.

``qihe live`` and ``qihe alerts`` read their config again when they get SIGHUP (``systemctl
reload``): the file is loaded off the event loop and validated exactly as at start; then the
service takes what may change while it runs. A file that does not load, or that changes what
only a restart can change (the broker connection, the listening socket, the state folder),
is refused with one ERROR line naming why, and the service carries on with the config it
had. Nothing it holds is lost either way: live state, open streams, alerts, acknowledgements,
silences. ::

    reloader = ConfigReloader("alerts", path, load=lambda: load(path), apply=engine.reload)
    reload_on_sighup(reloader.trigger)     # qihe.running
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from qihe.configfile import ConfigError

__all__ = ["ConfigReloader", "ReloadRefusedError"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class ReloadRefusedError(ValueError):
    """A valid config that cannot be taken while the service runs (it needs a restart)."""


class ConfigReloader(Generic[T]):
    """``trigger()`` (a signal handler) schedules one reload; signals that come while one
    runs are folded into one more. ``reloaded`` and ``refused`` count the outcomes."""

    def __init__(
        self, name: str, path: Path, *, load: Callable[[], T], apply: Callable[[T], None]
    ) -> None:
        self.name = name
        self.path = path
        self.reloaded = 0
        self.refused = 0
        self._load = load
        self._apply = apply
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def trigger(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.name}-reload")

    async def _run(self) -> None:
        while True:
            self._again = False
            await self.reload()
            if not self._again:
                return

    async def reload(self) -> bool:
        """Load and apply the file once; True when the new config was taken."""
        log.info("%s: 收到 SIGHUP，重新读取配置 reloading %s", self.name, self.path)
        try:
            config = await asyncio.to_thread(self._load)
            self._apply(config)
        except (ConfigError, ReloadRefusedError, OSError) as exc:
            self.refused += 1
            log.error(
                "%s: 新配置被拒绝，继续使用原配置 new config refused, keeping the old one: %s",
                self.name,
                exc,
            )
            return False
        self.reloaded += 1
        log.info("%s: 配置已重新加载 config reloaded from %s", self.name, self.path)
        return True

    async def aclose(self) -> None:
        """Cancel a reload in progress (the service is stopping)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
