"""The emulated city: its sites, one gateway each, and the boards that carry the seats."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "BOARD_MAX_SEATS",
    "GATEWAY",
    "PREFIX",
    "SiteLayout",
    "layout",
    "periodic_per_gateway",
]

#: The topic prefix of this benchmark's broker.
PREFIX = "city"
#: Every site's one gateway.
GATEWAY = "gw1"
#: A board's HELLO lists every sensor in one frame, which caps a board at 64 seats
#: (firmware_bridge.emulator.MAX_SEATS): 80 seats are two boards of 40.
BOARD_MAX_SEATS = 64


@dataclass(frozen=True, slots=True)
class SiteLayout:
    id: str
    devices: tuple[tuple[str, int], ...]  # (board id, seats on it)


def layout(gateways: int, seats: int) -> list[SiteLayout]:
    """``gateways`` sites of ``seats`` seats each, on as few boards as hold them, evenly."""
    boards = math.ceil(seats / BOARD_MAX_SEATS)
    width = len(str(gateways))
    sites = []
    for n in range(1, gateways + 1):
        shares = [seats // boards + (1 if b < seats % boards else 0) for b in range(boards)]
        devices = tuple((f"s{n:0{width}d}-{chr(ord('a') + b)}", s) for b, s in enumerate(shares))
        sites.append(SiteLayout(f"site-{n:0{width}d}", devices))
    return sites


def periodic_per_gateway(site: SiteLayout) -> int:
    """Messages per report interval: a heartbeat and a link report per board, outbox, system."""
    return 2 * len(site.devices) + 2
