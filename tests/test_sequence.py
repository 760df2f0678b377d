"""Sequence numbers: new, repeated, gaps filled by resends, acknowledgeable prefix, restarts."""

from __future__ import annotations

from edge.sequence import GIVE_UP_AFTER, SequenceTracker, TrackerState


def started(boot: int = 1) -> SequenceTracker:
    """A tracker that saw the board's HELLO: its first number starts the boot."""
    tracker = SequenceTracker()
    assert tracker.hello(boot)
    return tracker


def verdicts(tracker: SequenceTracker, *seqs: int) -> list[str]:
    return [tracker.observe(seq).verdict.value for seq in seqs]


def test_consecutive_numbers_are_new_and_all_acknowledgeable() -> None:
    tracker = started()
    assert verdicts(tracker, 5, 6, 7) == ["new", "new", "new"]
    assert (tracker.ack_point(), tracker.lost) == (7, 0)


def test_a_repeat_of_a_stored_frame_is_dropped() -> None:
    tracker = started()
    assert verdicts(tracker, 1, 2, 3, 2, 3) == ["new", "new", "new", "repeat", "repeat"]


def test_a_gap_holds_the_ack_back_until_the_resend_fills_it() -> None:
    tracker = started()
    assert verdicts(tracker, 10, 13) == ["new", "new"]
    assert (tracker.ack_point(), tracker.lost) == (10, 2)
    assert verdicts(tracker, 11) == ["new"]  # the resend of a frame noise destroyed
    assert (tracker.ack_point(), tracker.lost) == (11, 1)
    assert verdicts(tracker, 12, 13) == ["new", "repeat"]
    assert (tracker.ack_point(), tracker.lost) == (13, 0)


def test_numbers_wrap_at_65536() -> None:
    tracker = started()
    assert verdicts(tracker, 65534, 65535, 0, 1) == ["new"] * 4
    assert verdicts(tracker, 65535) == ["repeat"]
    assert verdicts(tracker, 3) == ["new"]
    assert tracker.ack_point() == 1
    assert verdicts(tracker, 2) == ["new"]
    assert tracker.ack_point() == 3


def test_a_gap_too_far_behind_to_be_resent_is_given_up() -> None:
    tracker = started()
    verdicts(tracker, 0, 2)
    for seq in range(3, 3 + GIVE_UP_AFTER + 1):
        tracker.observe(seq)
    assert tracker.ack_point() == 3 + GIVE_UP_AFTER
    assert (tracker.lost, tracker.given_up) == (1, 1)


def test_a_number_far_behind_means_the_board_restarted_unseen() -> None:
    tracker = started()
    verdicts(tracker, 1000, 1001)  # far enough behind 0 to be no resend
    assert verdicts(tracker, 0) == ["restart"]
    assert verdicts(tracker, 1) == ["new"]


def test_a_late_gap_filler_is_stamped_just_before_the_frame_that_revealed_its_gap() -> None:
    tracker = started()
    tracker.observe(10, received_us=1_000)
    tracker.observe(13, received_us=5_000)  # 11 and 12 went missing
    tracker.observe(14, received_us=6_000)
    assert tracker.observe(12, received_us=9_000).stamp_us == 4_999
    assert tracker.observe(11, received_us=9_001).stamp_us == 4_998
    assert tracker.observe(14, received_us=9_002).stamp_us is None  # a plain repeat


def test_state_round_trips_so_a_restarted_gateway_resumes_exactly() -> None:
    before = started()
    verdicts(before, 100, 103)
    after = SequenceTracker(TrackerState(before.state.last, before.state.gaps))
    assert [seq for seq, _ in after.state.gaps] == [101, 102]
    assert verdicts(after, 101, 103, 102, 104) == ["new", "repeat", "new", "new"]
    assert after.ack_point() == 104


def test_a_hello_with_a_new_boot_number_starts_numbering_afresh() -> None:
    tracker = SequenceTracker()
    assert tracker.hello(boot=7)
    verdicts(tracker, 0, 1, 2)
    assert tracker.hello(boot=8)
    assert verdicts(tracker, 0) == ["new"]
    assert tracker.ack_point() == 0


def test_a_resent_hello_of_the_same_boot_is_judged_by_its_number() -> None:
    tracker = SequenceTracker()
    tracker.hello(boot=7)
    verdicts(tracker, 0, 1, 2)
    restarted = SequenceTracker(tracker.state)  # the gateway restarted from its store
    assert not restarted.hello(boot=7)
    assert verdicts(restarted, 0, 1, 2, 3) == ["repeat", "repeat", "repeat", "new"]


# -- a board's WINDOW, and a gateway that joins mid-stream ------------------------------


def held(window_seq: int, *seqs: int) -> int:
    """A WINDOW's bitmap: bit i set for the number ``window_seq - 1 - i``."""
    return sum(1 << ((window_seq - 1 - seq) % 0x10000) for seq in seqs)


def test_a_window_gives_up_a_gap_the_board_no_longer_holds_and_the_ack_moves_past_it() -> None:
    tracker = started()
    verdicts(tracker, *range(10), 12)  # 10 and 11 went missing
    assert verdicts(tracker, 13) == ["new"]  # the WINDOW's own number

    given_up = tracker.window(13, held(13, 11, 12), dropped=1)

    assert given_up == 1
    assert [seq for seq, _ in tracker.state.gaps] == [11]
    assert tracker.ack_point() == 10  # 10 will never come; 11 is on its way
    assert verdicts(tracker, 11, 12) == ["new", "repeat"]
    assert tracker.ack_point() == 13
    assert (tracker.lost, tracker.given_up, tracker.board_dropped) == (1, 1, 1)


def test_a_window_describes_the_256_numbers_before_it_across_the_wrap() -> None:
    tracker = started()
    verdicts(tracker, 65530, 65535, 2)  # gaps 65531..65534 and 0, 1
    tracker.observe(3)

    tracker.window(3, held(3, 65533, 0, 2), dropped=0)

    assert [seq for seq, _ in tracker.state.gaps] == [0, 65533]
    assert tracker.ack_point() == 65532


def test_a_window_that_is_not_the_newest_number_gives_nothing_up() -> None:
    tracker = started()
    verdicts(tracker, 0, 3)

    assert tracker.window(2, 0, dropped=4) == 0  # its number filled a gap: out of line
    assert [seq for seq, _ in tracker.state.gaps] == [1, 2]
    assert tracker.board_dropped == 4


def test_the_dropped_count_is_the_boards_own_for_its_boot_and_survives_a_restart() -> None:
    tracker = started(boot=7)
    verdicts(tracker, 0, 1)
    tracker.window(1, held(1, 0), dropped=3)
    tracker.window(1, held(1, 0), dropped=2)  # an older count never lowers it

    restarted = SequenceTracker(TrackerState.from_json(tracker.state.to_json()))

    assert restarted.board_dropped == 3
    assert restarted.hello(boot=8)  # the board reset: its count starts again
    assert restarted.board_dropped == 0


def test_state_stored_by_the_previous_version_is_read() -> None:
    stored = '{"last": 104, "gaps": [[101, 5000], [102, 5001]], "boot": 9}'

    state = TrackerState.from_json(stored)

    assert state == TrackerState(104, ((101, 5_000), (102, 5_001)), 9, 0)


def test_a_window_of_another_boot_is_a_new_boot_whose_hello_was_missed() -> None:
    tracker = started(boot=1)
    verdicts(tracker, *range(50))

    assert tracker.window_boot(2)
    tracker.observe(9)
    tracker.window(9, held(9, *range(9)), dropped=0)

    assert [seq for seq, _ in tracker.state.gaps] == list(range(9))
    assert tracker.ack_point() == 65535  # nothing of this boot acknowledged yet
    assert not tracker.hello(boot=2, seq=0)  # its HELLO, resent: judged by its number
    assert verdicts(tracker, *range(9), 9) == ["new"] * 9 + ["repeat"]
    assert tracker.ack_point() == 9
    assert tracker.lost == 0


def test_a_fresh_gateway_acknowledges_nothing_before_the_first_frame_it_saw() -> None:
    tracker = SequenceTracker()  # a fresh state folder: the board was talking before

    assert verdicts(tracker, 40) == ["new"]

    point = tracker.ack_point()
    assert point == (40 - GIVE_UP_AFTER) % 0x10000  # before every number the board may hold
    assert all((point - seq) % 0x10000 >= 0x8000 for seq in range(40))  # covers none of them
    assert tracker.lost == 0  # not seen is not lost


def test_a_fresh_gateway_takes_the_resent_reports_and_the_window_gives_up_the_rest() -> None:
    tracker = SequenceTracker()
    tracker.observe(40, received_us=10_000)
    assert verdicts(tracker, 41) == ["new"]  # the WINDOW of the board's next burst
    assert not tracker.window_boot(5)  # the first news of the boot: adopted
    tracker.window(41, held(41, *range(41)), dropped=0)

    assert not tracker.hello(boot=5, seq=0)  # the boot's HELLO, resent
    first = tracker.observe(0, received_us=20_000)
    assert first.stamp_us == 10_000 - 40  # before the first frame seen, in the board's order
    assert verdicts(tracker, *range(1, 41)) == ["new"] * 39 + ["repeat"]
    assert tracker.ack_point() == 41
    assert tracker.lost == 0


def test_a_hello_seen_first_opens_no_gaps_nothing_precedes_it_in_its_boot() -> None:
    tracker = SequenceTracker()

    assert tracker.hello(boot=3, seq=0)
    assert verdicts(tracker, 0, 1) == ["new", "new"]

    assert tracker.state.gaps == ()
    assert tracker.ack_point() == 1


def test_an_old_board_without_window_costs_repeats_never_a_stall_for_ever() -> None:
    tracker = SequenceTracker()
    tracker.observe(10)
    verdicts(tracker, *range(10))  # its resends fill what it held

    stalled = tracker.ack_point()
    for seq in range(11, 11 + GIVE_UP_AFTER):
        tracker.observe(seq)

    assert stalled == (10 - GIVE_UP_AFTER) % 0x10000
    assert tracker.ack_point() == 10 + GIVE_UP_AFTER
    assert tracker.given_up == GIVE_UP_AFTER - 1 - 10
    assert tracker.lost == 0


def test_a_board_restarted_unseen_opens_the_numbers_before_it_until_its_boot_is_known() -> None:
    tracker = started(boot=1)
    verdicts(tracker, 1000, 1001)

    assert verdicts(tracker, 5) == ["restart"]
    assert not tracker.hello(boot=2, seq=0)  # the new boot's HELLO fills a gap: a resend
    assert verdicts(tracker, 0, 1, 5) == ["new", "new", "repeat"]


def test_lost_never_counts_a_gap_an_earlier_process_counted() -> None:
    before = started()
    verdicts(before, 100, 103)

    after = SequenceTracker(before.state)
    verdicts(after, 101, 102)

    assert (before.lost, after.lost) == (2, 0)
