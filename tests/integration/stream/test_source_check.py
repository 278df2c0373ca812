"""records_in_hole and committed_offset against the real broker: transaction markers and aborted
records are no loss; the committed offset is the group's latest."""

from __future__ import annotations

import asyncio

import pytest

from meterline.stream.offsets import OffsetHole
from meterline.stream.source_check import committed_offset, records_in_hole
from tests.support.topics import create_topics

pytestmark = pytest.mark.integration


async def _write(bootstrap: str, topic: str) -> tuple[list[int], list[int], list[int]]:
    """Three transactions (committed, aborted, committed): the offsets of each one's records."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-writer")
    await producer.start()
    try:
        first, aborted, last = [], [], []
        async with producer.transaction():
            for n in range(3):
                first.append((await producer.send_and_wait(topic, b"%d" % n, partition=0)).offset)
        await producer.begin_transaction()
        aborted.append((await producer.send_and_wait(topic, b"never", partition=0)).offset)
        await producer.abort_transaction()
        async with producer.transaction():
            last.append((await producer.send_and_wait(topic, b"late", partition=0)).offset)
        return first, aborted, last
    finally:
        await producer.stop()


def test_records_in_hole_counts_committed_records_only(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}usage"
    create_topics(kafka_bootstrap, {topic: 1})
    first, aborted, last = asyncio.run(_write(kafka_bootstrap, topic))
    assert first[-1] < aborted[0] < last[0]

    def count(lo: int, hi: int) -> int:
        return asyncio.run(records_in_hole(kafka_bootstrap, topic, OffsetHole(0, lo, hi), timeout=60))

    # Between the first transaction's records and the last one's: its commit marker, the
    # aborted record and its abort marker. Nothing a consumer could have been handed.
    assert count(first[-1] + 1, last[0] - 1) == 0
    # A hole that starts inside the first transaction holds its remaining records.
    assert count(first[1], last[0] - 1) == 2
    assert count(first[0], last[0]) == 4


def test_committed_offset_is_the_groups_latest_commit(kafka_bootstrap: str, topic_prefix: str) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    topic = f"{topic_prefix}usage"
    create_topics(kafka_bootstrap, {topic: 2})
    group = f"{topic_prefix}group"

    def read(partition: int) -> int | None:
        return asyncio.run(committed_offset(kafka_bootstrap, group, topic, partition, timeout=60))

    assert read(0) is None
    committer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    try:
        committer.commit({TopicPartition(topic, 0): OffsetAndMetadata(42, "", -1)})
        assert read(0) == 42
        committer.commit({TopicPartition(topic, 0): OffsetAndMetadata(624, "", -1)})
        assert read(0) == 624
        assert read(1) is None
    finally:
        committer.close()
