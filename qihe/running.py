"""Running a service in the foreground until SIGINT or SIGTERM (systemd's stop, Ctrl-C)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Coroutine
from typing import Any

__all__ = ["cancel_on_signals", "run_until_signalled"]


def cancel_on_signals(task: asyncio.Task[Any]) -> None:
    """SIGINT and SIGTERM cancel ``task``: it stops cleanly, flushing what it holds."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)


async def run_until_signalled(
    service: Coroutine[Any, Any, None], *, name: str, stopped: str
) -> int:
    """Run ``service`` until a signal stops it; then say ``stopped`` on stderr. Exit code 0."""
    task = asyncio.create_task(service, name=name)
    cancel_on_signals(task)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    print(stopped, file=sys.stderr)
    return 0
