"""The fast write path stores what the plain one did: a batch repeating an event id collapses,
a large batch written in pipelined chunks stays idempotent, a failed insert stops the rest, and
the stream's JSON parsed by ClickHouse gives the rows the exact path gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from meterline.events import UsageEvent
from meterline.messages import PricedEvent
from meterline.priced_json import encode_priced_event
from meterline.pricing import PriceCatalog
from meterline.settings import PricingSettings
from meterline.sinks.errors import SinkWriteError
from meterline.sinks.insert_plan import (
    INSERT_CHUNK_ROWS,
    InsertBatch,
    JsonInsert,
    OffsetRange,
    RangeBatch,
    SourceRecord,
    insert_chunks,
    plan_inserts,
    plan_writes,
)
from meterline.sinks.rows import (
    UNPRICED_EVENT_COLUMNS,
    USAGE_EVENT_COLUMNS,
    USAGE_EVENTS,
    unpriced_event_row,
    usage_event_row,
)
from meterline.sinks.writer import InsertPipeline, write_batch
from tests.support.samples import sample_priced_events

from .support import expected_totals, totals

pytestmark = pytest.mark.integration

TOPIC = "t.usage.priced"


def test_a_batch_repeating_an_event_id_stores_it_once(sink_client) -> None:
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


def test_a_batch_of_distinct_events_is_stored_row_for_row(sink_client) -> None:
    events = sample_priced_events(2_000, seed=12)
    records = [SourceRecord(TOPIC, 0, i, None, e.model_dump_json().encode(), 0) for i, e in enumerate(events)]
    for insert in plan_inserts("priced", RangeBatch(OffsetRange(TOPIC, 0, 0, len(events) - 1), records)):
        write_batch(sink_client, insert)

    stored = sink_client.query(
        "SELECT event_id, team, project, provider, model, status, price_id, input_tokens, latency_ms, cost_usd "
        "FROM usage_events ORDER BY event_id"
    ).result_rows
    expected = sorted(
        (
            e.event_id,
            e.team,
            e.project,
            e.provider,
            e.model,
            e.status,
            e.price_id,
            e.input_tokens,
            e.latency_ms,
            e.cost_usd,
        )
        for e in events
    )
    assert stored == expected
    hourly = sink_client.query("SELECT sum(requests), sum(cost_usd) FROM usage_hourly").result_rows
    assert hourly == [(2_000, sum((e.cost_usd for e in events), start=events[0].cost_usd * 0))]


def test_a_batch_larger_than_a_chunk_is_written_once_even_after_a_crash_between_chunks(sink_client) -> None:
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


def test_a_failed_insert_raises_and_the_inserts_queued_after_it_are_skipped(sink_client) -> None:
    events = sample_priced_events(20, seed=14)
    records = [SourceRecord(TOPIC, 0, i, None, e.model_dump_json().encode(), 0) for i, e in enumerate(events)]
    (usage,) = [
        i for i in plan_inserts("priced", RangeBatch(OffsetRange(TOPIC, 0, 0, 19), records)) if i.table == USAGE_EVENTS
    ]
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


def stream_json_values() -> list[bytes]:
    """Priced events as the stream writes them (its own serializer, real prices), in the
    shapes that matter: offsets, sub-second times, unicode and quotes in tags, every field."""
    catalog = PriceCatalog.load(PricingSettings())
    tokyo = timezone(timedelta(hours=9))
    events = [
        UsageEvent(
            event_id="s-full",
            occurred_at=datetime(2026, 10, 31, 23, 59, 59, 999999, tzinfo=tokyo),
            team="search",
            project="ranker",
            app="svc",
            user="ünïcode-user",
            environment="prod",
            provider="anthropic",
            model="claude-sonnet-4-20250514",
            input_tokens=1_000_000_000,
            output_tokens=70,
            cache_read_tokens=3,
            cache_write_tokens=4,
            reasoning_tokens=5,
            batch=True,
            latency_ms=86_400_000,
            status="error",
            request_id="req-1",
            tags={"feature": 'say "hi"\\n', "ключ": "значение", "empty": ""},
        ),
        UsageEvent(
            event_id="s-bare",
            occurred_at=datetime(2026, 10, 1, tzinfo=UTC),
            team="growth",
            provider="openai",
            model="gpt-4o",
        ),
        UsageEvent(
            event_id="s-cached",
            occurred_at=datetime(2026, 10, 2, 1, 2, 3, 4000, tzinfo=UTC),
            team="growth",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=1234,
            output_tokens=56,
            cache_hit=True,
        ),
        UsageEvent(
            event_id="s-unpriced",
            occurred_at=datetime(2026, 10, 2, tzinfo=UTC),
            team="growth",
            provider="acme",
            model="m",
        ),
    ]
    ingested = datetime(2026, 11, 1, 0, 0, 0, 1, tzinfo=UTC).isoformat()
    return [
        encode_priced_event(e, catalog.price_event(e), late=e.event_id == "s-bare", ingested_at=ingested)
        for e in events
    ]


def test_the_streams_json_parsed_by_clickhouse_gives_the_rows_of_the_exact_path(sink_client) -> None:
    values = stream_json_values() + [e.model_dump_json().encode() for e in sample_priced_events(500, seed=15)]
    records = [SourceRecord(TOPIC, 0, i, None, value, 0) for i, value in enumerate(values)]
    writes = plan_writes("priced", RangeBatch(OffsetRange(TOPIC, 0, 0, len(values) - 1), records))
    json_lines = sum(len(w.records) for w in writes if isinstance(w, JsonInsert))
    assert json_lines > 400, "priced events in the stream's JSON take the ClickHouse path"
    with InsertPipeline(sink_client) as pipeline:
        for write in writes:
            pipeline.submit(write)
    assert pipeline.json_fallbacks == 0, "ClickHouse parsed every line itself"

    events = sorted((PricedEvent.model_validate_json(v) for v in values), key=lambda e: e.event_id)
    got = sink_client.query(f"SELECT {', '.join(USAGE_EVENT_COLUMNS)} FROM usage_events ORDER BY event_id").result_rows
    assert [list(row) for row in got] == [usage_event_row(e) for e in events]
    unpriced = sink_client.query(
        f"SELECT {', '.join(UNPRICED_EVENT_COLUMNS)} FROM unpriced_events ORDER BY event_id"
    ).result_rows
    assert [list(row) for row in unpriced] == [unpriced_event_row(e) for e in events if not e.priced]
    assert any(e.event_id == "s-unpriced" and not e.priced for e in events)
    assert totals(sink_client) == expected_totals(events)


def test_a_line_clickhouse_refuses_sends_its_chunk_through_the_exact_path_once(sink_client) -> None:
    events = sample_priced_events(30, seed=16)
    values = [e.model_dump_json().encode() for e in events if e.priced]
    bad = values[3].replace(b'"input_tokens":', b'"input_tokens":-', 1)
    records = [SourceRecord(TOPIC, 0, i, None, value, 0) for i, value in enumerate([*values[:3], bad, *values[4:]])]
    batch = RangeBatch(OffsetRange(TOPIC, 0, 0, len(records) - 1), records)
    (write,) = plan_writes("priced", batch)
    assert isinstance(write, JsonInsert) and len(write.records) == len(values), "the bad line looks like the stream's"

    for _ in range(2):  # the second time is the replay of a range that was not committed
        with InsertPipeline(sink_client) as pipeline:
            pipeline.submit(write)
        assert pipeline.json_fallbacks == 1
        stored = sink_client.query("SELECT count(), sum(cost_usd) FROM usage_events").result_rows
        good = [e for e in events if e.priced and e.event_id != PricedEvent.model_validate_json(values[3]).event_id]
        assert stored == [(len(good), sum((e.cost_usd for e in good), start=good[0].cost_usd * 0))]
        dlq = sink_client.query("SELECT offset, error_kind, reason FROM dlq_events").result_rows
        assert [(offset, kind) for offset, kind, _ in dlq] == [(3, "schema")]
        assert dlq[0][2].startswith("sink could not read a priced message: input_tokens")
    assert sink_client.query("SELECT sum(requests) FROM usage_hourly").result_rows == [(len(good),)]
