"""Read back what the producer wrote, with a real kafka-python consumer."""

from __future__ import annotations

import time
from typing import Any


def consume(
    bootstrap: str, topic: str, expected: int, timeout: float = 60.0, settle: float = 1.0, count_lines: bool = False
) -> list[Any]:
    """Every record of `topic` from the beginning; waits until `expected` arrived (or timeout),
    then `settle` seconds more so that extra (duplicate) records would be seen too. With
    `count_lines`, `expected` counts events: the lines of packed (JSON Lines) messages."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=500,
    )
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        settle_until = None
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
            arrived = sum(r.value.count(b"\n") + 1 for r in records) if count_lines else len(records)
            if arrived >= expected:
                settle_until = settle_until or time.monotonic() + settle
                if time.monotonic() >= settle_until:
                    break
    finally:
        consumer.close()
    return records
