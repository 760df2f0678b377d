"""Sequence numbers: new, repeated, gaps filled by resends, acknowledgeable prefix, restarts."""

from __future__ import annotations

from edge.sequence import GIVE_UP_AFTER, SequenceTracker, TrackerState, Verdict


def verdicts(tracker: SequenceTracker, *seqs: int) -> list[str]:
    return [tracker.observe(seq).value for seq in seqs]


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


def test_state_round_trips_so_a_restarted_gateway_resumes_exactly() -> None:
    before = SequenceTracker()
    verdicts(before, 100, 103)
    after = SequenceTracker(TrackerState(before.state.last, before.state.gaps))
    assert verdicts(after, 101, 103, 102, 104) == ["new", "repeat", "new", "new"]
    assert after.ack_point() == 104


def test_hello_starts_numbering_afresh() -> None:
    tracker = SequenceTracker()
    verdicts(tracker, 500, 502)
    tracker.reset()
    assert verdicts(tracker, 0) == ["new"]
    assert tracker.ack_point() == 0
