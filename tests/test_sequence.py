"""Sequence numbers: new, repeated, gaps filled by resends, acknowledgeable prefix, restarts."""

from __future__ import annotations

from edge.sequence import GIVE_UP_AFTER, SequenceTracker, TrackerState


def verdicts(tracker: SequenceTracker, *seqs: int) -> list[str]:
    return [tracker.observe(seq).verdict.value for seq in seqs]


def test_consecutive_numbers_are_new_and_all_acknowledgeable() -> None:
    tracker = SequenceTracker()
    assert verdicts(tracker, 5, 6, 7) == ["new", "new", "new"]
    assert (tracker.ack_point(), tracker.lost) == (7, 0)


def test_a_repeat_of_a_stored_frame_is_dropped() -> None:
    tracker = SequenceTracker()
    assert verdicts(tracker, 1, 2, 3, 2, 3) == ["new", "new", "new", "repeat", "repeat"]


def test_a_gap_holds_the_ack_back_until_the_resend_fills_it() -> None:
    tracker = SequenceTracker()
    assert verdicts(tracker, 10, 13) == ["new", "new"]
    assert (tracker.ack_point(), tracker.lost) == (10, 2)
    assert verdicts(tracker, 11) == ["new"]  # the resend of a frame noise destroyed
    assert (tracker.ack_point(), tracker.lost) == (11, 1)
    assert verdicts(tracker, 12, 13) == ["new", "repeat"]
    assert (tracker.ack_point(), tracker.lost) == (13, 0)


def test_numbers_wrap_at_65536() -> None:
    tracker = SequenceTracker()
    assert verdicts(tracker, 65534, 65535, 0, 1) == ["new"] * 4
    assert verdicts(tracker, 65535) == ["repeat"]
    assert verdicts(tracker, 3) == ["new"]
    assert tracker.ack_point() == 1
    assert verdicts(tracker, 2) == ["new"]
    assert tracker.ack_point() == 3


def test_a_gap_too_far_behind_to_be_resent_is_given_up() -> None:
    tracker = SequenceTracker()
    verdicts(tracker, 0, 2)
    for seq in range(3, 3 + GIVE_UP_AFTER + 1):
        tracker.observe(seq)
    assert tracker.ack_point() == 3 + GIVE_UP_AFTER
    assert (tracker.lost, tracker.given_up) == (1, 1)


def test_a_number_far_behind_means_the_board_restarted_unseen() -> None:
    tracker = SequenceTracker()
    verdicts(tracker, 1000, 1001)  # far enough behind 0 to be no resend
    assert verdicts(tracker, 0) == ["restart"]
    assert verdicts(tracker, 1) == ["new"]


def test_a_late_gap_filler_is_stamped_just_before_the_frame_that_revealed_its_gap() -> None:
    tracker = SequenceTracker()
    tracker.observe(10, received_us=1_000)
    tracker.observe(13, received_us=5_000)  # 11 and 12 went missing
    tracker.observe(14, received_us=6_000)
    assert tracker.observe(12, received_us=9_000).stamp_us == 4_999
    assert tracker.observe(11, received_us=9_001).stamp_us == 4_998
    assert tracker.observe(14, received_us=9_002).stamp_us is None  # a plain repeat


def test_state_round_trips_so_a_restarted_gateway_resumes_exactly() -> None:
    before = SequenceTracker()
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
