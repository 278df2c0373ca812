"""Whether the sink's consumer stopped taking records it has been assigned (pure: no I/O).

kafka-python 3.0.12 was seen (three brokers, tests/integration/cluster) finishing a group join
and never syncing the next generation: the rebalance that follows the first assignment when the
leader's metadata changes ("Revoking previously assigned partitions" right after "Setting
newly assigned partitions", then "Successfully joined group … Generation 2" and no sync). The
partitions stayed assigned but pending revocation: positions reset, no fetch, poll() empty for
minutes while the priced events waited. The soak saw it once more 20 s after the broker leading
one of its partitions was killed. The sink watches for that: records it could read
(its position below the partition's last stable offset) and no position moving for a while.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from meterline.sinks.buffer import TopicPartition


@dataclass
class StallWatch:
    """Says when no assigned partition moved for `after_s` while one of them has records to read."""

    after_s: float
    _since: float | None = None
    _last: dict[TopicPartition, int] = field(default_factory=dict)

    def observe(self, now: float, positions: Mapping[TopicPartition, int], ends: Mapping[TopicPartition, int]) -> bool:
        """Whether the consumer is stalled, from its positions and the partitions' end offsets
        (read_committed: the last stable offset, so an open transaction is no stall)."""
        behind = any(ends.get(tp, position) > position for tp, position in positions.items())
        moved = dict(positions) != self._last
        self._last = dict(positions)
        if not behind or moved:
            self._since = None
            return False
        if self._since is None:
            self._since = now
        return now - self._since >= self.after_s

    def reset(self) -> None:
        self._since = None
        self._last = {}
