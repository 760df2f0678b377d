"""The board's held reports, sans-IO with a fake clock: acks, resends, a bounded window, resets."""

from __future__ import annotations

import struct
from datetime import datetime

import pytest
from pydantic import ValidationError

from firmware_bridge import cobs
from firmware_bridge.codec import DELIMITER, encode
from firmware_bridge.crc import crc16_ccitt_false
from firmware_bridge.emulator import (
    HOLD_HORIZON,
    SHANGHAI,
    Board,
    BookHouseModel,
    EmulatorConfig,
    ReportWindow,
)
from firmware_bridge.emulator.window import covers
from firmware_bridge.messages import (
    Frame,
    Heartbeat,
    Hello,
    Message,
    People,
    Ping,
    ReportAck,
    Resend,
    Seat,
    Window,
)

START = datetime(2024, 6, 3, 9, 0, tzinfo=SHANGHAI)
TIMEOUT = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _board(
    clock: FakeClock, *, first_seq: int = 0, limit: int = 128, retransmit: bool = True
) -> Board:
    model = BookHouseModel(seats=3, start=START, simulate=False, report_interval_s=60)
    model.set_supply(4000)
    window = ReportWindow(
        retransmit_after=TIMEOUT if retransmit else None, limit=limit, clock=clock
    )
    return Board(model, "taoyuan-1", first_seq=first_seq, window=window)


def _ack(seq: int, *, gateway_seq: int = 500) -> bytes:
    return encode(Frame(seq=gateway_seq, message=ReportAck(seq)))


def _resend(*, gateway_seq: int = 600) -> bytes:
    return encode(Frame(seq=gateway_seq, message=Resend()))


def _seqs(frames: list[Frame]) -> list[int]:
    return [frame.seq for frame in frames]


def _messages(frames: list[Frame]) -> list[Message]:
    return [frame.message for frame in frames]


def test_the_spec_example_of_what_an_ack_covers_across_the_wrap() -> None:
    covered = [s for s in range(0x1_0000) if covers(2, s)]

    assert covered == [0, 1, 2, *range(32771, 0x1_0000)]
    assert not covers(2, 3)
    assert not covers(2, 32770)


def test_every_report_is_held_until_a_report_ack_covers_it() -> None:
    clock = FakeClock()
    board = _board(clock)
    sent = board.power_up()  # HELLO, 3 seats, door, heartbeat, people: seq 0..6

    replies = board.receive(_ack(3))

    assert replies == []
    assert board.window.held() == sent[4:]
    assert board.counters.report_acks == 1
    assert board.counters.acked_reports == 4
    assert board.counters.commands == board.counters.malformed == 0


def test_nothing_is_resent_before_the_timeout_then_everything_held_oldest_first() -> None:
    clock = FakeClock()
    board = _board(clock)
    sent = board.power_up()

    clock.now += TIMEOUT - 0.01
    early = board.resend_due()
    clock.now += 0.01
    resent = board.resend_due()

    assert early == []
    window, *again = resent
    assert isinstance(window.message, Window)  # first in the burst, with a new number
    assert again == sent
    assert all(a is b for a, b in zip(again, sent, strict=True))  # the very frames: same bytes
    assert board.resend_due() == []  # the timer started again
    assert board.counters.resent == len(sent)
    assert board.next_seq == len(sent) + 1  # resends take no new numbers, the WINDOW one


def test_progress_restarts_the_timer() -> None:
    clock = FakeClock()
    board = _board(clock)
    sent = board.power_up()

    clock.now += TIMEOUT - 1
    board.receive(_ack(sent[2].seq))
    clock.now += TIMEOUT - 1
    before = board.resend_due()
    clock.now += 1
    after = board.resend_due()

    assert before == []
    assert after[1:] == sent[3:]


def test_an_ack_that_covers_nothing_new_is_no_progress() -> None:
    clock = FakeClock()
    board = _board(clock)
    sent = board.power_up()
    board.receive(_ack(sent[2].seq))

    clock.now += TIMEOUT - 1
    board.receive(_ack(sent[2].seq))  # the same ack again
    clock.now += 1

    assert board.resend_due()[1:] == sent[3:]


def test_acks_compare_across_the_wrap_of_the_sequence_number() -> None:
    clock = FakeClock()
    board = _board(clock, first_seq=0xFFFC)
    sent = board.power_up()  # 65532..65535, 0, 1, 2

    board.receive(_ack(0xFFFF))
    held_after_first = _seqs(board.window.held())
    board.receive(_ack(1))

    assert _seqs(sent) == [0xFFFC, 0xFFFD, 0xFFFE, 0xFFFF, 0, 1, 2]
    assert held_after_first == [0, 1, 2]
    assert _seqs(board.window.held()) == [2]


def test_an_ack_for_a_number_not_used_since_the_reset_is_ignored() -> None:
    clock = FakeClock()
    board = _board(clock)
    board.power_up()  # seq 0..6

    board.receive(_ack(40))  # meant for an earlier boot: would cover 0..6

    assert board.unacknowledged == 7
    assert board.counters.stale_acks == 1
    assert board.counters.acked_reports == 0


def test_a_full_window_drops_the_oldest_heartbeat_first_then_the_oldest_report() -> None:
    clock = FakeClock()
    board = _board(clock, limit=7)
    board.power_up()  # 7 reports: HELLO, seats 1-3, door, heartbeat (seq 5), people

    board.emit([Seat(1, True)])  # window full: the heartbeat goes
    board.emit([Seat(2, True)])  # no heartbeat left: the oldest (HELLO) goes
    board.emit([Heartbeat(60, 4000)])  # the new heartbeat is the oldest heartbeat

    assert [m for m in _messages(board.window.held()) if isinstance(m, Heartbeat | Hello)] == []
    assert board.unacknowledged == 7
    assert board.counters.window_dropped == 3
    fates = [(r.frame.seq, r.fate) for r in board.window.produced() if r.fate == "evicted"]
    assert fates == [(0, "evicted"), (5, "evicted"), (9, "evicted")]


def test_a_report_falls_out_of_the_window_once_256_numbers_old() -> None:
    clock = FakeClock()
    board = _board(clock)
    (seat,) = board.emit([Seat(1, True)])  # seq 0

    for n in range(HOLD_HORIZON - 1):  # replies are numbered too
        board.receive(encode(Frame(seq=n, message=Ping())))
    held_at_255 = board.window.held()
    board.receive(encode(Frame(seq=999, message=Ping())))

    assert held_at_255 == [seat]
    assert board.unacknowledged == 0
    assert board.counters.window_dropped == 1
    assert board.resend_due() == []


def test_a_resend_burst_starts_with_a_window_of_what_is_held_across_the_wrap() -> None:
    clock = FakeClock()
    board = _board(clock, first_seq=0xFFFC)
    sent = board.power_up()  # 65532..65535, 0, 1, 2
    board.receive(_ack(0xFFFD))  # 65532 and 65533 stored

    clock.now += TIMEOUT
    window, *again = board.resend_due()

    assert window.seq == 3  # the next new number
    assert window.message == Window(board.hello().boot, 0, 0b11111)  # 65534 .. 2: 5 back
    assert [n for n in range(1, 257) if window.message.holds(n)] == [1, 2, 3, 4, 5]
    assert again == sent[2:]
    assert board.counters.windows == 1


def test_the_window_counts_what_the_board_gave_up_and_leaves_it_out_of_the_bitmap() -> None:
    clock = FakeClock()
    board = _board(clock, limit=7)
    board.power_up()  # HELLO, seats 1-3, door, heartbeat (seq 5), people: 0..6
    board.emit([Seat(1, True), Seat(2, True)])  # the heartbeat, then the HELLO go: 7, 8

    clock.now += TIMEOUT
    window, *again = board.resend_due()

    assert isinstance(window.message, Window)
    assert window.message.dropped == 2
    assert _seqs(again) == [1, 2, 3, 4, 6, 7, 8]
    assert window.message == Window.of(9, board.hello().boot, 2, [1, 2, 3, 4, 6, 7, 8])


def test_a_report_too_old_once_the_window_is_numbered_is_dropped_before_the_bitmap() -> None:
    clock = FakeClock()
    board = _board(clock)
    board.emit([Seat(1, True)])  # seq 0
    for n in range(HOLD_HORIZON - 1):  # 1..255 are replies
        board.receive(encode(Frame(seq=n, message=Ping())))

    clock.now += TIMEOUT
    burst = board.resend_due()

    assert board.window.held() == []  # numbering the WINDOW (256) made seat 256 numbers old
    assert [(f.seq, f.message) for f in burst] == [(256, Window(board.hello().boot, 1, 0))]


def test_after_drops_each_ack_brings_a_window_until_one_confirms_the_count() -> None:
    clock = FakeClock()
    board = _board(clock, limit=7)
    board.power_up()  # 0..6
    board.emit([Seat(1, True)])  # 7: the heartbeat (5) goes

    first = board.receive(_ack(4))  # progress: the timer starts again, so no burst soon
    again = board.receive(_ack(4))  # the gateway has not stored that WINDOW (8) yet
    confirmed = board.receive(_ack(8))  # it has: the count is known upstream (also in 9)
    later = board.receive(_ack(8))

    assert [(f.seq, f.message) for f in first] == [(8, Window.of(8, board.hello().boot, 1, [6, 7]))]
    assert [f.seq for f in again] == [9]
    assert confirmed == later == []
    assert not board.window.owes_window


def test_a_board_that_gave_nothing_up_sends_no_window_after_an_ack() -> None:
    clock = FakeClock()
    board = _board(clock)
    board.power_up()

    assert board.receive(_ack(2)) == []
    assert board.counters.windows == 0


def test_a_reboot_starts_the_count_of_reports_given_up_again() -> None:
    clock = FakeClock()
    board = _board(clock, limit=7)
    board.power_up()
    board.emit([Seat(1, True)])

    board.reboot()
    clock.now += TIMEOUT
    window, *_ = board.resend_due()

    assert board.counters.window_dropped == 1  # the board's own tally since it was built
    assert isinstance(window.message, Window)
    assert window.message.dropped == 0  # the WINDOW's count is this boot's
    assert not board.window.owes_window


def test_a_reboot_loses_the_window_and_the_ledger_says_so() -> None:
    clock = FakeClock()
    board = _board(clock)
    first_boot = board.power_up()
    board.receive(_ack(first_boot[1].seq))

    second_boot = board.reboot()

    assert board.boot == 2
    assert board.window.held() == second_boot
    assert board.counters.lost_at_reset == len(first_boot) - 2
    produced = board.window.produced()
    assert [(r.boot, r.frame.seq, r.fate) for r in produced[:3]] == [
        (1, 0, "acked"),
        (1, 1, "acked"),
        (1, 2, "reset"),
    ]
    assert [(r.boot, r.fate) for r in produced[len(first_boot) :]] == [(2, "held")] * len(
        second_boot
    )


def test_the_ledger_lists_a_report_once_however_often_it_was_resent() -> None:
    clock = FakeClock()
    board = _board(clock)
    sent = board.power_up()
    for _ in range(3):
        clock.now += TIMEOUT
        board.resend_due()
    board.window.on_wire(sent[0])
    board.window.on_wire(Frame(seq=1, message=sent[1].message))  # equal, but not that frame

    produced = board.window.produced()

    assert [r.frame for r in produced] == sent
    assert [r.attempts for r in produced] == [4] * len(sent)
    assert [r.on_wire for r in produced[:2]] == [True, False]


def test_a_malformed_report_ack_is_dropped_without_a_reply() -> None:
    clock = FakeClock()
    board = _board(clock)
    head = struct.pack(">BBH", 1, 0x44, 7) + b"\x00"  # one payload byte, CRC good
    wire = DELIMITER + cobs.encode(head + struct.pack(">H", crc16_ccitt_false(head))) + DELIMITER

    assert board.receive(wire) == []
    assert board.counters.malformed == 1
    assert board.counters.report_acks == 0


def test_a_resend_request_makes_the_burst_due_at_once_with_a_window_first() -> None:
    clock = FakeClock()
    board = _board(clock)
    sent = board.power_up()

    replies = board.receive(_resend())
    window, *again = board.resend_due()  # the clock has not moved

    assert replies == []  # never answered with ACK or NACK
    assert (window.seq, window.message) == (
        len(sent),
        Window.of(len(sent), board.hello().boot, 0, _seqs(sent)),
    )
    assert all(a is b for a, b in zip(again, sent, strict=True))
    assert board.counters.resend_requests == 1
    assert board.counters.resent == len(sent)
    assert board.counters.commands == board.counters.nacked == 0


def test_the_timer_starts_again_after_a_burst_a_resend_asked_for() -> None:
    clock = FakeClock()
    board = _board(clock)
    board.power_up()
    clock.now += 1
    board.receive(_resend())
    board.resend_due()

    clock.now += TIMEOUT - 0.01
    early = board.resend_due()
    clock.now += 0.01

    assert early == []
    assert len(board.resend_due()) == 1 + board.unacknowledged


def test_a_second_resend_within_half_a_timeout_waits_for_the_guard_to_end() -> None:
    clock = FakeClock()
    board = _board(clock)
    board.power_up()
    board.receive(_resend())
    board.resend_due()

    clock.now += TIMEOUT / 2 - 0.01
    board.receive(_resend())
    within_guard = board.resend_due()
    clock.now += 0.01
    at_guard_end = board.resend_due()

    assert within_guard == []
    assert isinstance(at_guard_end[0].message, Window)  # not a whole timeout later
    assert board.counters.windows == 2
    assert board.counters.resend_requests == 2


def test_the_guard_counts_from_a_burst_the_timer_sent_too() -> None:
    clock = FakeClock()
    board = _board(clock)
    board.power_up()
    clock.now += TIMEOUT
    board.resend_due()  # the timer's burst

    clock.now += 1
    board.receive(_resend())
    within_guard = board.resend_due()
    clock.now += TIMEOUT / 2 - 1
    at_guard_end = board.resend_due()

    assert within_guard == []
    assert len(at_guard_end) == 1 + board.unacknowledged


def test_a_resend_never_puts_the_burst_later_than_the_timer_would() -> None:
    clock = FakeClock()
    board = _board(clock)
    board.power_up()
    board.receive(_resend())
    board.resend_due()

    clock.now += TIMEOUT - 0.5  # past the guard time: a RESEND gets the burst now
    board.receive(_resend())

    assert len(board.resend_due()) == 1 + board.unacknowledged


def test_a_board_holding_nothing_ignores_a_resend() -> None:
    clock = FakeClock()
    board = _board(clock)
    sent = board.power_up()
    board.receive(_ack(sent[-1].seq))

    replies = board.receive(_resend())

    assert replies == board.resend_due() == []
    assert board.counters.windows == 0
    assert board.counters.resend_requests == 1


def test_a_reboot_forgets_the_last_burst_so_a_resend_is_answered_at_once() -> None:
    clock = FakeClock()
    board = _board(clock)
    board.power_up()
    board.receive(_resend())
    board.resend_due()

    second_boot = board.reboot()
    board.receive(_resend())
    window, *again = board.resend_due()

    assert isinstance(window.message, Window)
    assert again == second_boot


def test_a_resend_with_a_payload_byte_is_dropped_without_a_reply() -> None:
    clock = FakeClock()
    board = _board(clock)
    board.power_up()
    head = struct.pack(">BBH", 1, 0x45, 7) + b"\x00"  # one payload byte, CRC good
    wire = DELIMITER + cobs.encode(head + struct.pack(">H", crc16_ccitt_false(head))) + DELIMITER

    assert board.receive(wire) == []
    assert board.resend_due() == []
    assert board.counters.malformed == 1
    assert board.counters.resend_requests == board.counters.nacked == 0


def test_with_retransmission_off_a_resend_is_ignored_silently() -> None:
    clock = FakeClock()
    board = _board(clock, retransmit=False)
    board.power_up()

    replies = board.receive(_resend())

    assert replies == board.resend_due() == []
    assert board.counters.nacked == board.counters.malformed == board.counters.windows == 0


def test_with_retransmission_off_nothing_is_held_and_acks_are_ignored_silently() -> None:
    clock = FakeClock()
    board = _board(clock, retransmit=False)
    board.power_up()

    replies = board.receive(_ack(3))
    clock.now += 1e6

    assert replies == []
    assert board.unacknowledged == 0
    assert board.resend_due() == []
    assert {r.fate for r in board.window.produced()} == {"untracked"}
    assert board.counters.report_acks == 1
    assert board.counters.malformed == board.counters.nacked == 0


def test_the_ledger_keeps_the_newest_reports_within_its_limit() -> None:
    window = ReportWindow(retransmit_after=TIMEOUT, limit=4, clock=FakeClock(), ledger_limit=10)
    frames = [Frame(seq=n, message=People(1, n, 0)) for n in range(25)]
    for frame in frames:
        window.numbered(frame.seq)
        window.produce(frame, boot=1, sim_time=START)

    produced = window.produced()

    assert len(produced) <= 10
    assert [r.frame for r in produced] == frames[-len(produced) :]
    assert window.held() == frames[-4:]


@pytest.mark.parametrize(
    "fields",
    [{"retransmit_after": "PT0S"}, {"ack_window": 0}, {"ack_window": 257}, {"initial_seq": 65536}],
    ids=["zero_timeout", "window_0", "window_beyond_horizon", "seq_65536"],
)
def test_config_refuses_retransmission_settings_that_cannot_work(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EmulatorConfig.model_validate(fields)
