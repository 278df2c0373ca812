"""Keeping Python's cyclic garbage collector off meterline's hot paths.

The collector runs every ~700 net allocations of container objects and, as long-lived objects
pile up, walks all of them again in its full collections. meterline's hot loops allocate many
objects that outlive the loop (rows, in-flight sends, stream events), so the collector cost up
to a quarter of the CPU there (measured with gc.callbacks in the benchmarks).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

SERVICE_GEN0_THRESHOLD = 50_000


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off, restoring its previous state after.

    For short, allocation-heavy loops inside a library (the producer's sender, the sink's
    Arrow conversion), where the process's collector settings are the application's.
    Reference counting still frees everything meanwhile; the collector resumes on the first
    allocation after the block. Keep blocks short (ms): the switch is process-wide.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def tune_for_service() -> None:
    """For a process meterline owns (the worker), once start-up is done: freeze what start-up
    loaded (modules, the price catalog, settings live as long as the process, so full
    collections need not walk them) and collect the youngest generation every 50,000
    allocations instead of 700. Cycles are still collected, later and in fewer passes."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(SERVICE_GEN0_THRESHOLD, middle, oldest)
