"""Refused inserts planned as pure data: partition pieces, halves, unwritable rows, and which
failures are the data's fault."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError

from meterline.sinks.errors import PermanentWriteError, TransientWriteError
from meterline.sinks.insert_plan import INSERT_CHUNK_ROWS, InsertBatch, SourceRecord, insert_chunks, partition_pieces
from meterline.sinks.refusals import RefusedRow, halves, plan_unwritable
from meterline.sinks.rows import DLQ_EVENT_COLUMNS, MAX_PARTITIONS_PER_INSERT, USAGE_EVENTS
from meterline.sinks.writer import classify_write_error

COLUMNS = ("event_id", "occurred_at")


def monthly(count: int, repeat: int = 1) -> InsertBatch:
    """`count` months from 2010-01, `repeat` rows each, months interleaved; one record per row."""
    rows: list[list[object]] = []
    for turn in range(repeat):
        for month in range(count):
            rows.append([f"e{turn}-{month}", datetime(2010 + month // 12, month % 12 + 1, 9, tzinfo=UTC)])
    sources = [
        SourceRecord("t.usage.priced", 0, i, None, str(row[0]).encode(), 1_790_000_000_000)
        for i, row in enumerate(rows)
    ]
    return InsertBatch(USAGE_EVENTS, COLUMNS, rows, "t:0:0-9", sources)


def test_a_batch_within_the_partition_limit_stays_one_insert_with_its_token() -> None:
    batch = monthly(MAX_PARTITIONS_PER_INSERT, repeat=2)
    assert partition_pieces(batch) == [batch]
    assert insert_chunks(batch) == [batch]


def test_a_batch_over_the_partition_limit_is_cut_by_month_with_derived_tokens() -> None:
    batch = monthly(MAX_PARTITIONS_PER_INSERT + 1, repeat=2)
    first, second = partition_pieces(batch)
    assert (first.dedup_token, second.dedup_token) == ("t:0:0-9/p0", "t:0:0-9/p1")
    months = {(row[1].year, row[1].month) for row in first.rows}
    assert len(months) == MAX_PARTITIONS_PER_INSERT and len(first.rows) == 2 * MAX_PARTITIONS_PER_INSERT
    assert [row[0] for row in second.rows] == ["e0-100", "e1-100"], "the last month, its rows in their order"
    assert [s.offset for s in second.sources or []] == [100, 201], "each row keeps its record"
    assert partition_pieces(batch) == [first, second], "a replay cuts the same pieces"
    assert sorted(map(tuple, first.rows + second.rows)) == sorted(map(tuple, batch.rows))


def test_a_large_batch_is_chunked_by_position_then_each_chunk_by_partition() -> None:
    rows: list[list[object]] = [[f"e{i}", datetime(2026, 1, 1, tzinfo=UTC)] for i in range(INSERT_CHUNK_ROWS)]
    late = monthly(MAX_PARTITIONS_PER_INSERT + 1)
    batch = InsertBatch(USAGE_EVENTS, COLUMNS, rows + late.rows, "t")
    tokens = [chunk.dedup_token for chunk in insert_chunks(batch)]
    assert tokens == ["t/0", "t/1/p0", "t/1/p1"]


def test_halves_cut_at_the_middle_with_their_own_tokens_down_to_one_row() -> None:
    batch = monthly(5)
    left, right = halves(batch)
    assert (left.dedup_token, right.dedup_token) == ("t:0:0-9/h0", "t:0:0-9/h1")
    assert (left.rows, right.rows) == (batch.rows[:2], batch.rows[2:])
    assert [s.offset for s in right.sources or []] == [2, 3, 4]
    assert [h.dedup_token for h in halves(right)] == ["t:0:0-9/h1/h0", "t:0:0-9/h1/h1"]
    with pytest.raises(ValueError, match="dead-letter it"):
        halves(halves(left)[0])


def test_an_unwritable_row_becomes_a_dead_letter_with_its_bytes_and_the_engines_reason() -> None:
    record = SourceRecord("t.usage.priced", 3, 41, b"search", b'{"event_id":"x"}', 1_790_000_000_000)
    refused = RefusedRow(USAGE_EVENTS, record, "Code: 469. Constraint violated")
    insert = plan_unwritable("t:3:40-49/h1", [refused])
    assert (insert.table, insert.dedup_token, insert.sources) == ("dlq_events", "t:3:40-49/h1/unwritable", [record])
    (values,) = insert.rows
    row = dict(zip(DLQ_EVENT_COLUMNS, values, strict=True))
    assert row["error_kind"] == "unwritable"
    assert row["reason"] == "ClickHouse refused the row for usage_events: Code: 469. Constraint violated"
    assert (row["topic"], row["partition"], row["offset"], row["line_index"], row["line_count"]) == (
        "t.usage.priced",
        3,
        41,
        0,
        1,
    )
    assert base64.b64decode(row["value_b64"]) == record.value and row["key_b64"] == base64.b64encode(b"search").decode()
    assert (row["value_size"], row["value_sha256"]) == (16, hashlib.sha256(b'{"event_id":"x"}').hexdigest())
    assert row["received_at"] == datetime.fromtimestamp(1_790_000_000, tz=UTC), (
        "the record's time: a replay builds the same row"
    )
    assert plan_unwritable("t:3:40-49/h1", [refused]) == insert


def _engine(code: int, text: str) -> DatabaseError:
    return DatabaseError(f"Code: {code}. DB::Exception: {text}", code=code)


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (_engine(469, "Constraint `occurred_at_in_rollup_range` ... is violated at row 1"), PermanentWriteError, 469),
        (_engine(252, "Too many partitions for single INSERT block (more than 100)."), PermanentWriteError, 252),
        (
            _engine(
                252,
                "Too many parts (3001 with average size of 1.00 KiB) in table 'usage_events'. "
                "Merges are processing significantly slower than inserts",
            ),
            TransientWriteError,
            252,
        ),
        (
            _engine(241, "Memory limit (for query) exceeded: would use 9.31 GiB, maximum: 9.31 GiB"),
            PermanentWriteError,
            241,
        ),
        (_engine(241, "Memory limit (total) exceeded: would use 30.1 GiB, maximum: 30 GiB"), TransientWriteError, 241),
        (_engine(117, "Unknown field found while parsing JSONEachRow format: extra"), PermanentWriteError, 117),
        (_engine(27, "Cannot parse input: expected '\"' before: 'x'"), PermanentWriteError, 27),
        (_engine(407, "Decimal math overflow"), PermanentWriteError, 407),
        (_engine(60, "Table default.usage_hourly does not exist"), TransientWriteError, 60),
        (_engine(159, "Timeout exceeded"), TransientWriteError, 159),
        (
            OperationalError("Error HTTPConnectionPool: connection refused executing HTTP request"),
            TransientWriteError,
            None,
        ),
        (ProgrammingError("The client has been closed"), TransientWriteError, None),
        (OSError(28, "No space left on device"), TransientWriteError, None),
    ],
)
def test_failures_are_classified_by_exception_and_clickhouse_code(exc: Exception, kind: type, code: int | None) -> None:
    error = classify_write_error(USAGE_EVENTS, exc)
    assert type(error) is kind and error.code == code and error.table == USAGE_EVENTS
    assert ("retries with backoff" in str(error)) is (kind is TransientWriteError), "the message says what happens next"


def test_arrow_refusing_a_value_is_the_datas_fault() -> None:
    import pyarrow as pa

    with pytest.raises(pa.ArrowException) as raised:
        pa.array([2**40], type=pa.uint32())
    assert isinstance(classify_write_error(USAGE_EVENTS, raised.value), PermanentWriteError)
