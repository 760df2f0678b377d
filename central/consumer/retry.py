"""Capped exponential backoff with jitter, and a retry loop that logs without spamming."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from central.errors import CentralError
from qihe.backoff import Backoff

__all__ = ["GiveUpError", "Retrier", "TransientError"]

T = TypeVar("T")

#: While a failure lasts, repeat the WARNING at most this often (the rest go to DEBUG).
WARN_EVERY_S = 60.0


class TransientError(CentralError):
    """A failure worth another attempt; ``retry_after`` is a minimum delay, ``level`` the log level.

    ERROR is for failures that need a person (bad credentials, missing bucket):
    the data is held meanwhile, not dropped.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, level: int = logging.WARNING
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.level = level


class GiveUpError(CentralError):
    """The retry loop stopped because the consumer is shutting down and its grace ran out."""


class Retrier:
    """Runs an operation until it succeeds, sleeping with :class:`Backoff` between attempts.

    ``classify`` turns an exception into a :class:`TransientError` (retry) or
    returns ``None`` (re-raise it). ``give_up_at`` returns the monotonic deadline
    after which waiting is pointless (shutdown), or ``None`` while running;
    ``wake`` is set on shutdown so a long sleep ends early.
    """

    def __init__(
        self,
        backoff: Backoff,
        *,
        classify: Callable[[Exception], TransientError | None],
        give_up_at: Callable[[], float | None],
        wake: threading.Event,
        on_retry: Callable[[], None],
        logger: logging.Logger,
    ) -> None:
        self._backoff = backoff
        self._classify = classify
        self._give_up_at = give_up_at
        self._wake = wake
        self._on_retry = on_retry
        self._log = logger
        self._failing_since: float | None = None
        self._last_warning = 0.0
        self._last_reason = ""

    def run(self, operation: Callable[[], T], what: str) -> T:
        while True:
            try:
                result = operation()
            except Exception as exc:
                transient = self._classify(exc)
                if transient is None:
                    raise
                self._wait_after(transient, what)
            else:
                self._recovered(what)
                return result

    def _wait_after(self, failure: TransientError, what: str) -> None:
        now = time.monotonic()
        reason = str(failure)
        if self._failing_since is None:
            self._failing_since = now
        if reason != self._last_reason or now - self._last_warning >= WARN_EVERY_S:
            self._log.log(
                failure.level,
                "%s failed, will retry (backing off up to %.0f s): %s",
                what,
                self._backoff.maximum,
                reason,
            )
            self._last_warning, self._last_reason = now, reason
        else:
            self._log.debug("%s failed again: %s", what, reason)
        end = now + max(self._backoff.next_delay(), failure.retry_after or 0.0)
        deadline = self._give_up_at()
        if deadline is not None:
            if now >= deadline:
                raise GiveUpError(f"{what} still failing at shutdown: {reason}")
            end = min(end, deadline)
        self._on_retry()
        if not self._wake.wait(end - now):
            return
        # Woken by shutdown: one more attempt within the grace, not a busy loop.
        deadline = self._give_up_at()
        if deadline is not None:
            end = min(end, deadline)
        remaining = end - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def _recovered(self, what: str) -> None:
        if self._failing_since is not None:
            self._log.info(
                "%s succeeded again after %.1f s of failures",
                what,
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
            self._last_reason = ""
            self._backoff.reset()
