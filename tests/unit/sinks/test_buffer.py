"""BatchBuffer: cuts by size and by time (with a fake clock), and re-cuts replays alike."""

from __future__ import annotations

from meterline.sinks.buffer import BatchBuffer
from meterline.sinks.insert_plan import OffsetRange, SourceRecord, record_lines

T = "m.usage.priced"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rec(offset: int, partition: int = 0) -> SourceRecord:
    return SourceRecord(T, partition, offset, None, b"v", 0)


def ranges(batches) -> list[tuple[int, int, int, int]]:
    return [(b.range.partition, b.range.first, b.range.last, len(b.records)) for b in batches]


def test_due_by_size_and_cut_into_batches_of_at_most_batch_rows() -> None:
    buffer = BatchBuffer(batch_rows=4, batch_seconds=5, now=Clock())
    for offset in range(3):
        buffer.add(rec(offset))
    assert not buffer.due()
    for offset in range(3, 9):
        buffer.add(rec(offset))
    assert buffer.due()
    assert ranges(buffer.take()) == [(0, 0, 3, 4), (0, 4, 7, 4), (0, 8, 8, 1)]
    assert len(buffer) == 0 and not buffer.due()


def test_due_by_age_of_the_oldest_record() -> None:
    clock = Clock()
    buffer = BatchBuffer(batch_rows=100, batch_seconds=0.5, now=clock)
    buffer.add(rec(0, partition=1))
    clock.now += 0.3
    buffer.add(rec(0, partition=0))
    assert not buffer.due() and abs(buffer.seconds_until_due() - 0.2) < 1e-9
    clock.now += 0.2
    assert buffer.due()
    assert ranges(buffer.take()) == [(0, 0, 0, 1), (1, 0, 0, 1)]


def test_due_at_once_when_the_consumer_finds_nothing_more_but_never_for_unknown_partitions() -> None:
    buffer = BatchBuffer(batch_rows=100, batch_seconds=5, now=Clock())
    assert not buffer.due(idle=True), "nothing held"
    buffer.assign([(T, 1)])
    buffer.add(rec(0, partition=1))
    assert not buffer.due(idle=True), "a partition whose recorded ranges are not loaded waits"
    buffer.add(rec(0))
    assert not buffer.due() and buffer.due(idle=True)
    assert ranges(buffer.take()) == [(0, 0, 0, 1)]


def test_refetched_offsets_are_held_once() -> None:
    buffer = BatchBuffer(batch_rows=10, batch_seconds=1, now=Clock())
    for offset in (0, 1, 1, 0, 2):
        buffer.add(rec(offset))
    assert len(buffer) == 3


def test_unknown_partitions_are_held_until_their_recorded_ranges_are_loaded() -> None:
    clock = Clock()
    buffer = BatchBuffer(batch_rows=2, batch_seconds=1, now=clock)
    buffer.assign([(T, 0)])
    buffer.add(rec(0))
    buffer.add(rec(1))
    clock.now += 5
    assert not buffer.due() and buffer.take() == []
    buffer.set_recorded((T, 0), [])
    assert ranges(buffer.take()) == [(0, 0, 1, 2)]


def test_a_replay_is_cut_at_the_recorded_boundaries_whatever_the_batch_size() -> None:
    clock = Clock()
    buffer = BatchBuffer(batch_rows=1000, batch_seconds=1, now=clock)
    buffer.assign([(T, 0)])
    buffer.set_recorded((T, 0), [OffsetRange(T, 0, 10, 14), OffsetRange(T, 0, 15, 16)])
    for offset in range(10, 14):
        buffer.add(rec(offset))
    clock.now += 10
    assert not buffer.due(), "an incomplete recorded range waits for its last offset"
    for offset in range(14, 20):
        buffer.add(rec(offset))
    assert buffer.due()
    assert ranges(buffer.take()) == [(0, 10, 14, 5), (0, 15, 16, 2), (0, 17, 19, 3)]


def test_a_replayed_range_with_compacted_offsets_completes_from_the_consumer_position() -> None:
    buffer = BatchBuffer(batch_rows=1000, batch_seconds=1, now=Clock())
    buffer.set_recorded((T, 0), [OffsetRange(T, 0, 0, 9)])
    buffer.add(rec(2))
    buffer.add(rec(5))
    assert not buffer.due({(T, 0): 6})
    assert buffer.due({(T, 0): 11})
    assert ranges(buffer.take({(T, 0): 11})) == [(0, 0, 9, 2)]


def test_revoked_partitions_are_forgotten() -> None:
    buffer = BatchBuffer(batch_rows=10, batch_seconds=1, now=Clock())
    buffer.add(rec(0, 0))
    buffer.add(rec(0, 1))
    buffer.revoke([(T, 0)])
    assert ranges(buffer.take()) == [(1, 0, 0, 1)]


def test_a_rebalance_keeps_records_of_partitions_still_owned_and_drops_the_others() -> None:
    # The consumer keeps its fetch position for a partition it owns before and after, so
    # those held records must stay: dropping them would lose them.
    buffer = BatchBuffer(batch_rows=10, batch_seconds=1, now=Clock())
    buffer.reassign([(T, 0), (T, 1)], previously_owned=[])
    assert buffer.unknown() == {(T, 0), (T, 1)}
    buffer.set_recorded((T, 0), [])
    buffer.set_recorded((T, 1), [])
    for partition in (0, 1):
        buffer.add(rec(0, partition))
        buffer.add(rec(1, partition))
    buffer.reassign([(T, 1), (T, 2)], previously_owned=[(T, 0), (T, 1)])
    assert buffer.unknown() == {(T, 2)}, "only the new partition waits for its recorded ranges"
    buffer.set_recorded((T, 2), [])
    assert ranges(buffer.take()) == [(1, 0, 1, 2)]
    buffer.add(rec(5, 1))
    buffer.reassign([], previously_owned=[(T, 1), (T, 2)])  # partitions lost: nothing is kept
    assert len(buffer) == 0 and buffer.unknown() == set()


def packed(offset: int, lines: int, partition: int = 0) -> list[SourceRecord]:
    value = b"\n".join(b'{"n":%d}' % i for i in range(lines))
    return record_lines(SourceRecord(T, partition, offset, b"team", value, 0))


def test_a_cut_never_splits_a_packed_record_and_a_replay_re_forms_its_range() -> None:
    buffer = BatchBuffer(batch_rows=4, batch_seconds=5, now=Clock())
    for offset, count in ((0, 3), (1, 3), (2, 1), (3, 5)):
        for line in packed(offset, count):
            buffer.add(line)
    cut = buffer.take()
    assert ranges(cut) == [(0, 0, 1, 6), (0, 2, 3, 6)], "each cut moves on to its record's last line"
    # A replay of the same records, the first range recorded: cut exactly alike.
    again = BatchBuffer(batch_rows=4, batch_seconds=5, now=Clock())
    again.set_recorded((T, 0), [cut[0].range])
    for offset, count in ((0, 3), (1, 3), (2, 1), (3, 5)):
        for line in packed(offset, count):
            again.add(line)
    replayed = again.take()
    assert [b.records for b in replayed[:1]] == [cut[0].records]
    assert sum(len(b.records) for b in replayed) == 12


def test_lines_of_a_record_fetched_again_are_not_held_twice() -> None:
    buffer = BatchBuffer(batch_rows=100, batch_seconds=5, now=Clock())
    for _ in range(2):
        for line in packed(7, 3):
            buffer.add(line)
    assert len(buffer) == 3
    assert [(r.offset, r.line_index, r.line_count) for b in buffer.take() for r in b.records] == [
        (7, 0, 3),
        (7, 1, 3),
        (7, 2, 3),
    ]
