"""Named fault points in the stream's batch path, for fault tests against a real worker.

`stream.inject_faults = "after_send:2"` makes the worker raise `InjectedFault` the 2nd time
it reaches `after_send`; several points are separated by commas. Empty (the default), every
`reach()` is a no-op. The points, in the order one batch passes them (per partition for the
send and flush points):

    before_flush, before_send, after_send, after_flush, before_commit, after_commit
"""

from __future__ import annotations

from collections import Counter
from typing import Literal, get_args

FaultPoint = Literal["before_flush", "before_send", "after_send", "after_flush", "before_commit", "after_commit"]
FAULT_POINTS: tuple[str, ...] = get_args(FaultPoint)


class InjectedFault(RuntimeError):  # noqa: N818 - a fault raised on purpose, not an error of ours
    """Raised at a fault point that `stream.inject_faults` names."""


class FaultPlan:
    """When to raise: the n-th arrival at each named point."""

    def __init__(self, at: dict[str, int] | None = None) -> None:
        self.at = dict(at or {})
        self.reached: Counter[str] = Counter()

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """`"point:n,point:n"`; ValueError naming what is wrong."""
        at: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            point, _, count = part.partition(":")
            if point not in FAULT_POINTS:
                raise ValueError(f"unknown fault point {point!r}: use one of {', '.join(FAULT_POINTS)}")
            if not count.isdigit() or int(count) < 1:
                raise ValueError(f"fault point {point!r} needs a count of 1 or more, as in {point}:1")
            at[point] = int(count)
        return cls(at)

    def reach(self, point: FaultPoint) -> None:
        if not self.at:
            return
        self.reached[point] += 1
        if self.reached[point] == self.at.get(point):
            raise InjectedFault(f"injected fault at {point} (arrival {self.reached[point]})")
