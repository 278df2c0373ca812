"""ClickHouse refusing rows for their data never stalls the sink: on the real engine, a batch
over the partition limit is cut and written, a row the engine refuses is dead-lettered, a crash
between pieces replays without doubling, and a transient failure is retried as it is."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from meterline.messages import PricedEvent
from meterline.sinks.client import open_client
from meterline.sinks.errors import TransientWriteError
from meterline.sinks.insert_plan import OffsetRange, RangeBatch, SourceRecord, Write, plan_inserts, plan_writes
from meterline.sinks.rows import MAX_PARTITIONS_PER_INSERT
from meterline.sinks.writer import InsertPipeline
from tests.support.samples import sample_priced_events

from .support import expected_totals, totals

pytestmark = pytest.mark.integration

TOPIC = "t.usage.priced"


def late_events(months: int, seed: int = 41) -> list[PricedEvent]:
    """Valid events, one in each of `months` distinct months (2010-01 on): late by years."""
    return [
        event.model_copy(update={"occurred_at": datetime(2010 + i // 12, i % 12 + 1, 5, 10, tzinfo=UTC)})
        for i, event in enumerate(sample_priced_events(months, seed=seed))
    ]


REFUSED_TEAM = "refused-team"
REFUSING_CONSTRAINT = (
    f"ALTER TABLE usage_events ADD CONSTRAINT IF NOT EXISTS no_refused_team CHECK team != '{REFUSED_TEAM}'"
)
"""A rule the engine enforces on every insert (as 0006's occurred_at range, which the contract
now keeps out of the stream's output): the engine really refuses such a row."""


def refused_by_the_engine(event: PricedEvent) -> PricedEvent:
    """`event` for the team REFUSING_CONSTRAINT forbids: valid for the contract, refused by ClickHouse."""
    return event.model_copy(update={"event_id": f"{event.event_id}-refused", "team": REFUSED_TEAM})


def batch_of(events: list[PricedEvent], first: int = 0) -> RangeBatch:
    records = [
        SourceRecord(TOPIC, 0, first + i, e.team.encode(), e.model_dump_json().encode(), 1_790_000_000_000 + i)
        for i, e in enumerate(events)
    ]
    return RangeBatch(OffsetRange(TOPIC, 0, first, first + len(events) - 1), records)


def write(client, writes: Sequence[Write], on_insert=None) -> InsertPipeline:
    with InsertPipeline(client, on_insert=on_insert) as pipeline:
        for item in writes:
            pipeline.submit(item)
    return pipeline


def hourly(client) -> list[tuple]:
    return [
        tuple(r)
        for r in client.query(
            "SELECT hour, team, project, provider, model, sum(requests), sum(cost_usd), sum(input_tokens) "
            "FROM usage_hourly GROUP BY ALL ORDER BY ALL"
        ).result_rows
    ]


def expected_hourly(events: list[PricedEvent]) -> list[tuple]:
    cells: Counter = Counter()
    costs: dict = {}
    tokens: Counter = Counter()
    for e in events:
        at = e.occurred_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
        key = (at.replace(tzinfo=UTC), e.team, e.project or "", e.provider, e.model)
        cells[key] += 1
        costs[key] = costs.get(key, 0) + e.cost_usd
        tokens[key] += e.input_tokens
    return sorted((*k, cells[k], costs[k], tokens[k]) for k in cells)


@pytest.mark.parametrize("path", ["json", "exact"])
def test_a_batch_in_more_months_than_one_insert_may_touch_is_stored_whole_and_the_rollup_is_exact(
    sink_client, path: str
) -> None:
    events = late_events(MAX_PARTITIONS_PER_INSERT + 1) + sample_priced_events(200, seed=42)
    batch = batch_of(events)
    writes: list[Write] = plan_writes("priced", batch) if path == "json" else list(plan_inserts("priced", batch))
    for _ in range(2):  # the second time is the replay of a range that was not committed
        pipeline = write(sink_client, writes)
        assert totals(sink_client) == expected_totals(events)
    assert pipeline.unwritable_rows == 0
    # ClickHouse parses the stream's JSON and refuses the block (too many partitions); the exact
    # path cuts it by month before sending, so the engine never refuses it again.
    assert pipeline.json_fallbacks == (1 if path == "json" else 0)
    assert hourly(sink_client) == expected_hourly(events)
    months = sink_client.query("SELECT uniqExact(toYYYYMM(occurred_at)) FROM usage_events").result_rows
    assert months == [(MAX_PARTITIONS_PER_INSERT + 1 + 2,)]


@pytest.mark.parametrize("path", ["json", "exact"])
def test_a_row_the_engine_refuses_goes_to_dlq_events_and_the_rest_of_the_batch_is_stored(
    sink_client, path: str
) -> None:
    sink_client.command(REFUSING_CONSTRAINT)
    good = sample_priced_events(300, seed=43)
    bad = refused_by_the_engine(good[0])
    events = [*good[:120], bad, *good[120:]]
    batch = batch_of(events)
    writes: list[Write] = plan_writes("priced", batch) if path == "json" else list(plan_inserts("priced", batch))
    for _ in range(2):
        pipeline = write(sink_client, writes)
        assert pipeline.unwritable_rows == 1 and pipeline.refused_inserts >= 1
        assert totals(sink_client) == expected_totals(good)
        dlq = sink_client.query(
            "SELECT topic, partition, offset, line_index, error_kind, reason, key_b64, value_b64, value_size FROM dlq_events"
        ).result_rows
        assert len(dlq) == 1, "replayed, the dead letter is deduplicated like the rows"
    ((topic, partition, offset, line, kind, reason, key, value, size),) = dlq
    assert (topic, partition, offset, line, kind) == (TOPIC, 0, 120, 0, "unwritable")
    assert reason.startswith("ClickHouse refused the row for usage_events: Code: 469") and "no_refused_team" in reason
    assert base64.b64decode(value) == batch.records[120].value and size == len(batch.records[120].value or b"")
    assert base64.b64decode(key or "") == bad.team.encode()
    assert hourly(sink_client) == expected_hourly(good)


@pytest.mark.parametrize("landed_before_crash", [1, 3])
def test_a_crash_between_pieces_then_the_replay_doubles_nothing(sink_client, landed_before_crash: int) -> None:
    # Pieces of both kinds: by month (101 months), then halves around a refused row.
    sink_client.command(REFUSING_CONSTRAINT)
    good = late_events(MAX_PARTITIONS_PER_INSERT + 1) + sample_priced_events(150, seed=44)
    events = [*good[:200], refused_by_the_engine(good[5]), *good[200:]]
    writes = list(plan_inserts("priced", batch_of(events)))
    landed: list[str] = []

    def crash(insert: Write) -> None:
        landed.append(insert.dedup_token)
        if len(landed) == landed_before_crash:
            raise RuntimeError("killed between two inserts")

    with pytest.raises(TransientWriteError, match="killed between two inserts"):
        write(sink_client, writes, on_insert=crash)
    assert 0 < totals(sink_client)["raw_rows"] < len(good), "the crash left part of the batch written"
    tokens: list[str] = []
    write(sink_client, writes, on_insert=lambda insert: tokens.append(insert.dedup_token))
    assert landed == tokens[:landed_before_crash], "the replay cuts the same pieces with the same tokens"
    assert (
        any("/p1" in t for t in tokens)
        and any("/h" in t for t in tokens)
        and any(t.endswith("/unwritable") for t in tokens)
    )
    assert totals(sink_client) == expected_totals(good), (
        "no row doubled in usage_events, none counted twice in usage_hourly"
    )
    assert hourly(sink_client) == expected_hourly(good)
    assert sink_client.query("SELECT count() FROM dlq_events").result_rows == [(1,)]


def test_a_closed_client_is_a_transient_failure_and_a_fresh_client_writes_the_batch_once(sink_dsn: str) -> None:
    from meterline.sinks.migrations import apply_migrations

    events = late_events(MAX_PARTITIONS_PER_INSERT + 1) + sample_priced_events(100, seed=45)
    writes = plan_writes("priced", batch_of(events))
    client = open_client(sink_dsn)
    apply_migrations(client)
    client.close()  # the engine is away: nothing about the data
    with pytest.raises(TransientWriteError) as raised:
        write(client, writes)
    assert raised.value.code is None and "retries with backoff" in str(raised.value)
    client = open_client(sink_dsn)
    try:
        assert totals(client)["raw_rows"] == 0
        pipeline = write(client, writes)
        assert pipeline.unwritable_rows == 0
        assert totals(client) == expected_totals(events)
    finally:
        client.close()


def test_usage_events_refuses_an_occurred_at_its_rollup_cannot_hold(sink_client) -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError

    from meterline.sinks.errors import PermanentWriteError
    from meterline.sinks.writer import classify_write_error

    with pytest.raises(DatabaseError) as raised:
        sink_client.command(
            "INSERT INTO usage_events (event_id, occurred_at, team, provider, model, status, ingested_at) "
            "VALUES ('x', '2200-01-01 00:00:00', 't', 'p', 'm', 'ok', now64())"
        )
    assert raised.value.code == 469 and "occurred_at_in_rollup_range" in str(raised.value)
    assert isinstance(classify_write_error("usage_events", raised.value), PermanentWriteError)
    assert sink_client.query("SELECT count() FROM usage_hourly").result_rows == [(0,)]
