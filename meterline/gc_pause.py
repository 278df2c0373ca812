"""Pausing Python's cyclic garbage collector around short, allocation-heavy loops."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off, restoring its previous state after.

    For hot loops that allocate many objects that outlive the loop (rows, in-flight sends):
    the collector would otherwise run every ~700 allocations and, as those objects pile up,
    walk all of them again and again. Reference counting still frees everything meanwhile;
    the collector resumes on the first allocation after the block. Keep blocks short (ms):
    the switch is process-wide.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
