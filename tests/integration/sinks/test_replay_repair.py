"""A sink killed inside ClickHouse's commit of a part: the replay writes what the first write
recorded and never stored (sinks/replay_repair.py).

ClickHouse writes a block's deduplication token to the table's deduplication log before it
commits the block's part. A process killed between the two leaves the token and no rows, and
the replay's identical insert is dropped as a duplicate. These tests build that state for real:
a sink writes its first ranges and is SIGKILLed before committing them; then, with no process
holding the database, the parts those inserts made are deleted from disk while the
deduplication log that names them stays. A new sink replays the ranges and must store every
event once: raw rows, rollup and the unpriced list all exact.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from meterline.sinks.client import open_client
from meterline.sinks.replay_repair import STAGING_TABLE
from tests.support.samples import sample_priced_events

from .support import (
    crash_after_writing,
    create_topics,
    expected_totals,
    produce_priced,
    run_sink_to_the_end,
    sink_settings,
    totals,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def lose_parts(dsn: str, table: str, *, forget_tokens: bool = False) -> int:
    """Delete every active part of `table` (all written by the crashed sink) and, with
    `forget_tokens`, its deduplication log too (a table the killed insert never reached).
    Returns how many parts were deleted. No process may hold the database meanwhile."""
    client = open_client(dsn)
    try:
        parts = [
            Path(path)
            for (path,) in client.query(
                "SELECT path FROM system.parts WHERE database = currentDatabase() AND table = {t:String} AND active",
                parameters={"t": table},
            ).result_rows
        ]
        (data_path,) = client.query(
            "SELECT data_paths[1] FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
            parameters={"t": table},
        ).result_rows[0]
    finally:
        client.close()
    log_dir = Path(data_path) / "deduplication_logs"
    # The on-disk layout this test relies on (MergeTree's, as chDB writes it): if it moves, fail here.
    assert parts and all(part.is_dir() and part.parent == Path(data_path) for part in parts), parts
    assert sorted(p.name for p in log_dir.iterdir())[:1] == ["deduplication_log_1.txt"], list(log_dir.iterdir())
    for part in parts:
        shutil.rmtree(part)
    if forget_tokens:
        shutil.rmtree(log_dir)
        log_dir.mkdir()
    return len(parts)


@pytest.mark.parametrize(
    ("lost", "what"),
    [
        (("usage_hourly",), "the rollup's part: raw rows stored, the rollup short"),
        (
            ("usage_events", "usage_hourly*"),
            "the raw part, killed before the view ran: both short, only raw's token kept",
        ),
        (("unpriced_events",), "the unpriced list's part"),
    ],
)
def test_a_replay_writes_what_a_write_killed_inside_its_commit_recorded_and_did_not_store(
    kafka_bootstrap: str, topic_prefix: str, chdb_dsn: str, lost: tuple[str, ...], what: str
) -> None:
    create_topics(kafka_bootstrap, topic_prefix, partitions=1)
    events = sample_priced_events(300, seed=23)
    assert any(not e.priced for e in events[:120]), "the first range holds unpriced events"
    settings = sink_settings(kafka_bootstrap, topic_prefix, chdb_dsn, batch_rows=1000, batch_seconds=0.2)
    produce_priced(kafka_bootstrap, settings.topic("usage.priced"), events)
    written = crash_after_writing(kafka_bootstrap, topic_prefix, chdb_dsn, 120)
    stored = events[: 120 * len(written)]

    for table in lost:
        lose_parts(chdb_dsn, table.rstrip("*"), forget_tokens=table.endswith("*"))
    client = open_client(chdb_dsn)
    try:
        # What a repair killed half-way leaves, in a shape from before some migration: a staging
        # table holding a stray row. The next repair must neither attach it nor trip over it.
        client.command(f"CREATE TABLE {STAGING_TABLE} (event_id String) ENGINE = MergeTree ORDER BY event_id")
        client.command(f"INSERT INTO {STAGING_TABLE} SETTINGS async_insert = 0 VALUES ('stray')")
        short = totals(client)
        expected_crash = expected_totals(stored)
        assert short != expected_crash, f"the lost parts ({what}) show"
    finally:
        client.close()

    runner = run_sink_to_the_end(settings, kafka_bootstrap)
    client = open_client(chdb_dsn)
    try:
        assert totals(client) == expected_totals(events), what
        hourly = client.query(
            "SELECT sum(error_requests), sum(unpriced_requests), sum(output_tokens), sum(cache_saving_usd) "
            "FROM usage_hourly"
        ).result_rows
        raw = client.query(
            "SELECT countIf(status = 'error'), countIf(NOT priced), sum(output_tokens), sum(cache_saving_usd) "
            "FROM usage_events FINAL"
        ).result_rows
        assert hourly == raw, "every rollup measure agrees with the raw table"
        assert client.query("SELECT count() FROM usage_events WHERE event_id = 'stray'").result_rows == [(0,)]
    finally:
        client.close()
    assert runner.stats["replay_checks"] == len(written), "every replayed range was checked"
    assert runner.stats["repaired_rows"] > 0, f"{what}: rows were written again"


def test_a_clean_replay_finds_nothing_to_write(kafka_bootstrap: str, topic_prefix: str, chdb_dsn: str) -> None:
    """The usual case of a kill between write and commit: every part landed; the check writes nothing."""
    create_topics(kafka_bootstrap, topic_prefix, partitions=1)
    events = sample_priced_events(200, seed=29)
    settings = sink_settings(kafka_bootstrap, topic_prefix, chdb_dsn, batch_rows=1000, batch_seconds=0.2)
    produce_priced(kafka_bootstrap, settings.topic("usage.priced"), events)
    written = crash_after_writing(kafka_bootstrap, topic_prefix, chdb_dsn, 100)

    runner = run_sink_to_the_end(settings, kafka_bootstrap)
    assert runner.stats["replay_checks"] == len(written)
    assert runner.stats["repaired_rows"] == 0
    client = open_client(chdb_dsn)
    try:
        assert totals(client) == expected_totals(events)
    finally:
        client.close()
