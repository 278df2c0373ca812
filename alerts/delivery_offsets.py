"""Which Kafka offsets may be committed: only past alerts whose deliveries are all recorded. Pure."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class DeliveryOffsets(Generic[P]):
    """Count unfinished deliveries per (partition, offset); report the committable offsets.

    The committable offset of a partition is the lowest offset still waiting, or one past the
    highest offset seen when nothing waits (Kafka commits name the next offset to read).
    """

    def __init__(self) -> None:
        self._waiting: dict[P, dict[int, int]] = {}
        self._next: dict[P, int] = {}
        self._committed: dict[P, int] = {}

    def track(self, partition: P, offset: int, deliveries: int) -> None:
        """Note a consumed message and how many deliveries must finish before it counts as done."""
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)
        if deliveries > 0:
            waiting = self._waiting.setdefault(partition, {})
            waiting[offset] = waiting.get(offset, 0) + deliveries

    def finish(self, partition: P, offset: int) -> None:
        """One delivery of the message at `offset` is recorded."""
        waiting = self._waiting.get(partition)
        if waiting is None or offset not in waiting:
            return  # the partition was revoked meanwhile
        waiting[offset] -= 1
        if waiting[offset] <= 0:
            del waiting[offset]

    def committable(self, partition: P) -> int | None:
        if partition not in self._next:
            return None
        waiting = self._waiting.get(partition)
        return min(waiting) if waiting else self._next[partition]

    def ready(self) -> dict[P, int]:
        """Partitions whose committable offset moved past the last commit."""
        moved = {}
        for partition in self._next:
            offset = self.committable(partition)
            if offset is not None and offset > self._committed.get(partition, -1):
                moved[partition] = offset
        return moved

    def committed(self, offsets: dict[P, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partition: P) -> None:
        """Drop a revoked partition; its unfinished messages are re-read by the next owner."""
        self._waiting.pop(partition, None)
        self._next.pop(partition, None)
        self._committed.pop(partition, None)

    def waiting(self) -> int:
        """Messages whose deliveries are not all recorded yet."""
        return sum(len(offsets) for offsets in self._waiting.values())
