"""Offset continuity of the usage topic: which offsets a batch skipped (pure: no I/O).

faust's fetch loop silently drops a message whose offset is below its own "read offset" of
the partition; after a rebalance that book was seen ahead of the committed offset the
consumer resumed from, and a taken-over partition's events never reached the agent. The
worker watches for holes: a batch of partition p must start where the last one ended (or
at the committed offset after an assignment), and its offsets must follow each other. A
hole is not always a loss (transaction markers and aborted records take offsets too), so
the worker checks the topic before it believes one (stream/source_check.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, order=True)
class OffsetHole:
    """Offsets `first..last` (inclusive) of `partition` that no batch delivered."""

    partition: int
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


class OffsetTracker:
    """The next offset each partition's batch should start at."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}
        self._rewound: dict[int, int] = {}

    def reset(self, committed: Mapping[int, int | None]) -> None:
        """A new assignment: partitions resume at their committed offsets (None: unknown,
        the first batch then sets the start: the topic may begin past 0 after retention)."""
        self._next = {partition: offset for partition, offset in committed.items() if offset is not None}
        self._rewound = {}

    def rewind(self, partition: int, offset: int) -> None:
        """The partition was sought back to `offset` (a failed batch): it resumes there, and
        offsets past it are ignored until `offset` itself arrives again."""
        self._next[partition] = offset
        self._rewound[partition] = offset

    def ahead_of_rewind(self, partition: int, offset: int) -> bool:
        """Whether `offset` was fetched before a rewind of its partition and will come again.
        The rewind ends when its own offset arrives."""
        target = self._rewound.get(partition)
        if target is None:
            return False
        if offset == target:
            del self._rewound[partition]
            return False
        return offset > target

    def holes(self, offsets: Iterable[tuple[int, int]]) -> list[OffsetHole]:
        """The holes in a batch's (partition, offset) pairs, without moving the book."""
        expected = dict(self._next)
        found: list[OffsetHole] = []
        for partition, offset in sorted(offsets):
            start = expected.get(partition)
            if start is not None and offset > start:
                found.append(OffsetHole(partition, start, offset - 1))
            if start is None or offset >= start:
                expected[partition] = offset + 1
        return found

    def stale(self, partition: int, offset: int) -> bool:
        """Whether `offset` of `partition` was already processed since the assignment."""
        start = self._next.get(partition)
        return start is not None and offset < start

    def advance(self, offsets: Iterable[tuple[int, int]]) -> None:
        """The batch's offsets were processed and committed."""
        for partition, offset in offsets:
            if offset + 1 > self._next.get(partition, -1):
                self._next[partition] = offset + 1

    def next_offset(self, partition: int) -> int | None:
        return self._next.get(partition)


def resume_offsets(committed: Mapping[int, int | None], log_start: Mapping[int, int]) -> dict[int, int | None]:
    """Where each partition's first batch must start: its committed offset, or without one the
    start of its log (the consumer resets to `earliest` then). Left unknown, a consumer that
    began past the log's start on a partition nobody committed yet skipped those records
    unseen (measured on the cluster: usage[1] offsets 0..21 lost, the group later committed
    243)."""
    return {
        partition: offset if offset is not None else log_start.get(partition) for partition, offset in committed.items()
    }


HoleVerdict = Literal["empty", "committed", "skipped"]


def judge_hole(hole: OffsetHole, records: int, committed_now: int | None) -> HoleVerdict:
    """What a hole means, from the committed records read back in it and the group's committed
    offset read after that.

    - empty: only transaction markers or aborted records: nothing to process;
    - committed: records, but the group committed past them: an earlier owner of the
      partition processed them in a transaction that ended after this worker read its
      committed offsets at the assignment (seen after kill -9 and a restart);
    - skipped: records nobody processed: the worker must not commit past them.
    """
    if records == 0:
        return "empty"
    if committed_now is not None and committed_now > hole.last:
        return "committed"
    return "skipped"
