"""Seat payloads formatted directly: the generator's hot path, checked against the contract."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bench.city.sites import GATEWAY
from qihe.contract import SeatReading, encode_payload

__all__ = ["check_seat_payload", "now_us", "seat_payload", "ts_text", "utc"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ts_text(us: int) -> str:
    """A UTC time in microseconds as the contract writes it (pydantic's RFC 3339 form)."""
    seconds, micros = divmod(us, 1_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{base}.{micros:06d}Z" if micros else f"{base}Z"


def seat_payload(site: str, device: str, sensor: str, us: int, seq: int, occupied: bool) -> bytes:
    """``encode_payload(SeatReading(...))`` without building the model (a fifth of the cost)."""
    return (
        f'{{"schema":1,"site":"{site}","gateway":"{GATEWAY}","device":"{device}",'
        f'"sensor":"{sensor}","ts":"{ts_text(us)}","seq":{seq},"kind":"seat",'
        f'"occupied":{"true" if occupied else "false"}}}'
    ).encode()


def check_seat_payload() -> None:
    """The formatted seat payload is byte for byte the contract's; raise otherwise."""
    for us in (1_795_000_000_123_456, 1_795_000_000_000_000, 1_795_000_000_120_000):
        for occupied in (True, False):
            fast = seat_payload("site-001", "s001-a", "s001-a.7", us, 812, occupied)
            model = SeatReading(
                site="site-001",
                gateway=GATEWAY,
                device="s001-a",
                sensor="s001-a.7",
                ts=utc(us),
                seq=812,
                occupied=occupied,
            )
            if fast != encode_payload(model):
                raise RuntimeError(f"seat payload differs from the contract's:\n{fast!r}")


def utc(us: int) -> datetime:
    """A UTC time in microseconds since the epoch as a datetime."""
    return _EPOCH + timedelta(microseconds=us)


def now_us() -> int:
    """Now, in microseconds since the epoch."""
    return time.time_ns() // 1000
