"""The C firmware's seats with a presence channel (``--presence-seats``), alone on its pty:
SEAT_PRESENCE at boot and on a change of either channel, just before the SEAT, debounced like
every input, and frame for frame what the Python emulator sends for the same events."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from firmware_bridge.emulator import BookHouseModel
from firmware_bridge.messages import Seat, SeatPresence
from tests.firmware_host import HostBoard, wait_for
from tests.test_firmware_board import PtyPeer, alone, boards, peers

__all__ = ["boards", "peers"]  # fixtures, imported to be used here


def seat_frames(frames: list[object]) -> list[object]:
    return [m for m in frames if isinstance(m, Seat | SeatPresence)]


def test_a_seat_with_a_presence_channel_sends_seat_presence_before_its_seat(
    tmp_path: Path, boards: list[HostBoard], peers: list[PtyPeer]
) -> None:
    board, peer = alone(tmp_path, boards, peers, seats=3, extra=("--presence-seats", "2"))
    boot = peer.wait(lambda fs: len(seat_frames([f.message for f in fs])) >= 5, "the seats")
    board.drive(
        *("presence 1 1", "wait 10", "presence 1 0", "wait 100"),  # a blip: nothing
        *("presence 1 1", "wait 100", "seat 1 1", "wait 100"),  # sits down
        *("presence 1 0", "wait 100"),  # off to lunch, the books stay
        *("presence 1 1", "wait 100"),  # back
        *("seat 1 0", "presence 1 0", "wait 100"),  # packs up and leaves: one change
        *("seat 3 1", "wait 100", "presence 3 1", "wait 100"),  # no presence channel
        *("presence 2 1", "seat 2 1"),  # someone sits down: both at once
    )
    frames = peer.wait(lambda fs: Seat(2, True) in [f.message for f in fs], "seat 2 taken")

    c_seats = seat_frames([f.message for f in frames])
    model = BookHouseModel(
        seats=3, start=datetime(2026, 11, 30, 3, tzinfo=UTC), simulate=False, presence_seats=2
    )
    python_seats = seat_frames(model.snapshot())
    python_seats += model.set_presence(1, True)
    python_seats += model.set_seat(1, True)
    python_seats += model.set_presence(1, False)
    python_seats += model.set_presence(1, True)
    model.set_presence(1, False)  # with the seat, in one debounce: a single change
    python_seats += model.set_seat(1, False)
    python_seats += model.set_seat(3, True)
    python_seats += model.set_seat(2, True)

    assert c_seats[:5] == [
        SeatPresence(1, False, False), Seat(1, False),
        SeatPresence(2, False, False), Seat(2, False),
        Seat(3, False),
    ]  # fmt: skip
    assert c_seats[5:] == [
        SeatPresence(1, False, True),
        SeatPresence(1, True, True), Seat(1, True),
        SeatPresence(1, True, False),
        SeatPresence(1, True, True),
        SeatPresence(1, False, False), Seat(1, False),
        Seat(3, True),
        SeatPresence(2, True, True), Seat(2, True),
    ]  # fmt: skip
    assert c_seats == [m for m in python_seats if isinstance(m, Seat | SeatPresence)]
    assert "bad input line" not in board.log()
    assert boot  # the boot reports came first


def test_a_presence_line_for_a_seat_the_board_has_not_is_refused(
    tmp_path: Path, boards: list[HostBoard], peers: list[PtyPeer]
) -> None:
    board, _peer = alone(tmp_path, boards, peers, seats=2, extra=("--presence-seats", "2"))

    board.drive("presence 9 1", "presence 1 maybe")

    refused = "expected: presence INDEX 1|0 (INDEX 1..seats)"
    wait_for(lambda: board.log().count(refused) >= 2, 10, "both lines refused")
