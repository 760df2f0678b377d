"""The firmware's C codec (firmware/core/proto.c) against docs/protocol.md and the Python codec.

The C core runs through ctypes (tests/firmware_ctypes.py: a mirror of ``qp_frame_t``
carries frames both ways). Every vector of the spec; then differential properties:
Python wire -> C decode -> C encode, C-side frames -> Python decode, and random bodies and
streams through both decoders, cut anywhere; then fuzzing: random bytes never break the C
receiver, it stays within its fixed struct, and a good frame after any garbage is still
decoded. The board's receive path (core/board.c, on a fake HAL) answers any bytes as the
Python emulator does. Long seeded runs also go through ``qihe-fuzz``, both receive paths
under AddressSanitizer and UBSan."""

from __future__ import annotations

import ctypes
import random
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

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
from firmware_bridge.emulator import Board, BookHouseModel
from firmware_bridge.errors import FrameError
from firmware_bridge.messages import (
    Ack,
    Door,
    Fault,
    FaultCode,
    Frame,
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
from tests.firmware_build import firmware_build
from tests.firmware_ctypes import (
    FRAME_OFFSETS,
    QP_MAX_ID,
    QP_MAX_SENSORS,
    QP_NONE,
    CBoard,
    CDecoder,
    QpFrame,
    c_cobs_decode,
    c_cobs_encode,
    c_crc,
    c_decode_body,
    c_encode_body,
    c_encode_wire,
    error_kind,
    frame_offset,
    from_c,
    lib,
    to_c,
)
from tests.test_codec_properties import chunked, frames, garbage, streams
from tests.test_protocol_vectors import MALFORMED, VALID, MalformedVector, ValidVector


def python_outcome(data: bytes, decoder: FrameDecoder | None = None) -> list[Frame | str]:
    results = (decoder or FrameDecoder()).feed(data)
    return [r.kind if isinstance(r, FrameError) else r for r in results]


def python_body_verdict(body: bytes) -> Frame | str:
    try:
        return decode_body(body)
    except FrameError as exc:
        return exc.kind


# -- the mirror and the basics ----------------------------------------------------------------


def test_ctypes_mirror_has_the_layout_of_qp_frame_t() -> None:
    assert lib().qps_frame_size() == ctypes.sizeof(QpFrame)
    out = (ctypes.c_size_t * 64)()
    n = lib().qps_frame_offsets(out, 64)
    assert n == len(FRAME_OFFSETS)
    assert list(out[:n]) == [frame_offset(*path) for path in FRAME_OFFSETS]


def test_error_kinds_are_the_python_codecs() -> None:
    kinds = [error_kind(code) for code in range(1, 8)]
    assert kinds == ["cobs", "too_short", "too_long", "crc", "version", "unknown_type", "payload"]
    assert error_kind(0) == "ok"
    assert error_kind(QP_NONE) == "none"


def test_crc_gives_the_check_value_of_the_spec() -> None:
    assert c_crc(b"123456789") == 0x29B1 == crc16_ccitt_false(b"123456789")
    assert c_crc(b"") == 0xFFFF


# -- the vectors of docs/protocol.md, section 11 --------------------------------------------


@pytest.mark.parametrize("vector", VALID, ids=[v.name for v in VALID])
def test_c_decodes_each_valid_vector_to_its_frame(vector: ValidVector) -> None:
    decoder = CDecoder()
    assert decoder.feed(vector.wire[:-1]) == []  # nothing before the trailing 00
    assert decoder.feed(vector.wire[-1:]) == [vector.frame]
    assert decoder.pending == 0
    assert CDecoder().feed(vector.wire) == [vector.frame]


@pytest.mark.parametrize("vector", VALID, ids=[v.name for v in VALID])
def test_c_encodes_each_valid_vector_to_its_wire_bytes(vector: ValidVector) -> None:
    assert (c_encode_wire(to_c(vector.frame)) or b"").hex(" ").upper() == vector.wire.hex(
        " "
    ).upper()


@pytest.mark.parametrize("vector", VALID, ids=[v.name for v in VALID])
def test_c_decoded_body_re_encodes_to_the_same_body(vector: ValidVector) -> None:
    body = cobs.decode(vector.wire[1:-1])
    decoded = c_decode_body(body)
    assert isinstance(decoded, QpFrame)
    assert c_encode_body(decoded) == body


@pytest.mark.parametrize("vector", MALFORMED, ids=[v.name for v in MALFORMED])
def test_c_reports_each_malformed_vector_as_its_kind(vector: MalformedVector) -> None:
    decoder = CDecoder()
    assert decoder.feed(vector.wire[:-1]) == []
    assert decoder.feed(vector.wire[-1:]) == [vector.kind]
    assert python_outcome(vector.wire) == [vector.kind]


# -- framing edge cases ------------------------------------------------------------------------


def _largest_hello() -> Frame:
    """A 254-byte body without a single 00 byte: COBS ends on a full FF block."""
    for seq in range(0x0101, 0xFFFF):
        frame = Frame(
            seq=seq,
            message=Hello(
                "abc",
                (1, 1, 1),
                0x0101,
                tuple(SensorRef(SensorKind.SEAT, 0x0101 + i) for i in range(QP_MAX_SENSORS)),
                boot=0x01010101,
            ),
        )
        body = encode_body(frame)
        if 0 not in body:
            assert len(body) == MAX_BODY
            return frame
    raise AssertionError("no zero-free body found")


def test_a_full_body_is_encoded_in_the_shortest_cobs_form() -> None:
    frame = _largest_hello()
    wire = c_encode_wire(to_c(frame))
    assert wire == encode(frame)
    assert wire is not None and len(wire) == 1 + 255 + 1 and wire[1] == 0xFF


def test_the_papers_cobs_form_with_its_extra_01_is_decoded() -> None:
    frame = _largest_hello()
    papers = encode(frame)[:-1] + b"\x01\x00"  # 256 encoded bytes: the most a receiver accepts
    assert len(papers) - 2 == MAX_ENCODED
    assert CDecoder().feed(papers) == [frame] == python_outcome(papers)


def test_a_hello_over_254_bytes_cannot_be_encoded() -> None:
    c = to_c(_largest_hello())
    c.m.hello.id_len = 4
    c.m.hello.device_id[3] = ord("d")
    assert c_encode_body(c) is None
    c.m.hello.sensor_count = QP_MAX_SENSORS + 1
    assert c_encode_body(c) is None


def test_an_over_long_run_is_reported_once_and_the_next_frame_decodes() -> None:
    seat = encode(Frame(seq=1, message=Seat(seat=12, occupied=True)))
    decoder = CDecoder()
    assert decoder.feed(b"\x07" * MAX_ENCODED) == []
    assert decoder.pending == MAX_ENCODED
    assert decoder.feed(b"\x07") == ["too_long"]  # byte 257: at once, not at the next 00
    assert decoder.skipping and decoder.pending == 0
    assert decoder.feed(b"\x07" * 5000) == []
    assert decoder.feed(seat) == [Frame(seq=1, message=Seat(seat=12, occupied=True))]
    assert not decoder.skipping


def test_a_256_byte_run_decodes_to_a_body_that_is_too_long() -> None:
    run = b"\x00" + b"\x01" * MAX_ENCODED + b"\x00"  # 255 zero bytes once decoded
    assert CDecoder().feed(run) == ["too_long"] == python_outcome(run)


def test_a_hello_with_a_zero_report_interval_cannot_be_encoded() -> None:
    c = to_c(next(v.frame for v in VALID if v.name == "hello_no_sensors"))
    c.m.hello.report_interval_s = 0
    assert c_encode_body(c) is None


def test_empty_frames_are_skipped() -> None:
    assert CDecoder().feed(b"\x00" * 50) == []


# -- COBS and CRC against Python ---------------------------------------------------------------


@settings(deadline=None)
@given(
    st.one_of(
        st.binary(max_size=1000),
        st.integers(0, 800).map(lambda n: bytes((i % 255) + 1 for i in range(n))),
    )
)
def test_c_cobs_and_crc_agree_with_python(data: bytes) -> None:
    encoded = c_cobs_encode(data)
    assert encoded == cobs.encode(data)
    assert c_cobs_decode(encoded) == data
    assert c_crc(data) == crc16_ccitt_false(data)


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_c_cobs_decoder_refuses_what_python_refuses(data: bytes) -> None:
    try:
        expected: bytes | None = cobs.decode(data)
    except FrameError:
        expected = None
    assert c_cobs_decode(data) == expected


# -- differential: Python frames through C, and C frames through Python ------------------------


@settings(deadline=None, max_examples=300)
@given(frames)
def test_python_frames_decode_and_re_encode_identically_in_c(frame: Frame) -> None:
    wire = encode(frame)
    decoded = CDecoder().feed(wire)
    assert decoded == [frame]
    body = cobs.decode(wire[1:-1])
    c_frame = c_decode_body(body)
    assert isinstance(c_frame, QpFrame)
    assert c_encode_body(c_frame) == body
    assert c_encode_wire(c_frame) == wire


u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
# Mostly valid values, sometimes anything a byte can hold.
kinds = st.one_of(st.sampled_from([int(k) for k in SensorKind]), u8)
fault_codes = st.one_of(st.sampled_from([int(c) for c in FaultCode]), u8)
nack_reasons = st.one_of(st.sampled_from([int(r) for r in NackReason]), u8)
device_id_bytes = st.one_of(
    st.from_regex(rb"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True),
    st.binary(min_size=0, max_size=QP_MAX_ID + 1),
)


@st.composite
def raw_c_frames(draw: st.DrawFn) -> QpFrame:
    c = QpFrame()
    c.type = draw(st.one_of(st.sampled_from([int(t) for t in MessageType]), u8))
    c.seq = draw(u16)
    m = c.m
    match c.type:
        case MessageType.HELLO:
            raw_id = draw(device_id_bytes)
            m.hello.id_len = len(raw_id)
            m.hello.device_id[: len(raw_id)] = list(raw_id)
            m.hello.firmware[:] = draw(st.lists(u8, min_size=3, max_size=3))
            m.hello.report_interval_s = draw(st.one_of(st.just(0), u16))
            sensors = draw(st.lists(st.tuples(kinds, u16), max_size=QP_MAX_SENSORS))
            m.hello.sensor_count = len(sensors)
            for i, (kind, index) in enumerate(sensors):
                m.hello.sensors[i].kind, m.hello.sensors[i].index = kind, index
            m.hello.boot = draw(u32)
        case MessageType.SEAT:
            m.seat.seat, m.seat.occupied = draw(u16), draw(st.booleans())
        case MessageType.SEAT_PRESENCE:
            p = m.seat_presence
            p.seat, p.occupied, p.present = draw(u16), draw(st.booleans()), draw(st.booleans())
        case MessageType.PEOPLE:
            m.people.counter, m.people.in_total, m.people.out_total = draw(st.tuples(u16, u32, u32))
        case MessageType.DOOR:
            m.door.door, m.door.open = draw(u16), draw(st.booleans())
        case MessageType.HEARTBEAT:
            m.heartbeat.uptime_s, m.heartbeat.supply_mv = draw(u32), draw(u16)
        case MessageType.FAULT:
            m.fault.sensor.kind, m.fault.sensor.index = draw(kinds), draw(u16)
            m.fault.code, m.fault.active = draw(fault_codes), draw(st.booleans())
        case MessageType.WINDOW:
            m.window.boot, m.window.dropped = draw(u32), draw(u32)
            m.window.held[:] = list(draw(st.binary(min_size=32, max_size=32)))
        case MessageType.SET_REPORT_INTERVAL:
            m.set_report_interval.value = draw(st.one_of(st.just(0), u16))
        case MessageType.IDENTIFY:
            m.identify.value = draw(u8)
        case MessageType.REPORT_ACK | MessageType.ACK:
            m.ack.value = draw(u16)
        case MessageType.NACK:
            m.nack.ref_seq, m.nack.reason = draw(u16), draw(nack_reasons)
    return c


def python_wire_of(c: QpFrame) -> bytes | None:
    """What the Python codec makes of the same fields: the wire bytes, or None when it refuses
    to build or encode such a frame."""
    try:
        return encode(from_c(c))
    except ValueError:  # MessageValueError, or a value that is not in an enum
        return None


@settings(deadline=None, max_examples=500)
@given(raw_c_frames())
def test_c_frames_encode_as_python_would_and_python_decodes_them(c: QpFrame) -> None:
    wire = c_encode_wire(c)
    assert wire == python_wire_of(c)  # None on both sides: refused by both
    if wire is not None:
        (decoded,) = FrameDecoder().feed(wire)
        assert decoded == from_c(c)


# -- differential: the same verdict for any body or stream --------------------------------------


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Bodies that reach every check: random ones, and ones with a good CRC and a version
    and type that mostly pass, whose payload is random or a valid one damaged."""
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return draw(st.binary(max_size=300))
    if choice == 1:
        version = draw(st.sampled_from([1, 1, 1, 0, 2]))
        kind = draw(st.one_of(st.sampled_from([int(t) for t in MessageType]), u8))
        head = bytes([version, kind]) + draw(u16).to_bytes(2, "big") + draw(st.binary(max_size=60))
    else:
        damaged = bytearray(encode_body(draw(frames))[:-2])
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(4, max(4, len(damaged))))
            action = draw(st.integers(0, 3))
            if action == 0 and at < len(damaged):
                damaged[at] = draw(u8)
            elif action == 1:
                damaged[at:at] = bytes([draw(u8)])
            elif action == 2 and at < len(damaged):
                del damaged[at]
            elif action == 3:  # zeros where a field must not be zero (an interval)
                damaged[at : at + 2] = bytes(len(damaged[at : at + 2]))
        head = bytes(damaged)
    crc = crc16_ccitt_false(head)
    if draw(st.integers(0, 9)) == 0:
        crc ^= 1 << draw(st.integers(0, 15))
    return head + crc.to_bytes(2, "big")


@settings(deadline=None, max_examples=1000)
@given(bodies())
def test_c_and_python_give_the_same_verdict_for_any_body(body: bytes) -> None:
    expected = python_body_verdict(body)
    got = c_decode_body(body)
    if isinstance(expected, str):
        assert got == expected
    else:
        assert isinstance(got, QpFrame)
        assert from_c(got) == expected
        assert c_encode_body(got) == body


def _damaged_frames() -> st.SearchStrategy[bytes]:
    """Encoded frames with a byte changed, cut short or with a piece of noise inside."""

    @st.composite
    def damaged(draw: st.DrawFn) -> bytes:
        wire = bytearray(encode(draw(frames)))
        at = draw(st.integers(0, len(wire) - 1))
        match draw(st.integers(0, 2)):
            case 0:
                wire[at] = draw(u8)
            case 1:
                del wire[at:]
            case _:
                wire[at:at] = draw(garbage)
        return bytes(wire)

    return damaged()


any_streams = st.lists(
    st.one_of(streams, _damaged_frames(), frames.map(encode), garbage), max_size=8
).map(b"".join)


@settings(deadline=None, max_examples=300)
@given(any_streams, st.data())
def test_c_and_python_decoders_agree_on_any_stream_cut_anywhere(
    stream: bytes, data: st.DataObject
) -> None:
    python_decoder, c_decoder = FrameDecoder(), CDecoder()
    python_results: list[Frame | str] = []
    c_results: list[Frame | str] = []
    for chunk in chunked(data, stream):
        python_results += python_outcome(chunk, python_decoder)
        c_results += c_decoder.feed(chunk)
        assert c_decoder.pending == python_decoder.pending
    assert c_results == python_results


# -- fuzzing the receiver -----------------------------------------------------------------------


@settings(deadline=None, max_examples=500)
@given(st.one_of(st.binary(max_size=2000), any_streams), frames, st.data())
def test_a_good_frame_after_any_bytes_is_decoded(
    noise: bytes, frame: Frame, data: st.DataObject
) -> None:
    decoder = CDecoder()
    for chunk in chunked(data, noise):
        decoder.feed(chunk)  # checks the guard bytes and the bound every time
    results = decoder.feed(encode(frame))
    assert results and results[-1] == frame
    assert len(results) <= 2  # the noise's tail (its leading 00 ends it), then the frame
    assert decoder.pending == 0 and not decoder.skipping


def _random_frame(rng: random.Random) -> Frame:
    """A valid frame of any type, drawn without hypothesis (for long seeded runs)."""
    sensor = SensorRef(rng.choice(list(SensorKind)), rng.randrange(0x10000))
    choices: list[Callable[[], Message]] = [
        lambda: Hello(
            "rr-" + "".join(rng.choice("abc019_-") for _ in range(rng.randrange(0, 29))),
            (rng.randrange(256), rng.randrange(256), rng.randrange(256)),
            rng.randrange(1, 0x10000),
            tuple(
                SensorRef(rng.choice(list(SensorKind)), rng.randrange(0x10000))
                for _ in range(rng.randrange(0, 60))
            ),
            rng.randrange(1 << 32),
        ),
        lambda: Seat(rng.randrange(0x10000), rng.random() < 0.5),
        lambda: SeatPresence(rng.randrange(0x10000), rng.random() < 0.5, rng.random() < 0.5),
        lambda: People(rng.randrange(0x10000), rng.randrange(1 << 32), rng.randrange(1 << 32)),
        lambda: Door(rng.randrange(3), rng.random() < 0.5),
        lambda: Heartbeat(rng.randrange(1 << 32), rng.randrange(0x10000)),
        lambda: Fault(sensor, rng.choice(list(FaultCode)), rng.random() < 0.5),
        lambda: Window(rng.randrange(1 << 32), rng.randrange(1 << 32), rng.getrandbits(256)),
        Ping,
        lambda: SetReportInterval(rng.randrange(1, 0x10000)),
        lambda: Identify(rng.randrange(256)),
        Reboot,
        lambda: ReportAck(rng.randrange(0x10000)),
        Resend,
        lambda: Ack(rng.randrange(0x10000)),
        lambda: Nack(rng.randrange(0x10000), rng.choice(list(NackReason))),
    ]
    return Frame(seq=rng.randrange(0x10000), message=rng.choice(choices)())


def seeded_stream(seed: int, size: int, *, reboot: bool = True) -> Iterator[bytes]:
    """About ``size`` bytes of frames, damaged frames and noise of every shape, reproducibly
    (without good REBOOT frames unless ``reboot``)."""
    rng = random.Random(seed)
    total = 0
    while total < size:
        frame = _random_frame(rng)
        while not reboot and isinstance(frame.message, Reboot):
            frame = _random_frame(rng)
        wire = encode(frame)
        match rng.randrange(8):
            case 0:
                piece = rng.randbytes(rng.randrange(1, 80))
            case 1:  # a run longer than any frame, no delimiter in it
                piece = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(200, 1200)))
            case 2:  # a bit flipped
                at = rng.randrange(len(wire))
                piece = wire[:at] + bytes([wire[at] ^ (1 << rng.randrange(8))]) + wire[at + 1 :]
            case 3:  # cut short
                piece = wire[: rng.randrange(1, len(wire))]
            case 4:  # zeros in a row
                piece = b"\x00" * rng.randrange(1, 5)
            case _:
                piece = wire
        total += len(piece)
        yield piece


SEED = 15
LONG_RUN = 1_000_000


def test_a_long_seeded_run_gives_the_same_results_in_c_and_python() -> None:
    python_decoder, c_decoder = FrameDecoder(), CDecoder()
    pieces = list(seeded_stream(SEED, LONG_RUN))
    python_results: list[Frame | str] = []
    c_results: list[Frame | str] = []
    for start in range(0, len(pieces), 200):
        chunk = b"".join(pieces[start : start + 200])
        python_results += python_outcome(chunk, python_decoder)
        c_results += c_decoder.feed(chunk)
    assert c_results == python_results
    kinds = {r for r in c_results if isinstance(r, str)}
    assert kinds >= {"cobs", "too_short", "too_long", "crc", "payload"}
    assert sum(isinstance(r, Frame) for r in c_results) > 1000


def test_the_receiver_under_asan_and_ubsan_agrees_with_python_on_a_long_run() -> None:
    fuzz = firmware_build("fuzz")
    stream = b"".join(seeded_stream(SEED + 1, LONG_RUN))
    result = subprocess.run([str(fuzz)], input=stream, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-4000:]
    expected = [
        f"ok {encode_body(r).hex()}" if isinstance(r, Frame) else r for r in python_outcome(stream)
    ]
    assert result.stdout.decode().splitlines() == expected


@settings(deadline=None, max_examples=200)
@given(st.binary(min_size=1, max_size=600))
def test_c_holds_only_the_bytes_after_the_last_delimiter(buffer: bytes) -> None:
    decoder = CDecoder()
    decoder.feed(buffer)
    tail = buffer[buffer.rfind(0) + 1 :]  # the whole buffer when it has no 00
    assert decoder.pending == (len(tail) if len(tail) <= MAX_ENCODED else 0)


# -- fuzzing the board's receive path (core/board.c on the fake HAL) ---------------------------


def emulator_replies(chunks: list[bytes]) -> list[Message]:
    """The ACKs and NACKs the Python emulator's board answers the same bytes with."""
    model = BookHouseModel(seats=4, start=datetime(2024, 3, 1, 9, tzinfo=UTC), simulate=False)
    board = Board(model, "fuzz-board")
    board.power_up()
    replies: list[Message] = []
    for chunk in chunks:
        replies += [f.message for f in board.receive(chunk) if isinstance(f.message, Ack | Nack)]
    return replies


def test_the_board_is_a_fixed_struct_within_the_ram_budget() -> None:
    assert lib().qps_board_size() < 16 * 1024 // 2  # half the ARM's RAM at most


no_reboot_frames = frames.filter(lambda f: not isinstance(f.message, Reboot))
gateway_streams = st.lists(
    st.one_of(
        st.binary(max_size=100),
        garbage,
        no_reboot_frames.map(encode),
        _damaged_frames(),
        st.builds(Frame, seq=u16, message=st.builds(ReportAck, u16)).map(encode),
        st.builds(Frame, seq=u16, message=st.just(Resend())).map(encode),
    ),
    max_size=12,
).map(b"".join)


@settings(deadline=None, max_examples=300)
@given(gateway_streams, st.data())
def test_board_rx_answers_any_bytes_as_the_emulator_does(
    stream: bytes, data: st.DataObject
) -> None:
    # A good REBOOT in the noise resets the two boards differently: not this test's business.
    assume(
        not any(
            isinstance(r, Frame) and isinstance(r.message, Reboot) for r in python_outcome(stream)
        )
    )
    chunks = chunked(data, stream)
    board = CBoard()
    for chunk in chunks:
        board.rx(chunk)
    assert board.replies() == emulator_replies(chunks)
    assert not lib().qps_board_halted()


@settings(deadline=None, max_examples=200)
@given(st.one_of(st.binary(max_size=2000), gateway_streams), u16, st.data())
def test_board_rx_answers_a_ping_after_any_bytes(
    noise: bytes, seq: int, data: st.DataObject
) -> None:
    board = CBoard()
    for chunk in chunked(data, noise):
        board.rx(chunk)
    assume(not lib().qps_board_halted())  # the noise held a good REBOOT
    before = len(board.replies())
    board.rx(encode(Frame(seq=seq, message=Ping())))
    # The PING's leading 00 ends the noise's last piece, which may be a good frame the board
    # answers (a report type sent to it: NACK UNKNOWN_COMMAND) just before the PING's ACK.
    answers = board.replies()[before:]
    assert answers[-1] == Ack(seq)
    assert len(answers) <= 2


def test_board_rx_agrees_with_the_emulator_on_a_long_seeded_run() -> None:
    pieces = list(seeded_stream(SEED + 2, 300_000, reboot=False))
    chunks = [b"".join(pieces[i : i + 3]) for i in range(0, len(pieces), 3)]
    board = CBoard()
    for chunk in chunks:
        board.rx(chunk)
    replies = board.replies()
    assert replies == emulator_replies(chunks)
    assert sum(isinstance(r, Nack) for r in replies) > 100
    assert sum(isinstance(r, Ack) for r in replies) > 100


def test_board_rx_under_asan_and_ubsan_survives_a_long_seeded_run() -> None:
    fuzz = firmware_build("fuzz")
    stream = b"".join(seeded_stream(SEED + 3, LONG_RUN))  # REBOOTs included: it restarts
    result = subprocess.run([str(fuzz), "board"], input=stream, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-4000:]
    assert int(result.stdout.split()[-1]) > 0
