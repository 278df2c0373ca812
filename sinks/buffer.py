"""Cut consumed records into offset-range batches by size and time (pure; takes a clock).

Replays are cut exactly like the first attempt: ranges already recorded in `sink_batches`
(written or about to be, but not committed) are re-formed with the same boundaries, so they
carry the same insert deduplication token and ClickHouse drops what it already has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from meterline.sinks.insert_plan import OffsetRange, RangeBatch, SourceRecord

TopicPartition = tuple[str, int]
Clock = Callable[[], float]


class BatchBuffer:
    """Buffer records per partition; say when a batch is due; hand out RangeBatches."""

    def __init__(self, batch_rows: int, batch_seconds: float, now: Clock) -> None:
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        self._now = now
        self._records: dict[TopicPartition, list[SourceRecord]] = {}
        self._since: dict[TopicPartition, float] = {}
        self._recorded: dict[TopicPartition, list[OffsetRange]] = {}
        self._unknown: set[TopicPartition] = set()

    # -- partitions ---------------------------------------------------------------------
    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """New partitions: hold their records until `set_recorded` says how to cut them."""
        self._unknown.update(partitions)

    def unknown(self) -> set[TopicPartition]:
        """Assigned partitions whose recorded ranges are not loaded yet."""
        return set(self._unknown)

    def set_recorded(self, tp: TopicPartition, ranges: Iterable[OffsetRange]) -> None:
        """The uncommitted ranges recorded for `tp`: replay cuts them the same way."""
        self._recorded[tp] = sorted(ranges)
        self._unknown.discard(tp)

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget partitions this consumer no longer owns (their new owner replays them)."""
        for tp in partitions:
            self._records.pop(tp, None)
            self._since.pop(tp, None)
            self._recorded.pop(tp, None)
            self._unknown.discard(tp)

    def reassign(self, owned: Iterable[TopicPartition], previously_owned: Iterable[TopicPartition]) -> None:
        """After a rebalance: forget partitions no longer owned; mark new ones unknown. A
        partition owned before and after keeps its records and ranges, because the consumer
        keeps its fetch position (it will not read those records again)."""
        owned, before = set(owned), set(previously_owned)
        self.revoke((self.held_partitions() | self._unknown | set(self._recorded) | before) - owned)
        self.assign(owned - before)

    # -- records ------------------------------------------------------------------------
    def add(self, record: SourceRecord) -> None:
        tp = (record.topic, record.partition)
        held = self._records.setdefault(tp, [])
        if held and (record.offset, record.line_index) <= (held[-1].offset, held[-1].line_index):
            return  # a re-fetch after a seek: already held
        if not held:
            self._since[tp] = self._now()
        held.append(record)

    def __len__(self) -> int:
        return sum(len(held) for held in self._records.values())

    def held_partitions(self) -> set[TopicPartition]:
        return {tp for tp, held in self._records.items() if held}

    def due(self, positions: Mapping[TopicPartition, int] | None = None, *, idle: bool = False) -> bool:
        """True when a batch should be written now: full, old enough, a replay complete, or
        (`idle`: the consumer found nothing more to read) anything held at all."""
        positions = positions or {}
        held = [tp for tp in self._records if tp not in self._unknown and self._records[tp]]
        if any(self._replay_complete(tp, positions) for tp in held if self._recorded.get(tp)):
            return True
        free = [tp for tp in held if not self._recorded.get(tp)]
        if not free:
            return False
        if idle:
            return True
        if sum(len(self._records[tp]) for tp in free) >= self.batch_rows:
            return True
        return self._now() - min(self._since[tp] for tp in free) >= self.batch_seconds

    def seconds_until_due(self) -> float:
        """How long the consumer may wait for more records before the oldest is due."""
        free = [
            tp for tp, held in self._records.items() if held and tp not in self._unknown and not self._recorded.get(tp)
        ]
        if not free:
            return self.batch_seconds
        oldest = min(self._since[tp] for tp in free)
        return max(0.0, self.batch_seconds - (self._now() - oldest))

    def take(self, positions: Mapping[TopicPartition, int] | None = None) -> list[RangeBatch]:
        """Remove and return every batch that can be cut now, at most `batch_rows` each."""
        positions = positions or {}
        batches: list[RangeBatch] = []
        for tp in sorted(self._records):
            if tp in self._unknown:
                continue
            held = self._records[tp]
            recorded = self._recorded.get(tp, [])
            while recorded and held:
                head = recorded[0]
                before = [r for r in held if r.offset < head.first]
                if before:
                    batches.extend(self._chunks(before))
                    held = held[len(before) :]
                    continue
                if not (held[-1].offset >= head.last or positions.get(tp, -1) > head.last):
                    break  # replay not complete yet: wait for the rest of the range
                inside = [r for r in held if r.offset <= head.last]
                batches.append(RangeBatch(head, inside))
                held = held[len(inside) :]
                recorded.pop(0)
            if not recorded:
                batches.extend(self._chunks(held))
                held = []
            self._records[tp] = held
            if held:
                self._since[tp] = self._now()
        return batches

    def _chunks(self, records: list[SourceRecord]) -> list[RangeBatch]:
        """`records` cut every `batch_rows` rows, each cut moved on to the end of the Kafka record
        it falls in: a range holds whole records (its lines share an offset), so a replay, which
        takes every line up to a recorded range's last offset, re-forms it exactly."""
        out = []
        start = 0
        while start < len(records):
            stop = min(start + self.batch_rows, len(records))
            while stop < len(records) and records[stop].offset == records[stop - 1].offset:
                stop += 1
            chunk = records[start:stop]
            first = chunk[0]
            out.append(RangeBatch(OffsetRange(first.topic, first.partition, first.offset, chunk[-1].offset), chunk))
            start = stop
        return out

    def _replay_complete(self, tp: TopicPartition, positions: Mapping[TopicPartition, int]) -> bool:
        head = self._recorded[tp][0]
        held = self._records[tp]
        return held[0].offset < head.first or held[-1].offset >= head.last or positions.get(tp, -1) > head.last
