"""Errors of the central consumer: one base, leaves that also inherit the matching builtin."""

from __future__ import annotations

__all__ = [
    "CentralError",
    "ConsumerStartError",
    "InfluxWriteError",
    "InvalidMessageError",
    "LineProtocolError",
    "is_retryable_status",
]

#: HTTP answers meaning "some point in this batch is refused": splitting the batch finds it.
#: 400 malformed line or (1.x, 3.x) partial write / field type conflict, 413 body too
#: large, 422 (2.x) field type conflict or point outside the retention period.
POINT_REJECTING_STATUSES = frozenset({400, 413, 422})


def is_retryable_status(status: int) -> bool:
    """5xx, 429 (too many requests) and 408 (request timeout) may succeed later; the rest not."""
    return status >= 500 or status in (408, 429)


class CentralError(Exception):
    """Base of the central consumer's errors."""


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


class InfluxWriteError(CentralError, OSError):
    """InfluxDB did not accept a write.

    ``retryable`` says whether the same request may succeed later (connection
    errors, 5xx, 429); ``status`` is the HTTP status or ``None`` when no answer
    came; ``detail`` is InfluxDB's own message; ``retry_after`` is the delay in
    seconds the server asked for, if any.
    """

    def __init__(
        self,
        detail: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"InfluxDB write failed ({where}): {detail}")
        self.detail = detail
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after

    @property
    def rejects_points(self) -> bool:
        """True when InfluxDB refused (some of) the points themselves, not the request."""
        return self.status in POINT_REJECTING_STATUSES


class ConsumerStartError(CentralError, ConnectionError):
    """The consumer could not connect and subscribe at start (broker down, refused, timeout)."""
