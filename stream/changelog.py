"""Read the stream's table changelogs back, committed records only, up to their end.

The processor's state (budget cells, fired alerts, seen event ids) lives in three compacted
changelog topics written inside the stream's transactions. On every assignment the worker
rebuilds that state by reading them itself rather than trusting faust's table recovery: with
`exactly_once` and a worker killed right after its first commits, faust's recovery was seen
to hand over empty tables although the changelogs held committed records (a restarted
worker then counted spend from zero and fired alerts again). Reading is simple here: the
keys and values are the processor's own bytes, the last value of a key wins, None deletes.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from meterline.kafka_options import PARTITION_FETCH_BYTES

log = logging.getLogger(__name__)
Name = TypeVar("Name", bound=str)

READ_TIMEOUT_S = 120.0


class ChangelogReadError(RuntimeError):
    """The changelogs could not be read to their end in time."""


async def read_changelogs(
    bootstrap: str,
    topics: Mapping[Name, str],
    partitions: Iterable[int],
    *,
    timeout: float = READ_TIMEOUT_S,
) -> dict[Name, list[tuple[bytes, bytes]]]:
    """The live (key, value) pairs of each table's changelog `topics[name]` on `partitions`.

    Reads with isolation_level=read_committed from the beginning to the last stable offset,
    taken once it has caught up with the high watermark (see `_stable_ends`)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    wanted = sorted(set(partitions))
    result: dict[Name, list[tuple[bytes, bytes]]] = {name: [] for name in topics}
    if not wanted:
        return result
    name_of = {topic: name for name, topic in topics.items()}
    tps = [TopicPartition(topic, p) for topic in topics.values() for p in wanted]
    options = {"bootstrap_servers": bootstrap, "group_id": None, "enable_auto_commit": False}
    consumer = AIOKafkaConsumer(
        **options,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
    )
    probe = AIOKafkaConsumer(**options, isolation_level="read_uncommitted")
    await consumer.start()
    await probe.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        ends = await _stable_ends(consumer, probe, tps, deadline)
        log.debug(
            "reading changelogs", extra={"ends": {f"{tp.topic}[{tp.partition}]": end for tp, end in ends.items()}}
        )
        latest: dict[str, dict[bytes, bytes | None]] = {topic: {} for topic in topics.values()}
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            if time.monotonic() > deadline:
                left = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(pending))
                raise ChangelogReadError(f"changelogs not read to their end within {timeout:.0f} s: {left}")
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                table = latest[tp.topic]
                for record in records:
                    if record.offset < ends[tp] and record.key is not None:
                        table[record.key] = record.value
            for tp in list(pending):
                # The position moves past transaction markers too, which are never returned.
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
        await probe.stop()
    for topic, table in latest.items():
        result[name_of[topic]] = [(key, value) for key, value in table.items() if value is not None]
    return result


async def _stable_ends(committed: Any, uncommitted: Any, tps: list[Any], deadline: float) -> dict[Any, int]:
    """End offsets once the last stable offset has caught up with the high watermark.

    Right after an assignment that followed a kill -9, the read_committed end of a changelog
    was measured at 0 although committed records lay below it (faust's recovery took that
    for "nothing to restore"); a moment later it was right. The partitions' only writer is
    this worker, which has not written yet, so the two ends must agree: wait until they do."""
    while True:
        stable = await committed.end_offsets(tps)
        high = await uncommitted.end_offsets(tps)
        if all(stable[tp] >= high[tp] for tp in tps):
            return dict(stable)
        if time.monotonic() > deadline:
            behind = ", ".join(
                f"{tp.topic}[{tp.partition}] {stable[tp]} < {high[tp]}" for tp in tps if stable[tp] < high[tp]
            )
            raise ChangelogReadError(
                f"changelogs still hold an open transaction ({behind}); restart the worker, and check "
                "that no other worker with this topic prefix writes them"
            )
        log.info("waiting for an open transaction on the changelogs to end", extra={"behind": len(tps)})
        await asyncio.sleep(0.2)
