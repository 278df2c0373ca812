"""SinkRunner against the real broker and the real embedded ClickHouse engine."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from kafka import KafkaConsumer

from meterline.messages import BudgetState, DeadLetter
from meterline.sinks.client import open_client
from meterline.sinks.runner import SinkRunner
from tests.support.samples import sample_priced_events

from .support import (
    committed_to_the_end,
    create_topics,
    expected_totals,
    produce,
    produce_priced,
    sink_settings,
    totals,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_priced_dlq_and_budget_messages_land_exactly_once(
    kafka_bootstrap: str, topic_prefix: str, chdb_dsn: str
) -> None:
    settings = sink_settings(kafka_bootstrap, topic_prefix, chdb_dsn, batch_rows=70)
    create_topics(kafka_bootstrap, topic_prefix)
    events = sample_priced_events(400, seed=11)
    produce_priced(kafka_bootstrap, settings.topic("usage.priced"), events)
    state = BudgetState(
        team="search",
        budget="monthly",
        period="2026-10",
        period_start=datetime(2026, 10, 1, tzinfo=UTC),
        period_end=datetime(2026, 11, 1, tzinfo=UTC),
        spend_usd=Decimal("40.25"),
        limit_usd=Decimal("100"),
        percent=Decimal("40.25"),
        hard_limit=True,
        over_hard_limit=False,
        updated_at=datetime(2026, 10, 9, tzinfo=UTC),
    )
    letter = DeadLetter(
        reason="schema: team missing",
        error_kind="schema",
        topic=settings.topic("usage"),
        partition=0,
        offset=3,
        key_b64=None,
        value_b64="e30=",
        received_at=datetime(2026, 10, 9, tzinfo=UTC),
    )
    produce(
        kafka_bootstrap,
        settings.topic("budget.state"),
        [(b"search/monthly", state.model_dump_json().encode()), (b"x/y", None)],
    )
    produce(
        kafka_bootstrap, settings.topic("usage.dlq"), [(b"k", letter.model_dump_json().encode()), (b"k", b"not json")]
    )

    runner = SinkRunner(settings)
    runner.start()
    try:
        # Committed up to the end of every topic. (Not the stats: a rebalance under load makes
        # the sink read some records again, which ClickHouse's insert tokens then drop.)
        topics = [settings.topic(name) for name in ("usage.priced", "budget.state", "usage.dlq")]
        wait_until(
            lambda: committed_to_the_end(kafka_bootstrap, runner.consumer_group, topics), "the sink to write everything"
        )
        assert runner.healthy()
    finally:
        runner.stop()
    assert not runner.healthy()
    client = open_client(chdb_dsn)
    try:
        assert totals(client) == expected_totals(events)
        assert client.query("SELECT team, budget, spend_usd, hard_limit FROM budget_snapshots").result_rows == [
            ("search", "monthly", Decimal("40.25"), True)
        ]
        dlq = client.query("SELECT topic, offset, error_kind FROM dlq_events ORDER BY topic").result_rows
        assert dlq == [(settings.topic("usage"), 3, "schema"), (settings.topic("usage.dlq"), 1, "not_json")]
        assert runner.stats["batches_written"] >= 400 // 70
    finally:
        client.close()


def test_a_rebalance_while_records_are_held_loses_and_doubles_nothing(
    kafka_bootstrap: str, topic_prefix: str, chdb_dsn: str
) -> None:
    # Batches are due only after 8 s, so the sink holds records when a second member joins
    # its group and takes partitions away, then leaves and gives them back.
    settings = sink_settings(kafka_bootstrap, topic_prefix, chdb_dsn, batch_rows=100_000, batch_seconds=8.0)
    create_topics(kafka_bootstrap, topic_prefix)
    events = sample_priced_events(300, seed=12)
    produce_priced(kafka_bootstrap, settings.topic("usage.priced"), events)
    runner = SinkRunner(settings)
    runner.start()
    try:
        wait_until(lambda: runner.stats["records_consumed"] >= 300, "the sink to hold the records")
        assert runner.stats["rows_written"] == 0
        other = KafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            group_id=runner.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        other.subscribe([settings.topic("usage.priced")])
        try:
            deadline_polls = 0
            while not other.assignment() and deadline_polls < 60:
                other.poll(timeout_ms=500, max_records=1)
                deadline_polls += 1
            assert other.assignment(), "the second member got partitions"
        finally:
            other.close()  # leaves the group: the sink gets everything back
        wait_until(lambda: runner.stats["usage_rows"] >= 300 and runner.stats["commits"] > 0, "the sink to write", 60)
        assert runner.healthy(), runner.last_error
        assert runner.stats["commit_failures"] == 0
    finally:
        runner.stop()
    client = open_client(chdb_dsn)
    try:
        assert totals(client) == expected_totals(events)
    finally:
        client.close()


@pytest.mark.parametrize("idle_flush_ms", [30, 0])
def test_a_burst_is_written_once_it_is_in_not_after_batch_seconds(
    kafka_bootstrap: str, topic_prefix: str, chdb_dsn: str, idle_flush_ms: int
) -> None:
    # batch_seconds 60 and batch_rows far above the burst: only the idle rule can write it soon.
    settings = sink_settings(
        kafka_bootstrap, topic_prefix, chdb_dsn, batch_rows=10_000, batch_seconds=60, idle_flush_ms=idle_flush_ms
    )
    create_topics(kafka_bootstrap, topic_prefix)
    produce_priced(kafka_bootstrap, settings.topic("usage.priced"), sample_priced_events(30, seed=12))
    runner = SinkRunner(settings)
    runner.start()
    try:
        wait_until(lambda: runner.stats["records_consumed"] == 30, "the sink to read the burst")
        deadline = time.monotonic() + 15
        while runner.stats["usage_rows"] < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        written = runner.stats["usage_rows"] == 30
        assert written is (idle_flush_ms > 0), "written at once with the idle rule, held for batch_seconds without it"
    finally:
        runner.stop()
    client = open_client(chdb_dsn)
    try:
        assert totals(client)["raw_rows"] == 30, "stop() writes what is held either way"
    finally:
        client.close()
