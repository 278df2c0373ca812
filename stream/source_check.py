"""Whether a hole in the offsets a worker received holds records (the I/O half of stream/offsets.py).

Offsets with no committed record behind them are normal (transaction markers, aborted
records); offsets whose records the consumer never delivered are a loss in the making,
unless the group has committed past them meanwhile. This reads the partition directly,
read_committed, as the worker's consumer does, and the group's committed offset as the
broker has it now.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from meterline.stream.offsets import OffsetHole

CHECK_TIMEOUT_S = 30.0


class SourceCheckError(RuntimeError):
    """The topic could not be read in time to tell whether a hole holds records."""


async def records_in_hole(bootstrap: str, topic: str, hole: OffsetHole, *, timeout: float = CHECK_TIMEOUT_S) -> int:
    """How many committed records of `topic` lie at offsets hole.first..hole.last."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tp = TopicPartition(topic, hole.partition)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, hole.first)
        found = 0
        deadline = time.monotonic() + timeout
        # The position moves past markers and aborted records too, which are never returned.
        while await consumer.position(tp) <= hole.last:
            if time.monotonic() > deadline:
                raise SourceCheckError(
                    f"{topic}[{hole.partition}] offsets {hole.first}..{hole.last} not read within {timeout:.0f} s"
                )
            batches = await consumer.getmany(tp, timeout_ms=500)
            found += sum(1 for record in batches.get(tp, []) if hole.first <= record.offset <= hole.last)
        return found
    finally:
        await consumer.stop()


async def log_start_offsets(
    bootstrap: str, topic: str, partitions: Iterable[int], *, timeout: float = CHECK_TIMEOUT_S
) -> dict[int, int]:
    """The first offset each partition of `topic` holds now (where `earliest` begins)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    wanted = [TopicPartition(topic, partition) for partition in sorted(set(partitions))]
    if not wanted:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        try:
            starts = await asyncio.wait_for(consumer.beginning_offsets(wanted), timeout)
        except TimeoutError as exc:
            raise SourceCheckError(f"the first offsets of {topic} not read within {timeout:.0f} s") from exc
        return {tp.partition: int(offset) for tp, offset in starts.items()}
    finally:
        await consumer.stop()


async def committed_offset(
    bootstrap: str, group: str, topic: str, partition: int, *, timeout: float = CHECK_TIMEOUT_S
) -> int | None:
    """The consumer group's committed offset of topic[partition] now (None: nothing committed).

    Fetched with a consumer of the group that never joins it (no subscription): the group's
    members and assignments are untouched.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        try:
            committed = await asyncio.wait_for(consumer.committed(TopicPartition(topic, partition)), timeout)
        except TimeoutError as exc:
            raise SourceCheckError(
                f"the committed offset of {topic}[{partition}] not read within {timeout:.0f} s"
            ) from exc
        return None if committed is None or committed < 0 else int(committed)
    finally:
        await consumer.stop()
