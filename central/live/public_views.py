"""What the public page and the public API (open data) show: counts, never a person.

A house is the public summary of a site (:class:`~central.live.views.PublicSite`: names,
opening, free seats) with how busy it is now against its usual level at this hour; a seat map
is each seat's label, place and whether it is free — no seat's times, no sensor, no board.
The documents are described for people in ``docs/public-api.md``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from central.live.typical import Trend
from central.live.views import Layout, PublicSite

__all__ = ["PublicHouse", "PublicHouses", "PublicSeat", "PublicSeatState", "PublicSiteDetail"]

#: ``likely_free``: things on the seat, nobody there for longer than the site's grace (占座).
PublicSeatState = Literal["free", "occupied", "likely_free", "unknown"]


class PublicHouse(PublicSite):
    """One site on the public page."""

    #: Seats in use now, percent of the seats whose state is known; None when none is.
    busy_pct: float | None = None
    #: The usual level at this weekday and hour (the P50 of ``qihe stats typical``), percent.
    usual_pct: float | None = None
    #: ``busier`` / ``usual`` / ``quieter`` than usual at this hour; None without a profile.
    trend: Trend | None = None
    #: The site asks for the large-text mode by default (day-care centres: 适老化).
    large_text: bool = False


class PublicSeat(BaseModel):
    model_config = ConfigDict(frozen=True)

    #: The seat's number on the site's map (1, 2, ... in the directory's order).
    n: int
    label: str
    row: int | None
    col: int | None
    x: float | None
    y: float | None
    state: PublicSeatState


class PublicHouses(BaseModel):
    model_config = ConfigDict(frozen=True)

    generated_at: datetime
    #: Data older than this (``updated_at``) is shown as stale.
    stale_after_s: int
    sites: tuple[PublicHouse, ...]


class PublicSiteDetail(BaseModel):
    model_config = ConfigDict(frozen=True)

    generated_at: datetime
    stale_after_s: int
    site: PublicHouse
    layout: Layout
    seats: tuple[PublicSeat, ...]
