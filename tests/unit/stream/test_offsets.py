"""The offset book that finds holes in what the consumer delivered (pure)."""

from __future__ import annotations

from meterline.stream.offsets import OffsetHole, OffsetTracker, judge_hole, resume_offsets


def test_a_batch_that_starts_at_the_committed_offset_has_no_hole() -> None:
    tracker = OffsetTracker()
    tracker.reset({0: 550, 1: 10})
    assert tracker.holes([(0, 550), (0, 551), (1, 10)]) == []


def test_a_batch_that_starts_past_the_committed_offset_has_a_hole_before_it() -> None:
    tracker = OffsetTracker()
    tracker.reset({0: 550})
    # The captured failover defect: faust dropped 550..831 and delivered 832 first.
    assert tracker.holes([(0, 832), (0, 833)]) == [OffsetHole(0, 550, 831)]
    assert OffsetHole(0, 550, 831).size == 282


def test_holes_inside_a_batch_and_per_partition() -> None:
    tracker = OffsetTracker()
    tracker.reset({0: 0, 1: 5})
    found = tracker.holes([(1, 5), (0, 0), (0, 1), (0, 4), (1, 9), (0, 5)])
    assert found == [OffsetHole(0, 2, 3), OffsetHole(1, 6, 8)]


def test_an_unknown_start_is_taken_from_the_first_batch() -> None:
    tracker = OffsetTracker()
    tracker.reset({0: None})  # no committed offset: the topic may start past 0 (retention)
    assert tracker.holes([(0, 1200), (0, 1201)]) == []
    tracker.advance([(0, 1200), (0, 1201)])
    assert tracker.next_offset(0) == 1202
    assert tracker.holes([(0, 1203)]) == [OffsetHole(0, 1202, 1202)]


def test_without_a_committed_offset_the_first_batch_must_start_at_the_log_start() -> None:
    start = resume_offsets({0: 550, 1: None, 2: None}, {1: 0, 2: 1200})
    assert start == {0: 550, 1: 0, 2: 1200}
    tracker = OffsetTracker()
    tracker.reset(start)
    # The cluster defect: nobody had committed usage[1] and the first batch began at 22.
    assert tracker.holes([(1, 22), (1, 23), (2, 1200)]) == [OffsetHole(1, 0, 21)]


def test_a_log_start_not_read_leaves_the_start_unknown() -> None:
    assert resume_offsets({0: None, 1: 7}, {}) == {0: None, 1: 7}


def test_holes_do_not_move_the_book_and_advance_does() -> None:
    tracker = OffsetTracker()
    tracker.reset({0: 100})
    assert tracker.holes([(0, 100), (0, 101)]) == []
    assert tracker.next_offset(0) == 100
    tracker.advance([(0, 100), (0, 101)])
    assert tracker.next_offset(0) == 102
    tracker.advance([(0, 50)])  # never backwards
    assert tracker.next_offset(0) == 102


def test_offsets_below_the_next_one_are_stale() -> None:
    tracker = OffsetTracker()
    tracker.reset({0: 100, 1: None})
    assert tracker.stale(0, 99)
    assert not tracker.stale(0, 100)
    assert not tracker.stale(1, 0)  # unknown start: nothing is stale yet
    tracker.advance([(0, 100)])
    assert tracker.stale(0, 100)


def test_a_reset_forgets_the_previous_assignment() -> None:
    tracker = OffsetTracker()
    tracker.reset({0: 10, 1: 20})
    tracker.advance([(0, 30)])
    tracker.reset({1: 25})
    assert tracker.next_offset(0) is None
    assert tracker.next_offset(1) == 25


def test_a_hole_without_records_is_empty_whatever_is_committed() -> None:
    hole = OffsetHole(0, 10, 12)
    assert judge_hole(hole, 0, None) == "empty"
    assert judge_hole(hole, 0, 5) == "empty"


def test_records_the_group_committed_past_were_processed_by_the_previous_owner() -> None:
    hole = OffsetHole(1, 350, 623)
    assert judge_hole(hole, 274, 624) == "committed"
    assert judge_hole(hole, 274, 900) == "committed"


def test_records_not_committed_past_were_skipped() -> None:
    hole = OffsetHole(1, 350, 623)
    assert judge_hole(hole, 274, None) == "skipped"
    assert judge_hole(hole, 274, 350) == "skipped"
    # Committed into the middle of the hole: its tail was never processed.
    assert judge_hole(hole, 274, 623) == "skipped"
