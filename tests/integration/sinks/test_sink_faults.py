"""Faults for real: a sink killed between write and commit, and ClickHouse refusing writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterline.sinks.client import open_client
from meterline.sinks.runner import SinkRunner
from tests.support.samples import sample_priced_events

from .support import (
    committed_to_the_end,
    crash_after_writing,
    create_topics,
    expected_totals,
    produce_priced,
    recorded_batch_ranges,
    run_sink_to_the_end,
    sink_settings,
    stored_totals,
    totals,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).resolve().parent


def test_a_sink_killed_between_write_and_commit_leaves_no_duplicate(
    kafka_bootstrap: str, topic_prefix: str, chdb_dsn: str
) -> None:
    create_topics(kafka_bootstrap, topic_prefix, partitions=1)
    events = sample_priced_events(300, seed=21)
    settings = sink_settings(kafka_bootstrap, topic_prefix, chdb_dsn, batch_rows=1000, batch_seconds=0.2)
    produce_priced(kafka_bootstrap, settings.topic("usage.priced"), events)

    # A sink cutting batches of 120 writes offsets 0-119 (and maybe 120-239), then dies before committing them.
    written = crash_after_writing(kafka_bootstrap, topic_prefix, chdb_dsn, 120)
    crashed_rows = 120 * len(written)
    stored = stored_totals(chdb_dsn)
    assert stored["raw_rows"] == stored["hourly_requests"] == crashed_rows

    # A new sink with a different batch size re-reads from offset 0: the recorded ranges
    # are re-cut alike, so ClickHouse drops that block again, in raw and rollup tables.
    run_sink_to_the_end(settings, kafka_bootstrap)
    client = open_client(chdb_dsn)
    try:
        assert totals(client) == expected_totals(events)
        ranges = recorded_batch_ranges(client)
        assert ranges == [*written, (crashed_rows, 299)]
    finally:
        client.close()


def test_writes_failing_for_a_while_are_retried_then_land_exactly_once(
    kafka_bootstrap: str, topic_prefix: str, chdb_dsn: str
) -> None:
    create_topics(kafka_bootstrap, topic_prefix)
    events = sample_priced_events(400, seed=31)
    settings = sink_settings(kafka_bootstrap, topic_prefix, chdb_dsn, batch_rows=80, retry_max_seconds=0.4)
    runner = SinkRunner(settings)
    runner.start()
    admin = None
    try:
        produce_priced(kafka_bootstrap, settings.topic("usage.priced"), events[:200])
        topics = [settings.topic("usage.priced")]
        # Every batch of the first 200 committed (a later commit of one would count below).
        wait_until(lambda: committed_to_the_end(kafka_bootstrap, runner.consumer_group, topics), "the first 200 rows")
        admin = open_client(chdb_dsn)
        # The rollup table goes away: every insert into usage_events now fails in ClickHouse
        # ("Target table of view doesn't exist"), as it would on a broken or overloaded server.
        admin.command("DETACH TABLE usage_hourly")
        commits_before = runner.stats["commits"]
        produce_priced(kafka_bootstrap, settings.topic("usage.priced"), events[200:])
        wait_until(lambda: runner.stats["write_failures"] >= 3, "writes to fail a few times")
        assert not runner.healthy()
        assert "usage_hourly" in (runner.last_error or "")
        assert runner.stats["commits"] == commits_before, "offsets are held while writes fail"
        assert admin.query("SELECT count() FROM usage_events").result_rows == [(200,)]
        admin.command("ATTACH TABLE usage_hourly")
        wait_until(
            lambda: committed_to_the_end(kafka_bootstrap, runner.consumer_group, topics) and runner.healthy(),
            "the sink to recover",
        )
        assert runner.stats["retries"] >= 3
    finally:
        runner.stop()
        if admin is not None:
            assert totals(admin) == expected_totals(events)
            admin.close()
