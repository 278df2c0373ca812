"""A short GIL switch interval while a native call works beside busy Python code.

The embedded ClickHouse engine releases the GIL while it ingests an insert, but takes it back
briefly many times per insert. Each time it waits until the thread holding the GIL reaches
the interpreter's switch interval (5 ms by default), so a thread converting the next chunk
in Python doubled the insert's time (measured: 200-350 ms alone, 360-700 ms beside it). With
a 0.2 ms interval the insert runs at nearly its own speed and the conversion loses little.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

QUICK_SWITCH_INTERVAL = 0.0002
"""Seconds a thread may hold the GIL while another waits for it, inside quick_gil_handoff()."""

_lock = threading.Lock()
_holders = 0
_saved_interval = 0.0


@contextmanager
def quick_gil_handoff(interval: float = QUICK_SWITCH_INTERVAL) -> Iterator[None]:
    """Run the block with the switch interval at most `interval`; restore it after.

    The interval is process-wide: blocks may overlap (in any threads), and the previous value
    comes back when the last one ends.
    """
    global _holders, _saved_interval
    with _lock:
        if _holders == 0:
            _saved_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(interval, _saved_interval))
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                sys.setswitchinterval(_saved_interval)
