"""quick_gil_handoff() shortens the switch interval for its block and restores it after."""

from __future__ import annotations

import sys

import pytest

from meterline.gil_handoff import QUICK_SWITCH_INTERVAL, quick_gil_handoff


def test_shorter_inside_and_restored_after() -> None:
    before = sys.getswitchinterval()
    with quick_gil_handoff():
        assert sys.getswitchinterval() == pytest.approx(QUICK_SWITCH_INTERVAL, rel=0.05)
    assert sys.getswitchinterval() == before


def test_restored_when_the_block_raises() -> None:
    before = sys.getswitchinterval()
    with pytest.raises(RuntimeError), quick_gil_handoff():
        raise RuntimeError("insert failed")
    assert sys.getswitchinterval() == before


def test_overlapping_blocks_restore_the_value_from_before_the_first() -> None:
    before = sys.getswitchinterval()
    outer = quick_gil_handoff()
    inner = quick_gil_handoff()
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)  # the first block ends before the second
    assert sys.getswitchinterval() == pytest.approx(QUICK_SWITCH_INTERVAL, rel=0.05), "still one block running"
    inner.__exit__(None, None, None)
    assert sys.getswitchinterval() == before


def test_an_application_interval_already_shorter_is_kept() -> None:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    try:
        with quick_gil_handoff():
            assert sys.getswitchinterval() == pytest.approx(0.0001, rel=0.05)
        assert sys.getswitchinterval() == pytest.approx(0.0001, rel=0.05)
    finally:
        sys.setswitchinterval(before)
