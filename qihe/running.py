"""Running a service in the foreground until SIGINT or SIGTERM (systemd's stop, Ctrl-C), and
reloading its config on SIGHUP (systemd's reload; ``central/reload.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["cancel_on_signals", "reload_on_sighup", "run_until_signalled"]


def cancel_on_signals(task: asyncio.Task[Any]) -> None:
    """SIGINT and SIGTERM cancel ``task``: it stops cleanly, flushing what it holds."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)


def reload_on_sighup(reload: Callable[[], None]) -> None:
    """SIGHUP calls ``reload`` on the event loop (it must not block: schedule the work)."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


async def run_until_signalled(
    service: Coroutine[Any, Any, None],
    *,
    name: str,
    stopped: str,
    reload: Callable[[], None] | None = None,
) -> int:
    """Run ``service`` until a signal stops it; then say ``stopped`` on stderr. Exit code 0.
    With ``reload``, SIGHUP calls it."""
    task = asyncio.create_task(service, name=name)
    cancel_on_signals(task)
    if reload is not None:
        reload_on_sighup(reload)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    print(stopped, file=sys.stderr)
    return 0
