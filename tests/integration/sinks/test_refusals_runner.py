"""SinkRunner against the real broker and engine: a batch ClickHouse refuses for its data is
written past (cut, a row dead-lettered) and the sink stays healthy; an engine that is away is
waited for, offsets held."""

from __future__ import annotations

import threading

import pytest

from meterline.services.kafka_local import find_free_port
from meterline.sinks.client import open_client
from meterline.sinks.insert_plan import RangeBatch
from meterline.sinks.migrations import apply_migrations
from meterline.sinks.runner import FlushStep, SinkRunner
from tests.support.samples import sample_priced_events

from .support import (
    committed_to_the_end,
    create_topics,
    expected_totals,
    produce_priced,
    sink_settings,
    totals,
    wait_until,
)
from .test_refusals import REFUSING_CONSTRAINT, late_events, refused_by_the_engine

pytestmark = pytest.mark.integration


def test_a_batch_the_engine_refuses_is_written_past_and_later_events_of_every_team_land(
    kafka_bootstrap: str, topic_prefix: str, chdb_dsn: str
) -> None:
    create_topics(kafka_bootstrap, topic_prefix, partitions=1)
    settings = sink_settings(kafka_bootstrap, topic_prefix, chdb_dsn, batch_rows=10_000, batch_seconds=0.5)
    late = late_events(101)
    refused = refused_by_the_engine(late[3])
    later = sample_priced_events(200, seed=51)
    crashed = threading.Event()

    def crash_once(step: FlushStep, batches: list[RangeBatch]) -> None:
        # The first insert of a refused batch's pieces lands, then the write dies: the
        # sink retries it, i.e. replays it, with the same pieces and tokens.
        if step == "inserted" and not crashed.is_set():
            crashed.set()
            raise RuntimeError("killed between two pieces")

    admin = open_client(chdb_dsn)
    apply_migrations(admin)
    admin.command(REFUSING_CONSTRAINT)
    admin.close()
    runner = SinkRunner(settings, on_flush_step=crash_once)
    runner.start()
    try:
        produce_priced(kafka_bootstrap, settings.topic("usage.priced"), [*late, refused])
        wait_until(
            lambda: runner.stats["unwritable_rows"] >= 1 and runner.stats["commits"] > 0,
            "the refused batch to be written past",
        )
        assert crashed.is_set() and runner.stats["write_failures"] >= 1
        produce_priced(kafka_bootstrap, settings.topic("usage.priced"), later)
        topics = [settings.topic("usage.priced")]
        # Committed to the end rather than counted: a rebalance on a loaded machine makes the
        # sink read and write a batch again (ClickHouse de-duplicates it; the totals below are exact).
        wait_until(
            lambda: committed_to_the_end(kafka_bootstrap, runner.consumer_group, topics) and runner.healthy(),
            "the later events",
        )
        assert runner.healthy(), runner.last_error
    finally:
        runner.stop()
    client = open_client(chdb_dsn)
    try:
        assert totals(client) == expected_totals([*late, *later])
        dlq = client.query("SELECT offset, error_kind FROM dlq_events").result_rows
        assert dlq == [(101, "unwritable")]
    finally:
        client.close()


def test_an_engine_away_for_a_while_is_waited_for_then_written_once(
    kafka_bootstrap: str, topic_prefix: str, chdb_dsn: str
) -> None:
    create_topics(kafka_bootstrap, topic_prefix, partitions=1)
    settings = sink_settings(kafka_bootstrap, topic_prefix, chdb_dsn, retry_max_seconds=0.4)
    events = sample_priced_events(150, seed=52)
    produce_priced(kafka_bootstrap, settings.topic("usage.priced"), events)
    nobody = f"http://127.0.0.1:{find_free_port()}"  # no ClickHouse listens there: connection refused
    opened: list[str] = []

    def factory():
        dsn = nobody if len(opened) < 3 else chdb_dsn
        opened.append(dsn)
        return open_client(dsn)

    runner = SinkRunner(settings, client_factory=factory)
    runner.start()
    try:
        # Written and committed; a rebalance meanwhile (a member starved past its session on a
        # loaded machine) makes the sink write a batch again, which ClickHouse de-duplicates.
        topics = [settings.topic("usage.priced")]
        wait_until(
            lambda: committed_to_the_end(kafka_bootstrap, runner.consumer_group, topics) and runner.healthy(),
            "the sink to open ClickHouse and write",
        )
        assert opened == [nobody] * 3 + [chdb_dsn]
        assert runner.stats["write_failures"] == 3 and runner.stats["retries"] == 3
    finally:
        runner.stop()
    client = open_client(chdb_dsn)
    try:
        assert totals(client) == expected_totals(events)
    finally:
        client.close()
