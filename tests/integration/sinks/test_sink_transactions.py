"""The stream writes priced events in Kafka transactions: the sink stores committed ones only.

A worker killed mid-batch leaves its transaction to be aborted, and the batch is replayed
(same events, new offsets). A sink reading uncommitted records stored both copies, and the
rollup counted the events twice (found by tests/e2e kill -9 test).
"""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaProducer

from meterline.sinks.client import open_client
from meterline.sinks.runner import SinkRunner
from tests.support.samples import sample_priced_events

from .support import create_topics, expected_totals, sink_settings, totals, wait_until

pytestmark = pytest.mark.integration


def test_aborted_transactions_are_not_written(kafka_bootstrap: str, topic_prefix: str, chdb_dsn: str) -> None:
    create_topics(kafka_bootstrap, topic_prefix, partitions=1)
    settings = sink_settings(kafka_bootstrap, topic_prefix, chdb_dsn)
    aborted, committed = sample_priced_events(40, seed=41), sample_priced_events(60, seed=42)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"{topic_prefix}{uuid.uuid4().hex}")
    producer.init_transactions()
    for events, commit in ((aborted, False), (committed, True)):
        producer.begin_transaction()
        for event in events:
            producer.send(
                settings.topic("usage.priced"), key=event.team.encode(), value=event.model_dump_json().encode()
            )
        producer.flush()
        if commit:
            producer.commit_transaction()
        else:
            producer.abort_transaction()
    producer.close()

    runner = SinkRunner(settings)
    runner.start()
    try:
        wait_until(lambda: runner.stats["usage_rows"] >= 60 and runner.stats["commits"] >= 1, "the committed rows")
    finally:
        runner.stop()
    client = open_client(chdb_dsn)
    try:
        assert totals(client) == expected_totals(committed)
    finally:
        client.close()
