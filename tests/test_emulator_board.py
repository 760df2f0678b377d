"""The board's protocol behaviour, sans-IO: sequence numbers, HELLO, commands, bad input."""

from __future__ import annotations

import random
import struct
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from firmware_bridge import cobs
from firmware_bridge.codec import DELIMITER, FrameDecoder, encode
from firmware_bridge.crc import crc16_ccitt_false
from firmware_bridge.emulator import (
    SHANGHAI,
    Board,
    BookHouseEmulator,
    BookHouseModel,
    EmulatorConfig,
)
from firmware_bridge.errors import NoSuchSensorError
from firmware_bridge.messages import (
    Ack,
    Door,
    Frame,
    Heartbeat,
    Hello,
    Identify,
    Message,
    Nack,
    NackReason,
    People,
    Ping,
    Reboot,
    Seat,
    SensorKind,
    SensorRef,
    SetReportInterval,
)

START = datetime(2024, 6, 3, 9, 0, tzinfo=SHANGHAI)


def _board(seats: int = 3, *, first_seq: int = 0) -> Board:
    model = BookHouseModel(seats=seats, start=START, simulate=False, report_interval_s=60)
    model.set_supply(4000)
    return Board(model, "taoyuan-1", first_seq=first_seq)


def _command(seq: int, message: Message) -> bytes:
    return encode(Frame(seq=seq, message=message))


def _raw_frame(type_byte: int, seq: int, payload: bytes) -> bytes:
    """A frame with a valid CRC that the codec would refuse to build."""
    head = struct.pack(">BBH", 1, type_byte, seq) + payload
    body = head + struct.pack(">H", crc16_ccitt_false(head))
    return DELIMITER + cobs.encode(body) + DELIMITER


def _messages(frames: list[Frame]) -> list[Message]:
    return [frame.message for frame in frames]


def test_power_up_sends_hello_with_every_sensor_then_the_state() -> None:
    frames = _board(seats=3).power_up()

    assert frames[0] == Frame(
        seq=0,
        message=Hello(
            device_id="taoyuan-1",
            firmware=(1, 0, 0),
            report_interval_s=60,
            sensors=(
                SensorRef(SensorKind.SEAT, 1),
                SensorRef(SensorKind.SEAT, 2),
                SensorRef(SensorKind.SEAT, 3),
                SensorRef(SensorKind.PEOPLE, 1),
                SensorRef(SensorKind.DOOR, 1),
            ),
            boot=random.Random("taoyuan-1").getrandbits(32),
        ),
    )
    assert _messages(frames[1:]) == [
        Seat(1, False),
        Seat(2, False),
        Seat(3, False),
        Door(1, False),
        Heartbeat(0, 4000),
        People(1, 0, 0),
    ]
    assert [f.seq for f in frames] == list(range(7))


def test_hello_of_the_largest_board_fits_one_frame() -> None:
    config = EmulatorConfig(device_id="a" * 32, seats=64)
    model = BookHouseModel(seats=config.seats, start=START)
    frame = Board(model, config.device_id).power_up()[0]

    assert FrameDecoder().feed(encode(frame)) == [frame]


def test_sequence_number_wraps_from_65535_to_0() -> None:
    board = _board()
    reports = [People(1, n, 0) for n in range(0x1_0002)]

    seqs = [frame.seq for frame in board.emit(reports)]

    assert seqs[0xFFFE:] == [0xFFFE, 0xFFFF, 0, 1]
    assert board.next_seq == 2


def test_ping_is_acked_with_its_sequence_number() -> None:
    board = _board(first_seq=41)

    replies = board.receive(_command(1234, Ping()))

    assert replies == [Frame(seq=41, message=Ack(1234))]


def test_commands_split_into_single_bytes_are_still_understood() -> None:
    board = _board()
    replies: list[Frame] = []

    for byte in _command(5, Ping()) + _command(6, Identify(3)):
        replies += board.receive(bytes([byte]))

    assert _messages(replies) == [Ack(5), Ack(6)]
    assert board.counters.identifies == 1


def test_set_report_interval_is_acked_and_changes_the_heartbeat() -> None:
    board = _board()

    replies = board.receive(_command(9, SetReportInterval(10)))
    beats = board.model.step(START + timedelta(seconds=30))

    assert _messages(replies) == [Ack(9)]
    assert [r.uptime_s for r in beats if isinstance(r, Heartbeat)] == [10, 20, 30]
    assert board.hello().report_interval_s == 10


def test_report_interval_over_an_hour_is_refused() -> None:
    board = _board()

    replies = board.receive(_command(9, SetReportInterval(3601)))

    assert _messages(replies) == [Nack(9, NackReason.BAD_ARGUMENT)]
    assert board.model.report_interval_s == 60


def test_malformed_command_is_dropped_without_a_reply() -> None:
    board = _board()

    replies = board.receive(_raw_frame(0x41, 77, struct.pack(">H", 0)))  # interval 0

    assert replies == []
    assert board.counters.malformed == 1
    assert board.model.report_interval_s == 60


def test_reboot_acks_then_starts_over_at_seq_0_with_totals_reset() -> None:
    board = _board(first_seq=500)
    board.model.count_people(entered=4, left=1)
    board.model.step(START + timedelta(seconds=90))

    replies = board.receive(_command(3, Reboot()))

    assert replies[0] == Frame(seq=500, message=Ack(3))
    assert replies[1].seq == 0
    assert isinstance(replies[1].message, Hello)
    assert People(1, 0, 0) in _messages(replies)
    assert Heartbeat(0, 4000) in _messages(replies)
    assert [f.seq for f in replies[1:]] == list(range(len(replies) - 1))
    assert board.counters.reboots == 1


def test_unknown_command_type_is_nacked() -> None:
    board = _board()

    replies = board.receive(_raw_frame(0x4F, 12, b""))

    assert _messages(replies) == [Nack(12, NackReason.UNKNOWN_COMMAND)]
    assert board.counters.malformed == 1


def test_a_report_sent_to_the_board_is_an_unsupported_command() -> None:
    board = _board()

    replies = board.receive(_command(8, Seat(1, True)))
    replies += board.receive(_raw_frame(0x02, 9, b"\x00\x01\x07"))  # and a malformed one

    assert _messages(replies) == [
        Nack(8, NackReason.UNKNOWN_COMMAND),
        Nack(9, NackReason.UNKNOWN_COMMAND),
    ]


def test_garbage_and_bad_crc_are_ignored_and_counted() -> None:
    board = _board()
    ping = bytearray(_command(4, Ping()))
    ping[3] ^= 0x01

    replies = board.receive(b"\x00\x13\x37\xff\x00" + bytes(ping) + _command(5, Ping()))

    assert _messages(replies) == [Ack(5)]
    assert board.counters.malformed == 2
    assert board.counters.commands == 1


def test_config_refuses_a_stuck_seat_the_board_does_not_have() -> None:
    with pytest.raises(ValidationError, match="stuck_seats"):
        EmulatorConfig(seats=4, stuck_seats=(5,))


def test_config_refuses_more_seats_than_a_hello_can_carry() -> None:
    with pytest.raises(ValidationError, match="seats"):
        EmulatorConfig(seats=65)


def test_every_boot_draws_a_new_boot_number_for_its_hello() -> None:
    board = _board(seats=1)
    first = board.power_up()[0].message
    second = board.reboot()[0].message
    assert isinstance(first, Hello) and isinstance(second, Hello)
    assert first.boot != second.boot


def test_a_board_configured_with_seats_only_says_so_in_hello_and_sends_only_seats() -> None:
    emulator = BookHouseEmulator(
        EmulatorConfig(seats=2, counter=False, door=False, simulate=False, supply_mv=4000)
    )

    frames = emulator.board.power_up()

    hello = frames[0].message
    assert isinstance(hello, Hello)
    assert hello.sensors == (SensorRef(SensorKind.SEAT, 1), SensorRef(SensorKind.SEAT, 2))
    assert _messages(frames[1:]) == [Seat(1, False), Seat(2, False), Heartbeat(0, 4000)]
    assert FrameDecoder().feed(b"".join(encode(f) for f in frames)) == frames


def test_a_board_configured_without_a_door_keeps_its_counter() -> None:
    emulator = BookHouseEmulator(EmulatorConfig(seats=1, door=False, simulate=False))

    assert emulator.model.sensors == (
        SensorRef(SensorKind.SEAT, 1),
        SensorRef(SensorKind.PEOPLE, 1),
    )


def test_a_scripted_count_on_a_board_without_a_counter_raises_a_clear_error() -> None:
    emulator = BookHouseEmulator(EmulatorConfig(counter=False, simulate=False))

    with pytest.raises(NoSuchSensorError, match=r"no people counter \(counter=False\)"):
        emulator.count_people(entered=1)
