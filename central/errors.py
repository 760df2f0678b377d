"""Errors of the central services: one base, leaves that also inherit the matching builtin."""

from __future__ import annotations

__all__ = [
    "CentralError",
    "ConsumerStartError",
    "InfluxError",
    "InfluxWriteError",
    "InvalidMessageError",
    "LineProtocolError",
    "is_retryable_status",
]

#: HTTP answers meaning "some point in this batch is refused": splitting the batch finds it.
#: 400 malformed line or (1.x, 3.x) partial write / field type conflict, 413 body too
#: large, 422 (2.x) field type conflict or point outside the retention period.
_POINT_REJECTING_STATUSES = frozenset({400, 413, 422})


def is_retryable_status(status: int) -> bool:
    """5xx, 429 (too many requests) and 408 (request timeout) may succeed later; the rest not."""
    return status >= 500 or status in (408, 429)


class CentralError(Exception):
    """Base of the central services' errors."""


class LineProtocolError(CentralError, ValueError):
    """A point cannot be written as InfluxDB line protocol (empty name, newline in a tag...)."""


class InvalidMessageError(CentralError, ValueError):
    """An MQTT message is not a valid reading or status for its topic; ``reason`` says why.

    ``key`` is the kind of problem without the message's values (``seat.occupied: bool_type``,
    ``topic``), for counting refusals (:class:`central.refusal_log.RefusalLog`); give one
    whenever the reason quotes the message, or every distinct value counts as a problem.
    """

    def __init__(self, reason: str, key: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.key = reason if key is None else key


class InfluxError(CentralError, OSError):
    """InfluxDB did not do what was asked: no answer, an HTTP error, or an error in its answer.

    Made in one place, where every answer is read (:mod:`central.influx.session`). ``url`` is
    the server, without credentials; ``status`` the HTTP status, ``None`` when no answer came;
    ``detail`` InfluxDB's own message (or what became of the connection); ``retry_after`` the
    delay in seconds the server asked for, if any; ``statement`` the InfluxQL statement, if one
    was sent.
    """

    def __init__(
        self,
        detail: str,
        *,
        url: str,
        status: int | None = None,
        retry_after: float | None = None,
        statement: str | None = None,
    ) -> None:
        self.detail = detail
        self.url = url
        self.status = status
        self.retry_after = retry_after
        self.statement = statement
        super().__init__(self._describe())

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later: no answer came, or a 5xx, 429 or 408."""
        return self.status is None or is_retryable_status(self.status)

    def _describe(self) -> str:
        status, reason = self.status, self.detail
        if status in (401, 403):
            reason = f"HTTP {status}: not authorised ({reason}); check username/password or token"
        elif status is not None and not 200 <= status < 300:
            reason = f"HTTP {status}: {reason}"
        query = f" (query: {self.statement})" if self.statement is not None else ""
        return f"InfluxDB at {self.url}: {reason}{query}"


class InfluxWriteError(InfluxError):
    """InfluxDB did not accept a write (or the preparation of the first one)."""

    def _describe(self) -> str:
        if self.status is None:
            return f"InfluxDB write failed (no answer): {self.url}: {self.detail}"
        return f"InfluxDB write failed (HTTP {self.status}): {self.detail}"

    @property
    def rejects_points(self) -> bool:
        """True when InfluxDB refused (some of) the points themselves, not the request."""
        return self.status in _POINT_REJECTING_STATUSES


class ConsumerStartError(CentralError, ConnectionError):
    """The consumer could not connect and subscribe at start (broker down, refused, timeout)."""
