"""gc_paused() restores the collector's state; tune_for_service() freezes start-up objects."""

from __future__ import annotations

import gc

import pytest

from meterline.gc_control import SERVICE_GEN0_THRESHOLD, gc_paused, tune_for_service


def test_paused_inside_and_enabled_again_after() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_leaves_a_collector_the_application_disabled_disabled() -> None:
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_enabled_again_when_the_block_raises() -> None:
    with pytest.raises(ValueError), gc_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_tune_for_service_freezes_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_for_service()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (SERVICE_GEN0_THRESHOLD, before[1], before[2])
        # Cycles are still collected.
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
