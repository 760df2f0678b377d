"""Properties of the codec over generated frames, chunkings and line noise."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import cobs
from firmware_bridge.codec import (
    MAX_ENCODED,
    FrameDecoder,
    decode_body,
    encode,
    encode_body,
)
from firmware_bridge.crc import crc16_ccitt_false
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

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)

device_ids = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True)
sensor_refs = st.builds(SensorRef, st.sampled_from(SensorKind), u16)


@st.composite
def hellos(draw: st.DrawFn) -> Hello:
    device_id = draw(device_ids)
    # Up to the most sensors that fit a 254-byte body with this id: 6 + 7 + L + 3N <= 254.
    most = (254 - 13 - len(device_id)) // 3
    sensors = draw(st.lists(sensor_refs, max_size=most))
    return Hello(
        device_id, draw(st.tuples(u8, u8, u8)), draw(st.integers(1, 0xFFFF)), tuple(sensors)
    )


messages: st.SearchStrategy[Message] = st.one_of(
    hellos(),
    st.builds(Seat, u16, st.booleans()),
    st.builds(SeatPresence, u16, st.booleans(), st.booleans()),
    st.builds(People, u16, u32, u32),
    st.builds(Door, u16, st.booleans()),
    st.builds(Heartbeat, u32, u16),
    st.builds(Fault, sensor_refs, st.sampled_from(FaultCode), st.booleans()),
    st.builds(Ping),
    st.builds(SetReportInterval, st.integers(1, 0xFFFF)),
    st.builds(Identify, u8),
    st.builds(Reboot),
    st.builds(ReportAck, u16),
    st.builds(Resend),
    st.builds(Ack, u16),
    st.builds(Nack, u16, st.sampled_from(NackReason)),
    st.builds(Window, u32, u32, st.integers(0, (1 << 256) - 1)),
)
frames = st.builds(Frame, seq=u16, message=messages)
frame_lists = st.lists(frames, max_size=8)
# Noise: mostly short, sometimes a run without a delimiter longer than any frame can be.
garbage = st.one_of(
    st.binary(min_size=1, max_size=40),
    st.binary(min_size=200, max_size=600).map(lambda b: b.replace(b"\x00", b"\x01")),
)
# Arbitrary input for the receiver: random bytes, long runs without a delimiter and whole
# frames, in any order, so that over-long runs and resyncs happen often.
streams = st.lists(st.one_of(st.binary(max_size=100), garbage, frames.map(encode)), max_size=8).map(
    b"".join
)


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def chunked(data_object: st.DataObject, data: bytes) -> list[bytes]:
    """``data`` cut at up to 30 points hypothesis picks."""
    return split(data, data_object.draw(st.lists(st.integers(0, len(data)), max_size=30)))


def feed_all(chunks: Iterable[bytes]) -> list[Frame | FrameError]:
    decoder = FrameDecoder()
    results: list[Frame | FrameError] = []
    for chunk in chunks:
        results += decoder.feed(chunk)
        assert decoder.pending <= MAX_ENCODED
    return results


def is_subsequence(needle: Sequence[Frame], haystack: Iterable[object]) -> bool:
    remaining = iter(haystack)
    return all(any(wanted == got for got in remaining) for wanted in needle)


def outcome(result: Frame | FrameError) -> Frame | str:
    return result if isinstance(result, Frame) else result.kind


# -- round trip -------------------------------------------------------------------


@settings(deadline=None)
@given(frames)
def test_every_frame_survives_the_round_trip(frame: Frame) -> None:
    wire = encode(frame)
    assert wire[0] == 0 and wire[-1] == 0
    assert 0 not in wire[1:-1]
    assert len(wire) <= MAX_ENCODED + 2
    assert decode_body(encode_body(frame)) == frame
    assert FrameDecoder().feed(wire) == [frame]


@settings(deadline=None)
@given(st.tuples(st.just(1), st.sampled_from(MessageType), u16, st.binary(max_size=60)))
def test_any_body_the_decoder_accepts_encodes_back_to_itself(
    parts: tuple[int, MessageType, int, bytes],
) -> None:
    version, kind, seq, payload = parts
    head = bytes([version, kind]) + seq.to_bytes(2, "big") + payload
    body = head + crc16_ccitt_false(head).to_bytes(2, "big")
    try:
        frame = decode_body(body)
    except FrameError:
        return
    assert encode_body(frame) == body


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_decode_body_raises_nothing_but_frame_errors(body: bytes) -> None:
    try:
        frame = decode_body(body)
    except FrameError:
        return
    assert isinstance(frame, Frame)


# -- chunking -----------------------------------------------------------------------


@settings(deadline=None)
@given(frame_lists, st.data())
def test_any_chunking_of_a_stream_gives_the_same_frames(
    sent: list[Frame], data: st.DataObject
) -> None:
    stream = b"".join(encode(frame) for frame in sent)
    assert feed_all([stream]) == sent
    assert feed_all(chunked(data, stream)) == sent


@settings(deadline=None)
@given(streams, st.data())
def test_any_chunking_of_any_bytes_gives_the_same_results(
    stream: bytes, data: st.DataObject
) -> None:
    at_once = [outcome(r) for r in feed_all([stream])]
    assert [outcome(r) for r in feed_all(chunked(data, stream))] == at_once


# -- noise ----------------------------------------------------------------------------


@st.composite
def noisy_streams(draw: st.DrawFn) -> tuple[bytes, list[Frame]]:
    """Frames with noise before, between and inside them; returns the stream and the
    frames whose bytes arrived intact."""
    pieces: list[bytes] = []
    intact: list[Frame] = []
    for frame in draw(st.lists(frames, min_size=1, max_size=6)):
        if draw(st.booleans()):
            pieces.append(draw(garbage))
        wire = encode(frame)
        if draw(st.integers(0, 3)) == 0:
            at = draw(st.integers(1, len(wire) - 1))
            wire = wire[:at] + draw(garbage) + wire[at:]
        else:
            intact.append(frame)
        pieces.append(wire)
    if draw(st.booleans()):
        pieces.append(draw(garbage))
    return b"".join(pieces), intact


@settings(deadline=None)
@given(noisy_streams(), st.data())
def test_noise_never_costs_a_frame_that_arrived_intact(
    noisy: tuple[bytes, list[Frame]], data: st.DataObject
) -> None:
    stream, intact = noisy
    for chunks in ([stream], chunked(data, stream)):
        results = feed_all(chunks)
        assert all(isinstance(r, Frame | FrameError) for r in results)
        assert is_subsequence(intact, (r for r in results if isinstance(r, Frame)))


@settings(deadline=None)
@given(streams, st.data())
def test_random_bytes_never_raise_and_memory_stays_bounded(
    stream: bytes, data: st.DataObject
) -> None:
    decoder = FrameDecoder()
    for chunk in chunked(data, stream):
        for result in decoder.feed(chunk):
            assert isinstance(result, Frame | FrameError)
        assert decoder.pending <= MAX_ENCODED


@settings(deadline=None)
@given(st.binary(max_size=600))
def test_decoder_holds_only_the_bytes_after_the_last_delimiter(buffer: bytes) -> None:
    decoder = FrameDecoder()
    results = decoder.feed(buffer)
    assert all(isinstance(result, Frame | FrameError) for result in results)
    tail = buffer[buffer.rfind(0) + 1 :]  # the whole buffer when it has no delimiter
    # An over-long tail has been reported as too long and dropped.
    assert decoder.pending == (len(tail) if len(tail) <= MAX_ENCODED else 0)


# -- COBS -----------------------------------------------------------------------------

non_zero_runs = st.integers(0, 800).map(lambda n: bytes((i % 255) + 1 for i in range(n)))


@settings(deadline=None)
@given(st.one_of(st.binary(max_size=1000), non_zero_runs))
def test_cobs_round_trips_with_at_most_one_byte_per_254(data: bytes) -> None:
    encoded = cobs.encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + max(1, -(-len(data) // 254))
    assert cobs.decode(encoded) == data
