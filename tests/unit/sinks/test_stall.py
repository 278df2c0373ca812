"""When the sink's consumer counts as stalled (pure)."""

from __future__ import annotations

from meterline.sinks.stall import StallWatch

P0, P1 = ("t.usage.priced", 0), ("t.usage.priced", 1)


def test_records_to_read_and_no_position_moving_for_the_whole_window_is_a_stall() -> None:
    watch = StallWatch(after_s=30)
    assert not watch.observe(0, {P0: 0, P1: 5}, {P0: 100, P1: 5})
    assert not watch.observe(10, {P0: 0, P1: 5}, {P0: 100, P1: 5})  # the first unchanged look starts the clock
    assert not watch.observe(39, {P0: 0, P1: 5}, {P0: 120, P1: 5})
    assert watch.observe(40, {P0: 0, P1: 5}, {P0: 120, P1: 5})


def test_a_position_that_moves_restarts_the_window() -> None:
    watch = StallWatch(after_s=30)
    watch.observe(0, {P0: 0}, {P0: 100})
    watch.observe(20, {P0: 0}, {P0: 100})
    assert not watch.observe(35, {P0: 60}, {P0: 100})
    assert not watch.observe(60, {P0: 60}, {P0: 100})
    assert not watch.observe(89, {P0: 60}, {P0: 100})
    assert watch.observe(90, {P0: 60}, {P0: 100})


def test_caught_up_is_never_a_stall_however_long_nothing_comes() -> None:
    watch = StallWatch(after_s=30)
    for now in range(0, 300, 10):
        # An open transaction holds the last stable offset at the position: nothing to read yet.
        assert not watch.observe(now, {P0: 100, P1: 7}, {P0: 100, P1: 7})


def test_a_partition_without_a_known_end_is_not_behind_and_reset_forgets() -> None:
    watch = StallWatch(after_s=1)
    assert not watch.observe(0, {P0: 3}, {})
    assert not watch.observe(5, {P0: 3}, {})
    watch.observe(10, {P0: 3}, {P0: 9})
    watch.observe(12, {P0: 3}, {P0: 9})
    watch.reset()
    assert not watch.observe(13, {P0: 3}, {P0: 9})
