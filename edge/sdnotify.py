"""Tell systemd how the gateway is doing: ``READY``, ``STATUS``, ``WATCHDOG`` and ``STOPPING``.

The protocol is one datagram to the AF_UNIX socket named by ``$NOTIFY_SOCKET``
(a leading ``@`` names the abstract namespace, written ``\\0`` on the wire),
``KEY=value`` lines. Outside systemd the variable is unset and every call is a
no-op, so the gateway runs the same under ``qihe gateway run`` in a terminal.

The watchdog (``WatchdogSec=`` in the unit, ``$WATCHDOG_USEC`` here) restarts a
gateway that stops pinging. :class:`Watchdog` pings only while the gateway is
really working:

- the ping runs on the event loop, so a blocked loop sends none; after the loop
  comes back, the first tick sees how late it ran (the loop lag) and skips its
  ping, so one lucky tick between two long stalls does not hide them;
- every *required* component (the outbox's commit loop) must have said
  :meth:`Watchdog.alive` within ``stale_after`` seconds. A task that hangs on
  an await (a store that cannot commit) leaves the loop healthy but the
  gateway useless; that stops the pings too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping

from qihe.once import Once

__all__ = ["Notifier", "Watchdog"]

log = logging.getLogger(__name__)


class Notifier:
    """A client of systemd's notify socket; every method is a no-op without ``NOTIFY_SOCKET``."""

    def __init__(self, socket_path: str | None, *, watchdog_usec: int | None = None) -> None:
        self._address: str | bytes | None = None
        if socket_path:
            self._address = (
                b"\0" + socket_path[1:].encode() if socket_path.startswith("@") else socket_path
            )
        #: Seconds between watchdog pings systemd expects at most (None: no watchdog).
        self.watchdog_timeout = watchdog_usec / 1_000_000 if watchdog_usec else None
        self._socket: socket.socket | None = None
        self._failure_said = Once()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` as sd_notify(3) does."""
        env = os.environ if environ is None else environ
        usec: int | None = None
        try:
            usec = int(env.get("WATCHDOG_USEC", "")) or None
        except ValueError:
            usec = None
        pid = env.get("WATCHDOG_PID")
        if pid and pid != str(os.getpid()):
            usec = None  # the watchdog is meant for another process (a wrapper's child)
        return cls(env.get("NOTIFY_SOCKET"), watchdog_usec=usec)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *states: str) -> bool:
        """Send ``states`` as one datagram; False if not under systemd or it failed."""
        if self._address is None:
            return False
        try:
            if self._socket is None:
                kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                self._socket = socket.socket(socket.AF_UNIX, kind)
                self._socket.setblocking(False)
            self._socket.sendto("\n".join(states).encode(), self._address)
        except OSError as exc:
            # Never fatal: systemd's side restarts us if it really misses the pings.
            if self._failure_said.first():
                log.warning("cannot notify systemd at %r: %s", self._address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class Watchdog:
    """Pings systemd's watchdog at half its timeout, only while the loop and components are well.

    ``required`` names components that must call :meth:`alive` at least every
    ``stale_after`` seconds (never less than two ping intervals). ``status`` is asked for a
    one-line status at every ping and sent when it changed (``systemctl status``).
    """

    def __init__(
        self,
        notifier: Notifier,
        *,
        required: Iterable[str] = (),
        stale_after: float | None = None,
        status: Callable[[], str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._notifier = notifier
        timeout = notifier.watchdog_timeout
        #: Seconds between pings (half the timeout, as sd_watchdog_enabled(3) advises).
        self.interval = timeout / 2 if timeout else None
        self._tick = min(self.interval / 4, 1.0) if self.interval else 1.0
        # A tick this late means the loop was stalled: longer than half a ping interval.
        self._max_lag = self.interval / 2 if self.interval else 0.0
        # At least two ping intervals: a component is given time to report before it counts.
        self._stale_after = max(stale_after or 0.0, 2 * self.interval if self.interval else 0.0)
        self._monotonic = monotonic
        self._seen = {name: monotonic() for name in required}
        self._status = status
        self._last_status: str | None = None
        self._withholding: str | None = None
        self.pings = 0

    def alive(self, component: str) -> None:
        """``component`` did its work just now (cheap: called on the event loop, often)."""
        if component in self._seen:
            self._seen[component] = self._monotonic()

    def problem(self, lag: float = 0.0) -> str | None:
        """Why no ping should be sent now, or None if all is well."""
        if lag > self._max_lag:
            return f"事件循环阻塞 event loop stalled {lag:.1f}s"
        now = self._monotonic()
        stale = sorted(n for n, t in self._seen.items() if now - t > self._stale_after)
        if stale:
            return f"组件无响应 not reporting: {', '.join(stale)}"
        return None

    async def run(self) -> None:
        """Until cancelled; returns at once when systemd set no watchdog."""
        if self.interval is None:
            return
        loop = asyncio.get_running_loop()
        for name in self._seen:  # the grace period starts with the watching
            self._seen[name] = self._monotonic()
        last_ping = float("-inf")
        while True:
            started = loop.time()
            await asyncio.sleep(self._tick)
            lag = loop.time() - started - self._tick
            problem = self.problem(lag)
            if problem is not None:
                if problem != self._withholding:
                    log.warning("watchdog: not pinging systemd: %s", problem)
                    self._notifier.status(f"异常 unhealthy: {problem}")
                self._withholding = problem
                continue
            if self._withholding is not None:
                log.info("watchdog: healthy again; pinging systemd")
                self._withholding = None
                self._last_status = None
            if loop.time() - last_ping < self.interval:
                continue
            last_ping = loop.time()
            states = ["WATCHDOG=1"]
            if self._status is not None and (text := self._status()) != self._last_status:
                self._last_status = text
                states.append(f"STATUS={text}")
            if self._notifier.notify(*states):
                self.pings += 1
