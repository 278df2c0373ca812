"""The fast write path stores what the plain one did: a batch repeating an event id collapses,
a large batch written in pipelined chunks stays idempotent, a failed insert stops the rest."""

from __future__ import annotations

from datetime import timedelta

import pytest

from meterline.sinks.batches import (
    INSERT_CHUNK_ROWS,
    InsertBatch,
    OffsetRange,
    RangeBatch,
    SourceRecord,
    insert_chunks,
    plan_inserts,
)
from meterline.sinks.errors import SinkWriteError
from meterline.sinks.rows import USAGE_EVENTS
from meterline.sinks.samples import sample_priced_events
from meterline.sinks.writer import InsertPipeline, write_batch

from .support import expected_totals, totals

pytestmark = pytest.mark.integration

TOPIC = "t.usage.priced"


def test_a_batch_repeating_an_event_id_stores_it_once(sink_client) -> None:  # type: ignore[no-untyped-def]
    events = sample_priced_events(50, seed=11)
    again = events[7].model_copy(update={"ingested_at": events[7].ingested_at + timedelta(seconds=30)})
    values = [e.model_dump_json().encode() for e in [*events, again]]
    records = [SourceRecord(TOPIC, 0, i, None, value, 0) for i, value in enumerate(values)]
    for insert in plan_inserts("priced", RangeBatch(OffsetRange(TOPIC, 0, 0, len(values) - 1), records)):
        write_batch(sink_client, insert)

    # No FINAL: the block itself was collapsed at insert (optimize_on_insert stays on here).
    assert sink_client.query("SELECT count(), uniqExact(event_id) FROM usage_events").result_rows == [(50, 50)]
    kept = sink_client.query(
        "SELECT ingested_at FROM usage_events WHERE event_id = {id:String}", parameters={"id": again.event_id}
    ).result_rows
    assert kept == [(again.ingested_at,)], "the later ingested_at wins, as ReplacingMergeTree(ingested_at) says"


def test_a_batch_of_distinct_events_is_stored_row_for_row(sink_client) -> None:  # type: ignore[no-untyped-def]
    events = sample_priced_events(2_000, seed=12)
    records = [SourceRecord(TOPIC, 0, i, None, e.model_dump_json().encode(), 0) for i, e in enumerate(events)]
    for insert in plan_inserts("priced", RangeBatch(OffsetRange(TOPIC, 0, 0, len(events) - 1), records)):
        write_batch(sink_client, insert)

    stored = sink_client.query(
        "SELECT event_id, team, project, provider, model, status, price_id, input_tokens, latency_ms, cost_usd "
        "FROM usage_events ORDER BY event_id"
    ).result_rows
    expected = sorted(
        (e.event_id, e.team, e.project, e.provider, e.model, e.status, e.price_id, e.input_tokens, e.latency_ms, e.cost_usd)
        for e in events
    )
    assert stored == expected
    hourly = sink_client.query("SELECT sum(requests), sum(cost_usd) FROM usage_hourly").result_rows
    assert hourly == [(2_000, sum((e.cost_usd for e in events), start=events[0].cost_usd * 0))]


def test_a_batch_larger_than_a_chunk_is_written_once_even_after_a_crash_between_chunks(sink_client) -> None:  # type: ignore[no-untyped-def]
    events = sample_priced_events(INSERT_CHUNK_ROWS + 3_000, seed=13)
    records = [SourceRecord(TOPIC, 0, i, None, e.model_dump_json().encode(), 0) for i, e in enumerate(events)]
    inserts = plan_inserts("priced", RangeBatch(OffsetRange(TOPIC, 0, 0, len(events) - 1), records))
    usage = next(i for i in inserts if i.table == USAGE_EVENTS)
    assert len(insert_chunks(usage)) == 2

    # A crash after the first chunk landed: only it is in ClickHouse, the offsets uncommitted.
    write_batch(sink_client, insert_chunks(usage)[0])
    assert totals(sink_client)["raw_rows"] == INSERT_CHUNK_ROWS
    # The re-delivered range is cut alike: the first chunk is deduplicated, the second written.
    for insert in inserts:
        write_batch(sink_client, insert)
    assert totals(sink_client) == expected_totals(events)
    # And once more, whole: nothing changes in the raw table or the rollup.
    hourly = sink_client.query("SELECT * FROM usage_hourly ORDER BY ALL").result_rows
    for insert in inserts:
        write_batch(sink_client, insert)
    assert totals(sink_client) == expected_totals(events)
    assert sink_client.query("SELECT * FROM usage_hourly ORDER BY ALL").result_rows == hourly


def test_a_failed_insert_raises_and_the_inserts_queued_after_it_are_skipped(sink_client) -> None:  # type: ignore[no-untyped-def]
    events = sample_priced_events(20, seed=14)
    records = [SourceRecord(TOPIC, 0, i, None, e.model_dump_json().encode(), 0) for i, e in enumerate(events)]
    (usage,) = [i for i in plan_inserts("priced", RangeBatch(OffsetRange(TOPIC, 0, 0, 19), records)) if i.table == USAGE_EVENTS]
    missing = InsertBatch("no_such_table", usage.columns, usage.rows, usage.dedup_token)

    with pytest.raises(SinkWriteError, match="no_such_table") as raised:
        with InsertPipeline(sink_client) as pipeline:
            pipeline.submit(missing)
            pipeline.submit(usage)
    assert "meterline migrate" in str(raised.value), "the error says what to do"
    assert totals(sink_client)["raw_rows"] == 0, "nothing lands after a failed insert"
    # The caller's retry writes everything.
    with InsertPipeline(sink_client) as pipeline:
        pipeline.submit(usage)
    assert totals(sink_client)["raw_rows"] == 20
