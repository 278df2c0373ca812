"""DedupIndex: event ids seen within the de-duplication window, in chunks (pure).

Ids are stored per batch and partition as one chunk (one changelog message instead of one per
event); the index maps each id to its chunk. Chunks older than the window expire whole, so
memory is bounded by the ids seen within the window.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

CHUNK_IDS = 2000
"""Ids per chunk at most: keeps a changelog message well under Kafka's 1 MB default."""


@dataclass(frozen=True, slots=True)
class DedupChunk:
    key: str
    partition: int
    seen_at: float
    ids: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"p": self.partition, "t": self.seen_at, "ids": list(self.ids)}

    @classmethod
    def from_json(cls, key: str, data: dict[str, Any]) -> DedupChunk:
        return cls(key, int(data["p"]), float(data["t"]), tuple(data["ids"]))


def make_chunks(partition: int, first_offset: int, seen_at: float, ids: Sequence[str]) -> Iterator[DedupChunk]:
    """Chunks for a batch's new ids; keys are deterministic (`partition:offset:n`) so a replay rewrites the same."""
    for n, start in enumerate(range(0, len(ids), CHUNK_IDS)):
        yield DedupChunk(f"{partition}:{first_offset}:{n}", partition, seen_at, tuple(ids[start : start + CHUNK_IDS]))


class DedupIndex:
    """Which event ids were seen, and which chunks have outlived the window."""

    def __init__(self, window_seconds: float) -> None:
        self.window_seconds = window_seconds
        self._chunk_of: dict[str, str] = {}
        self._chunks: dict[str, DedupChunk] = {}
        self._expiry: dict[int, list[tuple[float, str]]] = defaultdict(list)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._chunk_of

    def __len__(self) -> int:
        return len(self._chunk_of)

    @property
    def chunk_count(self) -> int:
        return len(self._chunks)

    def add(self, chunk: DedupChunk) -> None:
        if chunk.key in self._chunks:
            self._forget(chunk.key)
        self._chunks[chunk.key] = chunk
        for event_id in chunk.ids:
            self._chunk_of[event_id] = chunk.key
        heapq.heappush(self._expiry[chunk.partition], (chunk.seen_at, chunk.key))

    def expire(self, partition: int, now: float, limit: int = 100) -> list[str]:
        """Drop up to `limit` chunks of `partition` seen before `now - window`; return their keys."""
        heap = self._expiry[partition]
        cutoff = now - self.window_seconds
        dropped: list[str] = []
        while heap and heap[0][0] < cutoff and len(dropped) < limit:
            _, key = heapq.heappop(heap)
            chunk = self._chunks.get(key)
            if chunk is not None and chunk.seen_at < cutoff:
                self._forget(key)
                dropped.append(key)
        return dropped

    def _forget(self, key: str) -> None:
        chunk = self._chunks.pop(key)
        for event_id in chunk.ids:
            if self._chunk_of.get(event_id) == key:
                del self._chunk_of[event_id]
