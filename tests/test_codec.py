"""The serial codec, by example: what goes on the wire, what comes off it, and what is refused."""

from __future__ import annotations

import typing
from collections.abc import Callable

import pytest

from firmware_bridge import cobs
from firmware_bridge.codec import (
    MAX_BODY,
    MAX_ENCODED,
    FrameDecoder,
    decode_body,
    encode,
    encode_body,
)
from firmware_bridge.crc import crc16_ccitt_false
from firmware_bridge.errors import (
    BridgeError,
    CobsError,
    CrcError,
    FrameError,
    FrameTooLongError,
    FrameTooShortError,
    MessageValueError,
    PayloadError,
    UnknownTypeError,
    UnsupportedVersionError,
)
from firmware_bridge.messages import (
    Ack,
    BoardMessage,
    Door,
    Fault,
    FaultCode,
    Frame,
    GatewayMessage,
    Heartbeat,
    Hello,
    Identify,
    Message,
    MessageType,
    Nack,
    NackReason,
    People,
    Ping,
    Reboot,
    ReportAck,
    Resend,
    Seat,
    SeatPresence,
    SensorKind,
    SensorRef,
    SetReportInterval,
    Window,
)

SEAT_7 = SensorRef(SensorKind.SEAT, 7)

EXAMPLES: dict[str, Frame] = {
    "hello": Frame(
        0,
        Hello(
            "rr-qibin-01",
            (1, 4, 2),
            60,
            (SensorRef(SensorKind.SEAT, 1), SensorRef(SensorKind.PEOPLE, 1)),
        ),
    ),
    "hello_no_sensors": Frame(0, Hello("b7", (0, 1, 0), 600)),
    "seat_occupied": Frame(1, Seat(12, True)),
    "seat_free": Frame(2, Seat(12, False)),
    "seat_presence_away": Frame(13, SeatPresence(12, True, False)),
    "people": Frame(3, People(1, 1234, 1201)),
    "door_open": Frame(4, Door(1, True)),
    "door_closed": Frame(5, Door(1, False)),
    "heartbeat": Frame(6, Heartbeat(86400, 5012)),
    "fault_raised": Frame(7, Fault(SEAT_7, FaultCode.NO_RESPONSE, True)),
    "fault_cleared": Frame(8, Fault(SEAT_7, FaultCode.NO_RESPONSE, False)),
    "window": Frame(9, Window(0xDEADBEEF, 1, 0x3F)),
    "window_full_span": Frame(300, Window(1, 0xFFFF_FFFF, (1 << 256) - 1)),
    "ping": Frame(100, Ping()),
    "set_report_interval": Frame(101, SetReportInterval(300)),
    "identify": Frame(102, Identify(10)),
    "reboot": Frame(103, Reboot()),
    "report_ack": Frame(104, ReportAck(7)),
    "report_ack_wrapped": Frame(105, ReportAck(0)),
    "resend": Frame(106, Resend()),
    "ack": Frame(10, Ack(100)),
    "nack": Frame(11, Nack(101, NackReason.BUSY)),
    "seq_max": Frame(0xFFFF, Heartbeat(0xFFFF_FFFF, 0xFFFF)),
    "all_zero_fields": Frame(0, People(0, 0, 0)),
}

TYPE_OF = {
    Hello: MessageType.HELLO,
    Seat: MessageType.SEAT,
    People: MessageType.PEOPLE,
    Door: MessageType.DOOR,
    Heartbeat: MessageType.HEARTBEAT,
    Fault: MessageType.FAULT,
    Ping: MessageType.PING,
    SetReportInterval: MessageType.SET_REPORT_INTERVAL,
    Identify: MessageType.IDENTIFY,
    Reboot: MessageType.REBOOT,
    ReportAck: MessageType.REPORT_ACK,
    Resend: MessageType.RESEND,
    Ack: MessageType.ACK,
    Nack: MessageType.NACK,
    Window: MessageType.WINDOW,
    SeatPresence: MessageType.SEAT_PRESENCE,
}

examples = pytest.mark.parametrize("frame", EXAMPLES.values(), ids=EXAMPLES.keys())


def framed(head: bytes, *, crc_xor: int = 0) -> bytes:
    """Wire bytes for a hand-made body: ``head`` (version..payload), its CRC, COBS, delimiters."""
    crc = crc16_ccitt_false(head) ^ crc_xor
    return b"\x00" + cobs.encode(head + crc.to_bytes(2, "big")) + b"\x00"


def read(buffer: bytes) -> tuple[list[Frame | FrameError], int]:
    """What a fresh decoder makes of ``buffer``, and how many of its bytes it is done with."""
    decoder = FrameDecoder()
    results = decoder.feed(buffer)
    return results, len(buffer) - decoder.pending


def reference_crc(data: bytes) -> int:
    """CRC-16/CCITT-FALSE bit by bit, independent of the table in crc.py."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


# -- round trip --------------------------------------------------------------------


def test_examples_cover_every_message_type() -> None:
    assert {TYPE_OF[type(frame.message)] for frame in EXAMPLES.values()} == set(MessageType)


def test_gateway_messages_are_the_0x40_types_and_board_messages_the_rest() -> None:
    gateway, board = typing.get_args(GatewayMessage), typing.get_args(BoardMessage)
    assert {TYPE_OF[cls] for cls in gateway} == {t for t in MessageType if 0x40 <= t < 0x80}
    assert {TYPE_OF[cls] for cls in board} == {t for t in MessageType if not 0x40 <= t < 0x80}
    assert set(gateway) | set(board) == set(typing.get_args(Message))


@examples
def test_every_message_type_survives_the_round_trip(frame: Frame) -> None:
    assert FrameDecoder().feed(encode(frame)) == [frame]
    assert decode_body(encode_body(frame)) == frame


@examples
def test_body_starts_with_version_type_and_seq_and_ends_with_its_crc(frame: Frame) -> None:
    body = encode_body(frame)
    assert body[0] == 1
    assert body[1] == TYPE_OF[type(frame.message)]
    assert body[2:4] == frame.seq.to_bytes(2, "big")
    assert body[-2:] == reference_crc(body[:-2]).to_bytes(2, "big")


@examples
def test_wire_bytes_are_cobs_between_two_delimiters(frame: Frame) -> None:
    wire = encode(frame)
    assert wire[0] == 0 and wire[-1] == 0
    assert 0 not in wire[1:-1]
    assert cobs.decode(wire[1:-1]) == encode_body(frame)


def test_seat_frame_is_laid_out_byte_by_byte_as_in_the_spec() -> None:
    frame = Frame(seq=1, message=Seat(seat=12, occupied=True))
    head = bytes([0x01, 0x02, 0x00, 0x01, 0x00, 0x0C, 0x01])
    assert reference_crc(head) == 0xE117
    assert encode_body(frame) == head + b"\xe1\x17"
    assert encode(frame) == bytes.fromhex("00 03 01 02 02 01 05 0C 01 E1 17 00")


def test_people_totals_are_big_endian_u32() -> None:
    body = encode_body(Frame(3, People(counter=1, in_total=0x01020304, out_total=5)))
    assert body[4:-2] == bytes.fromhex("0001 01020304 00000005")


def test_hello_payload_is_id_firmware_interval_sensor_list_and_boot_number() -> None:
    hello = Hello("b7", (2, 0, 11), 30, (SensorRef(SensorKind.DOOR, 0x0102),), boot=0xC0FFEE01)
    assert encode_body(Frame(0, hello))[4:-2] == bytes.fromhex(
        "02 6237 02000B 001E 01 030102 C0FFEE01"
    )


def test_largest_frame_without_zero_bytes_fits_in_max_encoded() -> None:
    # 254 body bytes and not one zero: the case where COBS implementations differ.
    sensors = tuple(SensorRef(SensorKind.SEAT, 0x0101 + i) for i in range(78))
    frame = Frame(0x0101, Hello("abc", (1, 1, 1), 0x0101, sensors, boot=0x01010101))
    body = encode_body(frame)
    assert len(body) == MAX_BODY
    assert 0 not in body
    wire = encode(frame)
    assert len(wire) == MAX_BODY + 1 + 2  # the short COBS form, between two delimiters
    assert FrameDecoder().feed(wire) == [frame]


def test_the_papers_longer_cobs_form_of_the_largest_frame_is_accepted_too() -> None:
    sensors = tuple(SensorRef(SensorKind.SEAT, 0x0101 + i) for i in range(78))
    frame = Frame(0x0101, Hello("abc", (1, 1, 1), 0x0101, sensors, boot=0x01010101))
    wire = encode(frame)
    papers_form = wire[:-1] + b"\x01" + wire[-1:]  # a final, redundant 0x01 code byte
    assert len(papers_form) == MAX_ENCODED + 2
    assert FrameDecoder().feed(papers_form) == [frame]


def test_hello_too_big_for_one_frame_is_refused_when_encoding() -> None:
    sensors = tuple(SensorRef(SensorKind.SEAT, i) for i in range(81))
    with pytest.raises(MessageValueError, match="exceeds 254"):
        encode(Frame(0, Hello("a", (1, 0, 0), 60, sensors)))


# -- need more bytes ----------------------------------------------------------------


@examples
def test_every_strict_prefix_of_a_frame_needs_more_bytes(frame: Frame) -> None:
    wire = encode(frame)
    assert read(b"") == ([], 0)
    for end in range(1, len(wire)):
        prefix = wire[:end]
        # The leading delimiter is an empty frame, skipped on its own...
        assert read(prefix) == ([], 1)
        # ...and what follows it is incomplete until the trailing delimiter arrives.
        assert read(prefix[1:]) == ([], 0)


@examples
def test_decoder_holds_a_partial_frame_until_its_last_byte(frame: Frame) -> None:
    wire = encode(frame)
    for end in range(len(wire)):
        decoder = FrameDecoder()
        assert decoder.feed(wire[:end]) == []
        assert decoder.pending == max(end - 1, 0)
        assert decoder.feed(wire[end:]) == [frame]
        assert decoder.pending == 0


def test_decoder_is_done_with_a_frame_at_its_trailing_delimiter() -> None:
    first, second = encode(EXAMPLES["ping"]), encode(EXAMPLES["ack"])
    assert read(first) == ([EXAMPLES["ping"]], len(first))
    assert read(first[1:]) == ([EXAMPLES["ping"]], len(first) - 1)
    # The next frame's leading delimiter is taken too; the rest of that frame is held.
    assert read(first + second[:-1]) == ([EXAMPLES["ping"]], len(first) + 1)


def test_runs_of_delimiters_are_skipped_without_a_result() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00" * 10) == []
    assert decoder.pending == 0
    assert decoder.feed(b"\x00\x00" + encode(EXAMPLES["ping"]) + b"\x00\x00") == [EXAMPLES["ping"]]


# -- malformed frames ----------------------------------------------------------------

SEAT_HEAD = bytes.fromhex("01 02 0001 000C 01")

MALFORMED: dict[str, tuple[bytes, type[FrameError]]] = {
    "crc_bit_flipped": (framed(SEAT_HEAD, crc_xor=0x0001), CrcError),
    "occupied_byte_damaged": (bytes.fromhex("00 03 01 02 02 01 05 0C 03 E1 17 00"), CrcError),
    "version_0": (framed(b"\x00" + SEAT_HEAD[1:]), UnsupportedVersionError),
    "version_2": (framed(b"\x02" + SEAT_HEAD[1:]), UnsupportedVersionError),
    "type_0x00": (framed(bytes.fromhex("01 00 0001")), UnknownTypeError),
    "type_0x09": (framed(bytes.fromhex("01 09 0001")), UnknownTypeError),
    "seat_presence_payload_short": (framed(bytes.fromhex("01 08 0001 000C 01")), PayloadError),
    "seat_presence_present_0x02": (framed(bytes.fromhex("01 08 0001 000C 01 02")), PayloadError),
    "window_payload_short": (framed(bytes.fromhex("01 07 0001") + bytes(39)), PayloadError),
    "window_payload_long": (framed(bytes.fromhex("01 07 0001") + bytes(41)), PayloadError),
    "type_0x46": (framed(bytes.fromhex("01 46 0001")), UnknownTypeError),
    "type_0xff": (framed(bytes.fromhex("01 FF 0001")), UnknownTypeError),
    "seat_payload_short": (framed(bytes.fromhex("01 02 0001 000C")), PayloadError),
    "seat_payload_long": (framed(bytes.fromhex("01 02 0001 000C 01 00")), PayloadError),
    "seat_state_0x02": (framed(bytes.fromhex("01 02 0001 000C 02")), PayloadError),
    "door_state_0x80": (framed(bytes.fromhex("01 04 0001 0001 80")), PayloadError),
    "people_payload_short": (
        framed(bytes.fromhex("01 03 0001 0001 00000001 000000")),
        PayloadError,
    ),
    "heartbeat_payload_empty": (framed(bytes.fromhex("01 05 0001")), PayloadError),
    "fault_code_0x00": (framed(bytes.fromhex("01 06 0001 01 0007 00 01")), PayloadError),
    "fault_sensor_kind_0x00": (framed(bytes.fromhex("01 06 0001 00 0007 01 01")), PayloadError),
    "fault_active_0x02": (framed(bytes.fromhex("01 06 0001 01 0007 01 02")), PayloadError),
    "ping_with_payload": (framed(bytes.fromhex("01 40 0001 00")), PayloadError),
    "reboot_with_payload": (framed(bytes.fromhex("01 43 0001 01")), PayloadError),
    "set_report_interval_zero": (framed(bytes.fromhex("01 41 0001 0000")), PayloadError),
    "identify_payload_empty": (framed(bytes.fromhex("01 42 0001")), PayloadError),
    "report_ack_payload_short": (framed(bytes.fromhex("01 44 0001 07")), PayloadError),
    "report_ack_payload_long": (framed(bytes.fromhex("01 44 0001 0007 00")), PayloadError),
    "resend_with_payload": (framed(bytes.fromhex("01 45 0001 00")), PayloadError),
    "ack_payload_long": (framed(bytes.fromhex("01 80 0001 0064 00")), PayloadError),
    "nack_reason_0x00": (framed(bytes.fromhex("01 81 0001 0064 00")), PayloadError),
    "hello_payload_empty": (framed(bytes.fromhex("01 01 0000")), PayloadError),
    "hello_id_length_zero": (framed(bytes.fromhex("01 01 0000 00 010000 003C 00")), PayloadError),
    "hello_id_past_the_end": (framed(bytes.fromhex("01 01 0000 20 6237")), PayloadError),
    "hello_id_upper_case": (
        framed(bytes.fromhex("01 01 0000 02 4237 010000 003C 00")),
        PayloadError,
    ),
    "hello_id_not_ascii": (
        framed(bytes.fromhex("01 01 0000 02 E937 010000 003C 00")),
        PayloadError,
    ),
    "hello_interval_zero": (
        framed(bytes.fromhex("01 01 0000 02 6237 010000 0000 00")),
        PayloadError,
    ),
    "hello_count_too_high": (
        framed(bytes.fromhex("01 01 0000 02 6237 010000 003C 02 010001")),
        PayloadError,
    ),
    "hello_count_too_low": (
        framed(bytes.fromhex("01 01 0000 02 6237 010000 003C 00 010001")),
        PayloadError,
    ),
    "hello_sensor_kind_0x09": (
        framed(bytes.fromhex("01 01 0000 02 6237 010000 003C 01 090001")),
        PayloadError,
    ),
    "cobs_code_past_the_end": (bytes.fromhex("00 05 01 02 00"), CobsError),
    "cobs_last_byte_lost": (encode(EXAMPLES["seat_occupied"])[:-2] + b"\x00", CobsError),
    "body_5_bytes": (framed(bytes.fromhex("01 40 00")), FrameTooShortError),
    "body_empty": (bytes.fromhex("00 01 00"), FrameTooShortError),
    "encoded_256_bytes": (b"\x00" + b"\x01" * 256 + b"\x00", FrameTooLongError),
}


@pytest.mark.parametrize(("wire", "error"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frame_is_reported_as_one_error_of_its_class(
    wire: bytes, error: type[FrameError]
) -> None:
    results = FrameDecoder().feed(wire)
    assert [type(result) for result in results] == [error]
    (result,) = results
    assert isinstance(result, FrameError)
    assert result.kind == error.kind
    assert result.raw == wire[1:-1][:64]


@pytest.mark.parametrize(("wire", "error"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frame_is_reported_and_consumed_up_to_its_trailing_delimiter(
    wire: bytes, error: type[FrameError]
) -> None:
    results, consumed = read(wire[1:])
    assert [type(result) for result in results] == [error]
    assert consumed == len(wire) - 1


def test_decode_body_raises_what_the_decoder_returns() -> None:
    with pytest.raises(CrcError):
        decode_body(SEAT_HEAD + b"\x00\x00")
    with pytest.raises(FrameTooShortError):
        decode_body(b"\x01\x40\x00\x01\xff")
    with pytest.raises(FrameTooLongError):
        decode_body(b"\x01" * (MAX_BODY + 1))


def test_crc_is_checked_before_the_version() -> None:
    wire = framed(b"\x02" + SEAT_HEAD[1:], crc_xor=0x0100)
    assert [type(r) for r in FrameDecoder().feed(wire)] == [CrcError]


def test_frame_errors_are_value_errors_of_the_bridge() -> None:
    for error in {error for _, error in MALFORMED.values()}:
        assert issubclass(error, FrameError)
        assert issubclass(error, BridgeError)
        assert issubclass(error, ValueError)
    kinds = {error.kind for _, error in MALFORMED.values()}
    assert kinds == {"crc", "version", "unknown_type", "payload", "cobs", "too_short", "too_long"}


# -- noise and resynchronisation ------------------------------------------------------

PING, ACK = EXAMPLES["ping"], EXAMPLES["ack"]


def test_noise_before_a_frame_costs_only_itself() -> None:
    results = FrameDecoder().feed(b"\x13\x37\xfe" + encode(PING))
    assert len(results) == 2
    assert isinstance(results[0], FrameError)
    assert results[1] == PING


def test_noise_between_frames_costs_only_itself() -> None:
    results = FrameDecoder().feed(encode(PING) + b"\xaa\x55\xaa" + encode(ACK))
    assert results[0] == PING
    assert isinstance(results[1], FrameError)
    assert results[2:] == [ACK]


def test_zero_bytes_between_frames_are_not_noise() -> None:
    assert FrameDecoder().feed(encode(PING) + b"\x00" * 5 + encode(ACK)) == [PING, ACK]


def test_frame_cut_short_by_a_reset_does_not_cost_the_next_frame() -> None:
    # The board reset mid-frame: no trailing delimiter, but the next frame's leading one.
    results = FrameDecoder().feed(encode(PING)[:-3] + encode(ACK))
    assert len(results) == 2
    assert isinstance(results[0], FrameError)
    assert results[1] == ACK


def test_receiver_joining_mid_frame_is_in_sync_after_one_error() -> None:
    results = FrameDecoder().feed(encode(EXAMPLES["hello"])[5:] + encode(PING))
    assert len(results) == 2
    assert isinstance(results[0], FrameError)
    assert results[1] == PING


def test_noise_inside_a_frame_costs_that_frame_only() -> None:
    wire = encode(EXAMPLES["people"])
    damaged = wire[:6] + b"\x42" + wire[6:]
    results = FrameDecoder().feed(damaged + encode(PING))
    assert len(results) == 2
    assert isinstance(results[0], FrameError)
    assert results[1] == PING


def test_max_encoded_bytes_without_delimiter_still_need_more() -> None:
    assert read(b"\x41" * MAX_ENCODED) == ([], 0)
    results, consumed = read(b"\x41" * (MAX_ENCODED + 1))
    assert [type(result) for result in results] == [FrameTooLongError]
    assert consumed == MAX_ENCODED + 1


def test_overlong_run_is_reported_once_and_memory_stays_bounded() -> None:
    decoder = FrameDecoder()
    results = []
    for _ in range(100):
        results += decoder.feed(b"\x41" * 97)
        assert decoder.pending <= MAX_ENCODED
    assert [type(r) for r in results] == [FrameTooLongError]
    assert decoder.feed(encode(PING)) == [PING]


def test_overlong_run_fed_at_once_is_reported_once() -> None:
    decoder = FrameDecoder()
    results = decoder.feed(b"\x41" * 10_000)
    assert [type(r) for r in results] == [FrameTooLongError]
    assert decoder.pending == 0
    assert decoder.feed(b"\x41" * 500 + encode(PING)) == [PING]


def test_overlong_run_ending_in_a_delimiter_is_reported_once() -> None:
    results = FrameDecoder().feed(encode(ACK) + b"\x41" * 1000 + encode(PING))
    assert [type(r) for r in results] == [Frame, FrameTooLongError, Frame]
    assert [results[0], results[2]] == [ACK, PING]


def test_too_long_error_keeps_only_a_sample_of_the_run() -> None:
    (error,) = FrameDecoder().feed(b"\x41" * 1000)
    assert isinstance(error, FrameTooLongError)
    assert error.raw == b"\x41" * 64


# -- messages refuse what the wire cannot carry ------------------------------------------

OUT_OF_RANGE: dict[str, Callable[[], object]] = {
    "frame_seq_negative": lambda: Frame(-1, Ping()),
    "frame_seq_65536": lambda: Frame(0x1_0000, Ping()),
    "frame_version_256": lambda: Frame(0, Ping(), version=256),
    "seat_65536": lambda: Seat(0x1_0000, True),
    "seat_bool_as_index": lambda: Seat(True, True),
    "seat_occupied_2": lambda: Seat(1, 2),  # type: ignore[arg-type]
    "people_in_total_2_32": lambda: People(1, 0x1_0000_0000, 0),
    "people_out_total_negative": lambda: People(1, 0, -1),
    "door_open_none": lambda: Door(1, None),  # type: ignore[arg-type]
    "heartbeat_uptime_2_32": lambda: Heartbeat(0x1_0000_0000, 5000),
    "heartbeat_supply_65536": lambda: Heartbeat(1, 0x1_0000),
    "sensor_index_65536": lambda: SensorRef(SensorKind.SEAT, 0x1_0000),
    "sensor_kind_0": lambda: SensorRef(0, 1),  # type: ignore[arg-type]
    "fault_code_0": lambda: Fault(SEAT_7, 0),  # type: ignore[arg-type]
    "fault_active_2": lambda: Fault(SEAT_7, FaultCode.STUCK, 2),  # type: ignore[arg-type]
    "set_report_interval_0": lambda: SetReportInterval(0),
    "set_report_interval_65536": lambda: SetReportInterval(0x1_0000),
    "identify_256": lambda: Identify(256),
    "identify_float": lambda: Identify(1.5),  # type: ignore[arg-type]
    "ack_ref_seq_65536": lambda: Ack(0x1_0000),
    "report_ack_seq_65536": lambda: ReportAck(0x1_0000),
    "report_ack_seq_negative": lambda: ReportAck(-1),
    "report_ack_seq_bool": lambda: ReportAck(True),
    "nack_reason_4": lambda: Nack(1, 4),  # type: ignore[arg-type]
    "hello_firmware_two_parts": lambda: Hello("b7", (1, 2), 60),  # type: ignore[arg-type]
    "hello_firmware_part_256": lambda: Hello("b7", (1, 256, 0), 60),
    "hello_interval_0": lambda: Hello("b7", (1, 0, 0), 0),
    "hello_256_sensors": lambda: Hello("b7", (1, 0, 0), 60, (SEAT_7,) * 256),
    "window_boot_2_32": lambda: Window(1 << 32, 0),
    "window_dropped_negative": lambda: Window(1, -1),
    "window_held_257_bits": lambda: Window(1, 0, 1 << 256),
    "window_held_negative": lambda: Window(1, 0, -1),
    "window_held_bytes": lambda: Window(1, 0, bytes(32)),  # type: ignore[arg-type]
    "window_of_a_number_257_back": lambda: Window.of(300, 1, 0, [43]),
    "window_of_its_own_number": lambda: Window.of(300, 1, 0, [300]),
}


@pytest.mark.parametrize("build", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
def test_message_refuses_a_field_the_wire_cannot_carry(build: Callable[[], object]) -> None:
    with pytest.raises(MessageValueError):
        build()


def test_message_value_error_is_a_value_error_of_the_bridge() -> None:
    assert issubclass(MessageValueError, ValueError)
    assert issubclass(MessageValueError, BridgeError)
    assert not issubclass(MessageValueError, FrameError)


def test_fields_at_the_edges_of_their_range_are_accepted() -> None:
    frame = Frame(0xFFFF, People(0xFFFF, 0xFFFF_FFFF, 0))
    assert decode_body(encode_body(frame)) == frame
    assert Identify(0).seconds == 0
    assert decode_body(encode_body(Frame(0, ReportAck(0xFFFF)))) == Frame(0, ReportAck(0xFFFF))
    assert SetReportInterval(0xFFFF).seconds == 0xFFFF


@pytest.mark.parametrize(
    "device_id",
    ["a", "0", "b7", "rr-qibin-01", "rr_shancheng_03", "a" * 32, "9-_"],
)
def test_hello_accepts_a_lower_case_ascii_slug_of_up_to_32_characters(device_id: str) -> None:
    frame = Frame(0, Hello(device_id, (1, 0, 0), 60))
    assert decode_body(encode_body(frame)) == frame


@pytest.mark.parametrize(
    "device_id",
    ["", "a" * 33, "RR-01", "-rr", "_rr", "rr 01", "rr.01", "rr/01", "阅览室", "rr-01\n"],
    ids=[
        "empty",
        "33_chars",
        "upper_case",
        "leading_dash",
        "leading_underscore",
        "space",
        "dot",
        "slash",
        "not_ascii",
        "trailing_newline",
    ],
)
def test_hello_refuses_a_device_id_that_is_not_a_slug(device_id: str) -> None:
    with pytest.raises(MessageValueError, match="device_id"):
        Hello(device_id, (1, 0, 0), 60)


# -- CRC and COBS ------------------------------------------------------------------


def test_crc_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1


def test_crc_of_nothing_is_the_initial_value() -> None:
    assert crc16_ccitt_false(b"") == 0xFFFF


def test_crc_can_be_computed_in_pieces() -> None:
    assert crc16_ccitt_false(b"6789", crc16_ccitt_false(b"12345")) == 0x29B1


@pytest.mark.parametrize(
    "data",
    [b"\x00", b"\xff", b"\x01\x02\x00\xfe", bytes(range(256)), b"123456789" * 30],
    ids=["zero", "ff", "mixed", "every_byte", "long"],
)
def test_crc_table_agrees_with_bit_by_bit(data: bytes) -> None:
    assert crc16_ccitt_false(data) == reference_crc(data)


RUN_254 = bytes(range(1, 255))

COBS_EXAMPLES: dict[str, tuple[bytes, bytes]] = {
    "empty": (b"", b"\x01"),
    "zero": (b"\x00", b"\x01\x01"),
    "two_zeros": (b"\x00\x00", b"\x01\x01\x01"),
    "zero_11_zero": (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    "11_22_zero_33": (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    "no_zero": (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    "trailing_zeros": (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    "run_253": (RUN_254[:-1], b"\xfe" + RUN_254[:-1]),
    "run_254": (RUN_254, b"\xff" + RUN_254),
    "zero_then_run_254": (b"\x00" + RUN_254, b"\x01\xff" + RUN_254),
    "run_255": (RUN_254 + b"\xff", b"\xff" + RUN_254 + b"\x02\xff"),
    "run_254_then_zero": (RUN_254 + b"\x00", b"\xff" + RUN_254 + b"\x01\x01"),
    "run_508": (RUN_254 * 2, b"\xff" + RUN_254 + b"\xff" + RUN_254),
}


@pytest.mark.parametrize(("data", "encoded"), COBS_EXAMPLES.values(), ids=COBS_EXAMPLES.keys())
def test_cobs_encodes_to_the_shortest_form(data: bytes, encoded: bytes) -> None:
    assert cobs.encode(data) == encoded
    assert cobs.decode(encoded) == data


@pytest.mark.parametrize("length", [1, 253, 254, 255, 256, 507, 508, 509, 1000])
def test_cobs_round_trips_runs_of_non_zero_bytes(length: int) -> None:
    data = bytes((i % 255) + 1 for i in range(length))
    encoded = cobs.encode(data)
    assert 0 not in encoded
    assert len(encoded) == length + -(-length // 254)
    assert cobs.decode(encoded) == data


def test_cobs_decodes_the_long_form_other_encoders_send() -> None:
    # The 1999 paper's encoder ends a full 254-byte run with an extra 0x01 code byte.
    assert cobs.decode(b"\xff" + RUN_254 + b"\x01") == RUN_254


def test_cobs_refuses_a_zero_code_byte() -> None:
    with pytest.raises(CobsError, match="zero byte"):
        cobs.decode(b"\x02\x11\x00\x01")


def test_cobs_refuses_a_code_byte_pointing_past_the_end() -> None:
    with pytest.raises(CobsError, match="past the frame"):
        cobs.decode(b"\x05\x11\x22")
