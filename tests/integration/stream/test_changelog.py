"""read_changelogs against the real broker: committed records only, last value wins, None deletes."""

from __future__ import annotations

import asyncio

import pytest

from meterline.stream.changelog import read_changelogs
from tests.support.topics import create_topics

pytestmark = pytest.mark.integration


async def _write(bootstrap: str, topic: str) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-writer")
    await producer.start()
    try:
        async with producer.transaction():
            for partition, key, value in [(0, b"a", b"1"), (0, b"b", b"2"), (1, b"c", b"3")]:
                await producer.send_and_wait(topic, value, key=key, partition=partition)
        async with producer.transaction():
            await producer.send_and_wait(topic, b"1b", key=b"a", partition=0)  # last value wins
            await producer.send_and_wait(topic, None, key=b"b", partition=0)  # a tombstone deletes
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"never", key=b"x", partition=0)
        await producer.abort_transaction()  # an aborted write is never restored
    finally:
        await producer.stop()


def test_committed_latest_values_of_the_asked_partitions(kafka_bootstrap: str, topic_prefix: str) -> None:
    cells, fired = f"{topic_prefix}cells-changelog", f"{topic_prefix}fired-changelog"
    create_topics(kafka_bootstrap, {cells: 2, fired: 2})
    asyncio.run(_write(kafka_bootstrap, cells))

    both = asyncio.run(read_changelogs(kafka_bootstrap, {"cells": cells, "fired": fired}, [0, 1], timeout=60))
    assert sorted(both["cells"]) == [(b"a", b"1b"), (b"c", b"3")]
    assert both["fired"] == []
    only_0 = asyncio.run(read_changelogs(kafka_bootstrap, {"cells": cells}, [0], timeout=60))
    assert only_0 == {"cells": [(b"a", b"1b")]}
    assert asyncio.run(read_changelogs(kafka_bootstrap, {"cells": cells}, [])) == {"cells": []}
