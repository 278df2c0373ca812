"""The sink's pure part: rows and inserts planned from Kafka records, tested exactly."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from meterline.messages import BudgetState, DeadLetter, PricedEvent
from meterline.sinks.insert_plan import (
    INSERT_CHUNK_ROWS,
    InsertBatch,
    JsonInsert,
    OffsetRange,
    RangeBatch,
    SourceRecord,
    exact_inserts,
    insert_chunks,
    plan_batch_log,
    plan_inserts,
    plan_writes,
    record_lines,
)
from meterline.sinks.rows import (
    BUDGET_SNAPSHOT_COLUMNS,
    DLQ_EVENT_COLUMNS,
    SINK_BATCH_COLUMNS,
    UNPRICED_EVENT_COLUMNS,
    USAGE_EVENT_COLUMNS,
)

BERLIN = timezone(timedelta(hours=2))
AT = datetime(2026, 10, 3, 14, 5, 6, 123456, tzinfo=BERLIN)
AT_UTC = datetime(2026, 10, 3, 12, 5, 6, 123456, tzinfo=UTC)
INGESTED = datetime(2026, 10, 3, 12, 5, 7, tzinfo=UTC)


def priced(**changes: object) -> PricedEvent:
    fields: dict[str, object] = {
        "event_id": "ev-1",
        "occurred_at": AT,
        "team": "search",
        "project": "ranker",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1000,
        "output_tokens": 200,
        "cache_read_tokens": 400,
        "tags": {"feature": "chat"},
        "priced": True,
        "price_id": "genai-prices:openai:gpt-4o",
        "price_source": "genai-prices",
        "input_cost_usd": Decimal("0.0015"),
        "cache_read_cost_usd": Decimal("0.0005"),
        "output_cost_usd": Decimal("0.002"),
        "cost_usd": Decimal("0.004"),
        "ingested_at": INGESTED,
    }
    fields.update(changes)
    return PricedEvent.model_validate(fields)


def record(
    offset: int, value: bytes | None, topic: str = "m.usage.priced", key: bytes | None = b"search"
) -> SourceRecord:
    return SourceRecord(topic, 0, offset, key, value, 1_790_000_000_000)


def test_usage_event_row_has_every_priced_event_field_in_column_order() -> None:
    assert set(USAGE_EVENT_COLUMNS) == set(PricedEvent.model_fields)
    event = priced()
    batch = RangeBatch(OffsetRange("m.usage.priced", 0, 10, 10), [record(10, event.model_dump_json().encode())])
    (insert,) = plan_inserts("priced", batch)
    row = dict(zip(insert.columns, insert.rows[0], strict=True))
    assert insert.table == "usage_events" and insert.dedup_token == "m.usage.priced:0:10-10"
    assert row["occurred_at"] == AT_UTC and row["occurred_at"].tzinfo == UTC
    assert row["cost_usd"] == Decimal("0.004000000000") and str(row["cost_usd"]) == "0.004000000000"
    assert row["tags"] == {"feature": "chat"} and row["user"] is None and row["latency_ms"] is None
    assert row["cache_read_tokens"] == 400 and row["priced"] is True and row["late"] is False


def test_an_unpriced_event_also_goes_to_unpriced_events_with_the_same_token() -> None:
    event = priced(
        event_id="ev-2",
        priced=False,
        unpriced_reason="no price for acme/x",
        price_id=None,
        price_source=None,
        input_cost_usd=Decimal(0),
        cache_read_cost_usd=Decimal(0),
        output_cost_usd=Decimal(0),
        cost_usd=Decimal(0),
        model="x",
        provider="acme",
    )
    batch = RangeBatch(
        OffsetRange("m.usage.priced", 0, 3, 4), [record(3, event.model_dump_json().encode()), record(4, None)]
    )
    usage, unpriced = plan_inserts("priced", batch)
    assert (usage.table, unpriced.table) == ("usage_events", "unpriced_events")
    assert unpriced == InsertBatch(
        "unpriced_events",
        UNPRICED_EVENT_COLUMNS,
        [
            [
                "ev-2",
                AT_UTC,
                "search",
                "ranker",
                "acme",
                "x",
                1000,
                200,
                400,
                0,
                0,
                False,
                "no price for acme/x",
                INGESTED,
            ]
        ],
        "m.usage.priced:0:3-4",
    )


def test_budget_states_become_snapshots_and_tombstones_are_skipped() -> None:
    state = BudgetState(
        team="search",
        budget="monthly",
        period="2026-10",
        period_start=datetime(2026, 10, 1, tzinfo=UTC),
        period_end=datetime(2026, 11, 1, tzinfo=UTC),
        spend_usd=Decimal("12.5"),
        limit_usd=Decimal("100"),
        percent=Decimal("12.5"),
        hard_limit=False,
        over_hard_limit=False,
        unpriced_events=2,
        updated_at=INGESTED,
    )
    batch = RangeBatch(
        OffsetRange("m.budget.state", 0, 7, 8),
        [record(7, None, "m.budget.state"), record(8, state.model_dump_json().encode(), "m.budget.state")],
    )
    assert plan_inserts("budget", batch) == [
        InsertBatch(
            "budget_snapshots",
            BUDGET_SNAPSHOT_COLUMNS,
            [
                [
                    "search",
                    "monthly",
                    "2026-10",
                    datetime(2026, 10, 1, tzinfo=UTC),
                    datetime(2026, 11, 1, tzinfo=UTC),
                    Decimal("12.500000000000"),
                    Decimal("100.000000000000"),
                    Decimal("12.500000000000"),
                    False,
                    False,
                    2,
                    INGESTED,
                ]
            ],
            "m.budget.state:0:7-8",
        )
    ]


def test_dead_letters_are_stored_with_their_original_coordinates() -> None:
    letter = DeadLetter(
        reason="not json",
        error_kind="not_json",
        topic="m.usage",
        partition=2,
        offset=41,
        key_b64=None,
        value_b64="e30=",
        received_at=INGESTED,
    )
    batch = RangeBatch(
        OffsetRange("m.usage.dlq", 0, 0, 0), [record(0, letter.model_dump_json().encode(), "m.usage.dlq")]
    )
    (insert,) = plan_inserts("dlq", batch)
    assert (insert.table, insert.columns, insert.dedup_token) == ("dlq_events", DLQ_EVENT_COLUMNS, "m.usage.dlq:0:0-0")
    assert insert.rows == [["m.usage", 2, 41, 0, 1, "not json", "not_json", None, "e30=", None, None, False, INGESTED]]


def test_every_bad_line_of_a_message_is_its_own_dlq_row() -> None:
    letters = [
        DeadLetter(
            reason=f"line {i}: schema",
            error_kind="schema",
            topic="m.usage",
            partition=0,
            offset=7,
            line_index=i,
            line_count=5,
            key_b64=None,
            value_b64="eyJ4Ijox",
            value_size=9,
            value_sha256="ab" * 32,
            truncated=i == 4,
            received_at=INGESTED,
        )
        for i in (0, 2, 4)
    ]
    records = [record(i, letter.model_dump_json().encode(), "m.usage.dlq") for i, letter in enumerate(letters)]
    (insert,) = plan_inserts("dlq", RangeBatch(OffsetRange("m.usage.dlq", 0, 0, 2), records))
    column = {name: i for i, name in enumerate(DLQ_EVENT_COLUMNS)}
    key = ("topic", "partition", "offset", "line_index")
    assert [tuple(row[column[name]] for name in key) for row in insert.rows] == [
        ("m.usage", 0, 7, i) for i in (0, 2, 4)
    ]
    assert [
        (row[column["line_count"]], row[column["value_size"]], row[column["truncated"]]) for row in insert.rows
    ] == [(5, 9, False), (5, 9, False), (5, 9, True)]


def test_a_record_breaking_the_contract_is_kept_in_dlq_events_not_dropped() -> None:
    good = priced().model_dump_json().encode()
    batch = RangeBatch(OffsetRange("m.usage.priced", 0, 5, 6), [record(5, b"{oops", key=b"k"), record(6, good)])
    usage, dlq = plan_inserts("priced", batch)
    assert len(usage.rows) == 1
    (values,) = dlq.rows
    row = dict(zip(DLQ_EVENT_COLUMNS, values, strict=True))
    assert (row["topic"], row["partition"], row["offset"], row["line_index"], row["line_count"]) == (
        "m.usage.priced",
        0,
        5,
        0,
        1,
    )
    assert row["reason"].startswith("sink could not read a priced message") and row["error_kind"] == "not_json"
    assert row["key_b64"] == base64.b64encode(b"k").decode() and base64.b64decode(row["value_b64"]) == b"{oops"
    assert (row["value_size"], row["value_sha256"], row["truncated"]) == (
        5,
        hashlib.sha256(b"{oops").hexdigest(),
        False,
    )
    assert row["received_at"] == datetime.fromtimestamp(1_790_000_000, tz=UTC)
    # Replayed, the same bytes plan the same row: the token dedups the block.
    assert plan_inserts("priced", batch)[1] == dlq


def test_batch_log_records_every_range() -> None:
    batches = [
        RangeBatch(OffsetRange("m.usage.priced", 0, 0, 9), [record(i, b"x") for i in range(10)]),
        RangeBatch(OffsetRange("m.usage.priced", 1, 5, 5), [record(5, b"x")]),
    ]
    assert plan_batch_log("m.sink", batches) == InsertBatch(
        "sink_batches",
        SINK_BATCH_COLUMNS,
        [["m.sink", "m.usage.priced", 0, 0, 9, 10], ["m.sink", "m.usage.priced", 1, 5, 5, 1]],
        "batches:m.usage.priced:0:0-9,m.usage.priced:1:5-5",
    )


def test_money_beyond_decimal_38_12_goes_to_dlq_events_instead_of_blocking_the_partition() -> None:
    huge = priced(cost_usd=Decimal("1e27")).model_dump_json().encode()
    fits = (
        priced(event_id="ev-2", cost_usd=Decimal("99999999999999999999999999.999999999999")).model_dump_json().encode()
    )
    batch = RangeBatch(OffsetRange("m.usage.priced", 0, 0, 1), [record(0, huge), record(1, fits)])
    usage, dlq = plan_inserts("priced", batch)
    assert usage.rows[0][USAGE_EVENT_COLUMNS.index("cost_usd")] == Decimal("99999999999999999999999999.999999999999")
    reason, kind = DLQ_EVENT_COLUMNS.index("reason"), DLQ_EVENT_COLUMNS.index("error_kind")
    assert dlq.rows[0][reason] == "sink could not read a priced message: 1E+27 USD does not fit Decimal(38, 12)"
    assert dlq.rows[0][kind] == "schema"


def test_a_large_insert_is_cut_into_chunks_by_position_with_their_own_tokens() -> None:
    rows: list[list[object]] = [[i] for i in range(7)]
    batch = InsertBatch("usage_events", ("n",), rows, "t:0:0-6")
    chunks = insert_chunks(batch, chunk_rows=3)
    assert [c.rows for c in chunks] == [[[0], [1], [2]], [[3], [4], [5]], [[6]]]
    assert [c.dedup_token for c in chunks] == ["t:0:0-6/0", "t:0:0-6/1", "t:0:0-6/2"]
    assert {(c.table, c.columns) for c in chunks} == {("usage_events", ("n",))}
    assert insert_chunks(batch, chunk_rows=3) == chunks, "the same rows give the same chunks and tokens"


def test_an_insert_that_fits_one_chunk_keeps_its_token() -> None:
    batch = InsertBatch("usage_events", ("n",), [[1], [2], [3]], "t:0:0-2")
    assert insert_chunks(batch, chunk_rows=3) == [batch]
    assert insert_chunks(InsertBatch("usage_events", ("n",), [], "t:0:5-4"), chunk_rows=3)[0].rows == []


def test_events_in_the_streams_json_are_left_for_clickhouse_to_parse_and_the_rest_planned_exactly() -> None:
    good = [record(i, priced(event_id=f"ev-{i}").model_dump_json().encode()) for i in range(3)]
    no_price = priced(event_id="ev-u", priced=False, unpriced_reason="no price")
    unpriced = record(3, no_price.model_dump_json().encode())
    broken = record(4, b"{oops")
    foreign = record(5, priced(event_id="ev-f").model_dump_json(indent=1).encode())
    batch = RangeBatch(OffsetRange("m.usage.priced", 0, 0, 5), [good[0], unpriced, good[1], broken, good[2], foreign])
    json_insert, usage, unpriced_rows, dlq = plan_writes("priced", batch)
    assert json_insert == JsonInsert(
        "usage_events", [good[0], unpriced, good[1], good[2]], "m.usage.priced:0:0-5/json/0"
    )
    assert json_insert.rows == [r.value for r in json_insert.records]
    # The others exactly as plan_inserts plans them, with the range's own token; the unpriced
    # event's unpriced_events row is planned here too, in the same insert as the others'.
    exact_usage, exact_unpriced, exact_dlq = plan_inserts(
        "priced", RangeBatch(batch.range, [unpriced, broken, foreign])
    )
    assert usage == InsertBatch("usage_events", USAGE_EVENT_COLUMNS, exact_usage.rows[1:], "m.usage.priced:0:0-5")
    assert [row[0] for row in usage.rows] == ["ev-f"]
    assert unpriced_rows == exact_unpriced and [row[0] for row in unpriced_rows.rows] == ["ev-u"]
    assert dlq == exact_dlq and dlq.rows[0][2] == 4
    # Budget states and dead letters keep the exact path.
    state = record(0, b"{}", topic="m.budget.state")
    assert plan_writes("budget", RangeBatch(OffsetRange("m.budget.state", 0, 0, 0), [state])) == plan_inserts(
        "budget", RangeBatch(OffsetRange("m.budget.state", 0, 0, 0), [state])
    )


def test_json_lines_are_cut_into_chunks_by_position_and_fall_back_to_exact_rows_with_their_own_token() -> None:
    value = priced().model_dump_json().encode()
    records = [record(i, value.replace(b'"ev-1"', b'"ev-%d"' % i)) for i in range(INSERT_CHUNK_ROWS + 2)]
    batch = RangeBatch(OffsetRange("m.usage.priced", 0, 0, len(records) - 1), records)
    first, second = plan_writes("priced", batch)
    assert isinstance(first, JsonInsert) and isinstance(second, JsonInsert)
    assert (len(first.records), len(second.records)) == (INSERT_CHUNK_ROWS, 2)
    assert (first.dedup_token, second.dedup_token) == tuple(
        f"m.usage.priced:0:0-{len(records) - 1}/json/{i}" for i in (0, 1)
    )
    assert plan_writes("priced", batch) == [first, second], "a replay plans the same writes"

    bad = record(9, value.replace(b'"ev-1"', b'"ev-bad"').replace(b'"input_tokens":1000', b'"input_tokens":-5'))
    no_price = record(10, priced(event_id="ev-u", priced=False).model_dump_json().encode())
    fallback = JsonInsert("usage_events", [records[0], bad, no_price], "t/json/0")
    usage, dlq = exact_inserts(fallback)  # no unpriced_events rows: plan_writes planned those
    assert (usage.table, usage.dedup_token, [row[0] for row in usage.rows]) == (
        "usage_events",
        "t/json/0",
        ["ev-0", "ev-u"],
    )
    assert (dlq.table, dlq.dedup_token, dlq.rows[0][2]) == ("dlq_events", "t/json/0", 9)
    assert dlq.rows[0][DLQ_EVENT_COLUMNS.index("reason")].startswith(
        "sink could not read a priced message: input_tokens"
    )


def test_a_packed_record_is_its_lines_and_a_bad_line_is_its_own_dead_letter() -> None:
    good = [priced(event_id=f"e{i}").model_dump_json().encode() for i in range(3)]
    value = b"\n".join([good[0], b"{oops", b"", good[1], b"  ", good[2]])
    lines = record_lines(record(9, value))
    assert [(line.offset, line.line_index, line.line_count) for line in lines] == [(9, i, 4) for i in range(4)]
    assert [line.value for line in lines] == [good[0], b"{oops", good[1], good[2]], "blank lines are no events"
    assert record_lines(record(3, good[0])) == [record(3, good[0])], "one line: the record itself"
    assert record_lines(record(4, None)) == [record(4, None)]
    assert record_lines(record(5, b"\n \r\n\n")) == [record(5, b"\n \r\n\n")], "only blank lines: the record"
    (blank,) = plan_inserts("priced", RangeBatch(OffsetRange("m.usage.priced", 0, 5, 5), [record(5, b"\n \r\n\n")]))
    assert blank.table == "dlq_events", "a record of nothing but blank lines is dead-lettered, not dropped"
    usage, dlq = plan_inserts("priced", RangeBatch(OffsetRange("m.usage.priced", 0, 9, 9), lines))
    assert [row[USAGE_EVENT_COLUMNS.index("event_id")] for row in usage.rows] == ["e0", "e1", "e2"]
    (values,) = dlq.rows
    row = dict(zip(DLQ_EVENT_COLUMNS, values, strict=True))
    assert (row["offset"], row["line_index"], row["line_count"]) == (9, 1, 4)
    assert base64.b64decode(row["value_b64"]) == b"{oops", "the bad line's own bytes, not the whole record's"
    json_usage = plan_writes("priced", RangeBatch(OffsetRange("m.usage.priced", 0, 9, 9), lines))[0]
    assert isinstance(json_usage, JsonInsert) and json_usage.rows == [good[0], good[1], good[2]]
