"""The public API's rate limits: token buckets per client address, streams per client, and
``X-Forwarded-For`` believed only from the configured proxies (a fake monotonic clock)."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from central.live.ratelimit import RateLimitConfig, RateLimitedError, RateLimiter


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(ticks: Ticks, **config: object) -> RateLimiter:
    return RateLimiter(RateLimitConfig.model_validate(config), monotonic=ticks)


def test_a_client_may_use_its_burst_then_waits_for_the_refill() -> None:
    ticks = Ticks()
    limits = limiter(ticks, rate=2, burst=3)
    for _ in range(3):
        limits.take("203.0.113.7")

    with pytest.raises(RateLimitedError) as info:
        limits.take("203.0.113.7")
    assert info.value.retry_after == 1  # half a second to a token, said as whole seconds
    ticks.now += 0.5
    limits.take("203.0.113.7")
    assert limits.refused == 1


def test_retry_after_counts_the_seconds_until_a_token_is_back() -> None:
    ticks = Ticks()
    limits = limiter(ticks, rate=0.1, burst=1)
    limits.take("a")
    with pytest.raises(RateLimitedError) as info:
        limits.take("a")
    assert info.value.retry_after == 10


def test_each_client_address_has_its_own_bucket() -> None:
    limits = limiter(Ticks(), rate=1, burst=1)
    limits.take("203.0.113.7")
    limits.take("203.0.113.8")
    with pytest.raises(RateLimitedError):
        limits.take("203.0.113.7")


def test_a_bucket_never_holds_more_than_its_burst_and_a_clock_going_back_adds_nothing() -> None:
    ticks = Ticks()
    limits = limiter(ticks, rate=1, burst=2)
    limits.take("a")
    ticks.now += 3600
    limits.take("a")
    limits.take("a")
    with pytest.raises(RateLimitedError):
        limits.take("a")
    ticks.now -= 100
    with pytest.raises(RateLimitedError):
        limits.take("a")


def test_the_header_is_ignored_unless_the_request_comes_from_a_trusted_proxy() -> None:
    limits = limiter(Ticks(), trusted_proxies=["10.0.0.0/8", "127.0.0.1"])
    # Straight from the internet: the peer is the client, whatever it claims.
    assert limits.client_address("198.51.100.4", "203.0.113.7") == "198.51.100.4"
    # Through our proxy: the right-most address that is not one of ours.
    assert limits.client_address("127.0.0.1", "203.0.113.7") == "203.0.113.7"
    assert limits.client_address("10.1.2.3", "1.2.3.4, 203.0.113.7, 10.9.9.9") == "203.0.113.7"
    # Only proxies in the chain, a mangled header, no header: the proxy is all we know.
    assert limits.client_address("10.1.2.3", "10.0.0.5") == "10.1.2.3"
    assert limits.client_address("10.1.2.3", "203.0.113.7, not-an-ip") == "10.1.2.3"
    assert limits.client_address("10.1.2.3", None) == "10.1.2.3"
    assert limits.client_address(None, None) == "unknown"


def test_without_trusted_proxies_the_header_is_never_believed() -> None:
    assert limiter(Ticks()).client_address("127.0.0.1", "203.0.113.7") == "127.0.0.1"


def test_streams_per_client_are_held_while_open_and_given_back() -> None:
    limits = limiter(Ticks(), streams_per_client=2)
    limits.open_stream("a")
    limits.open_stream("a")
    with pytest.raises(RateLimitedError, match="too many live streams"):
        limits.open_stream("a")
    limits.open_stream("b")
    limits.close_stream("a")
    limits.open_stream("a")
    assert limits.streams_of("a") == 2
    assert limits.streams_of("nobody") == 0


def test_the_table_of_clients_is_bounded_and_forgets_the_least_recently_seen() -> None:
    limits = limiter(Ticks(), rate=1, burst=1, max_clients=100)
    limits.open_stream("client-0")  # holds a stream: kept, whatever its age
    for n in range(1, 150):
        limits.take(f"client-{n}")
    assert limits.clients == 100
    assert limits.streams_of("client-0") == 1
    limits.take("client-1")  # forgotten long ago: a full bucket again


def test_a_bad_config_is_refused() -> None:
    for bad in ({"rate": 0}, {"burst": 0}, {"trusted_proxies": ["proxy.example"]}, {"x": 1}):
        with pytest.raises(ValidationError):
            RateLimitConfig.model_validate(bad)
    config = RateLimitConfig.model_validate({"trusted_proxies": ["10.0.0.0/8", "::1"]})
    assert config.trusted_proxies[1] == ipaddress.ip_network("::1")
