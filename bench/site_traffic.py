"""The site of ``bench/site_load.py``: its boards, the crowd that plays on them, the back door.

120 seats on four boards of 30 (``board-a`` … ``board-d``, emulated on ptys).
``board-a`` also has the entrance's people counter and the main door contact; boards b–d
have seats only (their HELLO lists 30 seats, their heartbeats come alone). A back door is
on GPIO 17, as in ``config/gateway-taoyuan.yaml``; the gateway worker drives its pin.

One 120-seat :class:`BookHouseModel` plays the house (visitors through the entrance,
students taking and leaving seats) on scripted boards: its seat changes go to the board
holding the seat, its passages to ``board-a``'s counter (whose own door closer opens the
main door while people pass). Staff open the back door a few times an hour.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from firmware_bridge.emulator import (
    BookHouseEmulator,
    BookHouseModel,
    EmulatorConfig,
    OpeningHours,
)
from firmware_bridge.messages import People, Report, Seat

__all__ = [
    "BACK_DOOR",
    "BOARDS",
    "BOARD_SEATS",
    "ENTRANCE_BOARD",
    "SEATS",
    "TZ",
    "BackDoor",
    "Crowd",
    "Traffic",
    "board_state",
    "describe",
    "device",
    "house_at",
    "make_boards",
    "seat_sensor",
]

BOARDS = ("a", "b", "c", "d")
BOARD_SEATS = 30
SEATS = len(BOARDS) * BOARD_SEATS
#: The board with the entrance's people counter and the main door contact.
ENTRANCE_BOARD = 0
BACK_DOOR = "back-door"  # the sample config's GPIO door
TZ = ZoneInfo("Asia/Shanghai")


def device(board: int) -> str:
    return f"board-{BOARDS[board]}"


def seat_sensor(index: int) -> str:
    """The upstream sensor id of seat ``index`` (0-based over the whole house)."""
    board, n = divmod(index, BOARD_SEATS)
    return f"{device(board)}.{n + 1}"


def describe() -> str:
    """The site in one line, for the bench's notes."""
    others = ", ".join(device(b) for b in range(len(BOARDS)) if b != ENTRANCE_BOARD)
    return (
        f"{SEATS} seats on {len(BOARDS)} boards of {BOARD_SEATS}: {device(ENTRANCE_BOARD)} "
        f"also the entrance counter and the main door, {others} seats only; "
        f"a back door on GPIO"
    )


def house_at(start: datetime, seed: int) -> BookHouseModel:
    """The 120-seat house at ``start``, having lived its day from opening time."""
    hours = OpeningHours(tz=TZ)
    opening = datetime.combine(start.date(), hours.opens, TZ)
    house = BookHouseModel(seats=SEATS, start=opening, seed=seed, hours=hours)
    house.step(start)  # what the morning sent is not played
    return house


def make_boards(
    speed: float, start: datetime, seats: Sequence[bool], first_seq: Sequence[int]
) -> list[BookHouseEmulator]:
    """Four scripted boards with these seats taken, numbering on from ``first_seq``."""
    boards = []
    for b in range(len(BOARDS)):
        entrance = b == ENTRANCE_BOARD
        board = BookHouseEmulator(
            EmulatorConfig(
                device_id=device(b),
                seats=BOARD_SEATS,
                counter=entrance,
                door=entrance,
                simulate=False,  # the crowd below drives them
                speed=speed,
                start=start,
                report_interval_s=60,
                tick=timedelta(milliseconds=100),
                journal_limit=1000,
                initial_seq=first_seq[b],
            )
        )
        for n in range(BOARD_SEATS):
            if seats[b * BOARD_SEATS + n]:
                board.model.set_seat(n + 1, True)  # before power-up: in HELLO's snapshot
        boards.append(board)
    return boards


def board_state(boards: Sequence[BookHouseEmulator]) -> tuple[list[bool], list[int]]:
    """Every seat as the boards report it, and each board's next sequence number."""
    seats = [occupied for board in boards for occupied in board.state.house.seats]
    return seats, [board.state.next_seq for board in boards]


class BackDoor(Protocol):
    """Whoever holds the back door's pin (the gateway worker)."""

    async def door(self, is_open: bool) -> None: ...


@dataclass(slots=True)
class Traffic:
    """What the site did so far."""

    seat_changes: int = 0
    entered: int = 0
    left: int = 0
    back_door_openings: int = 0


class Crowd:
    """The 120-seat house model and the staff's back door, played on the boards."""

    def __init__(
        self,
        house: BookHouseModel,
        boards: Sequence[BookHouseEmulator],
        back_door: BackDoor,
        *,
        speed: float,
        back_door_per_hour: float,
        rng: random.Random,
    ) -> None:
        self.house = house
        self.boards = boards
        self.back_door = back_door
        self.speed = speed
        self.back_door_rate = back_door_per_hour / 3600
        self.rng = rng
        self.traffic = Traffic()
        state = house.state()
        self._totals = (state.in_total, state.out_total)

    def _play(self, reports: list[Report]) -> None:
        for report in reports:
            if isinstance(report, Seat):
                board, n = divmod(report.seat - 1, BOARD_SEATS)
                self.boards[board].set_seat(n + 1, report.occupied)
                self.traffic.seat_changes += 1
            elif isinstance(report, People):  # the main door follows from the passages
                entered = report.in_total - self._totals[0]
                left = report.out_total - self._totals[1]
                self._totals = (report.in_total, report.out_total)
                if entered or left:
                    self.boards[ENTRANCE_BOARD].count_people(entered=entered, left=left)
                    self.traffic.entered += entered
                    self.traffic.left += left

    async def run(self) -> None:
        """Play the house and the back door until cancelled."""
        loop = asyncio.get_running_loop()
        base, sim_base = loop.time(), self.house.now
        next_open = self._next_back_door(0.0, first=True)
        close_at: float | None = None
        while True:
            await asyncio.sleep(0.1)
            elapsed = (loop.time() - base) * self.speed  # simulated seconds
            self._play(self.house.step(sim_base + timedelta(seconds=elapsed)))
            if close_at is not None and elapsed >= close_at:
                close_at = None
                await self.back_door.door(False)
                next_open = self._next_back_door(elapsed)
            elif close_at is None and elapsed >= next_open:
                close_at = elapsed + self.rng.uniform(5.0, 30.0)
                self.traffic.back_door_openings += 1
                await self.back_door.door(True)

    def _next_back_door(self, after: float, *, first: bool = False) -> float:
        # Spaced about evenly (a Poisson draw may leave ten minutes without one).
        if self.back_door_rate <= 0:
            return math.inf
        spacing = self.rng.uniform(0.0, 1.0) if first else self.rng.uniform(0.5, 1.5)
        return after + spacing / self.back_door_rate
