"""Rate limits of the public API: a token bucket per client address, and open streams per client.

The public summary is open data behind a public proxy: anyone may read it, nobody may flood it.
Each client address has a bucket of ``burst`` tokens that refills at ``rate`` tokens a second;
a request takes one, and a request finding the bucket empty is answered ``429 Too Many
Requests`` with ``Retry-After`` (whole seconds until a token is back). A live stream costs one
request to open and holds one of the client's ``streams_per_client`` places while it is open.

Behind a reverse proxy every request comes from the proxy: the client's address is then read
from ``X-Forwarded-For``, but only when the request comes from one of ``trusted_proxies`` (a
header from anyone else is a client's own claim). The address taken is the right-most one in
the header that is not itself a trusted proxy — what the first proxy of ours saw.

Memory is bounded: at most ``max_clients`` buckets are kept; when a new client comes and the
table is full, the least recently seen client is forgotten (it starts again with a full bucket,
which only ever lets more through).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from qihe.configtypes import StrictModel

__all__ = ["RateLimitConfig", "RateLimitedError", "RateLimiter"]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RateLimitConfig(StrictModel):
    #: Requests a second one client address may make on average (the bucket's refill).
    #: Generous by default: behind a mobile carrier's NAT, or a school's, one address is many
    #: residents; the limit is there to stop a script, not a crowd.
    rate: Annotated[float, Field(gt=0, le=10_000)] = 10.0
    #: Requests one client may make at once (the bucket's size).
    burst: Annotated[int, Field(ge=1, le=100_000)] = 200
    #: Live streams one client address may hold open at once.
    streams_per_client: Annotated[int, Field(ge=1, le=10_000)] = 20
    #: Addresses (or networks, ``10.0.0.0/8``) of the reverse proxies whose
    #: ``X-Forwarded-For`` is believed. Empty: the header is ignored.
    trusted_proxies: tuple[IpNetwork, ...] = ()
    #: Client addresses remembered at most (the least recently seen is forgotten first).
    max_clients: Annotated[int, Field(ge=100, le=10_000_000)] = 100_000


class RateLimitedError(Exception):
    """A client is over its limit; ``retry_after`` is in whole seconds (at least 1)."""

    def __init__(self, client: str, retry_after: int, what: str) -> None:
        super().__init__(f"{client}: {what}")
        self.client = client
        self.retry_after = retry_after


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    streams: int = 0


class RateLimiter:
    """Token buckets by client address. Not thread-safe: used on the event loop only."""

    def __init__(
        self, config: RateLimitConfig, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self._now = monotonic
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        #: Requests refused since start (``/healthz`` may show it).
        self.refused = 0

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        """The address the limit applies to: the peer's, or the one a trusted proxy forwarded."""
        peer = peer or "unknown"
        if not forwarded_for or not self._trusted(peer):
            return peer
        for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
            if not hop:
                continue
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return peer  # a mangled header: the proxy itself is the client we know
            if not self._trusted(hop):
                return hop
        return peer

    def take(self, client: str) -> None:
        """One request of ``client``; raise :class:`RateLimitedError` when its bucket is empty."""
        bucket = self._bucket(client)
        if bucket.tokens < 1:
            self.refused += 1
            wait = math.ceil((1 - bucket.tokens) / self.config.rate)
            raise RateLimitedError(client, max(1, wait), "too many requests")
        bucket.tokens -= 1

    def open_stream(self, client: str) -> None:
        """Take one of ``client``'s stream places (its request already took a token); raise
        :class:`RateLimitedError` when they are all taken. Give it back with
        :meth:`close_stream`."""
        bucket = self._bucket(client)
        if bucket.streams >= self.config.streams_per_client:
            self.refused += 1
            raise RateLimitedError(client, 30, "too many live streams open")
        bucket.streams += 1

    def close_stream(self, client: str) -> None:
        bucket = self._buckets.get(client)  # kept while it has a stream open
        if bucket is not None and bucket.streams > 0:
            bucket.streams -= 1

    def streams_of(self, client: str) -> int:
        """Streams ``client`` holds open now."""
        bucket = self._buckets.get(client)
        return 0 if bucket is None else bucket.streams

    @property
    def clients(self) -> int:
        return len(self._buckets)

    def _bucket(self, client: str) -> _Bucket:
        now = self._now()
        bucket = self._buckets.get(client)
        if bucket is None:
            self._forget_one_if_full()
            bucket = self._buckets[client] = _Bucket(float(self.config.burst), now)
        else:
            self._buckets.move_to_end(client)
            elapsed = max(0.0, now - bucket.at)  # a monotonic clock, but never refill backwards
            bucket.tokens = min(
                float(self.config.burst), bucket.tokens + elapsed * self.config.rate
            )
            bucket.at = now
        return bucket

    def _forget_one_if_full(self) -> None:
        if len(self._buckets) < self.config.max_clients:
            return
        # The least recently seen client without an open stream (whose place must be kept).
        for client, bucket in self._buckets.items():
            if bucket.streams == 0:
                del self._buckets[client]
                return

    def _trusted(self, address: str) -> bool:
        if not self.config.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.config.trusted_proxies)
