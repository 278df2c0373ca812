"""The thin I/O part of the sink: execute planned inserts, read back recorded batch ranges."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meterline.sinks.batches import InsertBatch, OffsetRange
from meterline.sinks.errors import SinkWriteError
from meterline.sinks.rows import SINK_BATCHES

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

# Deterministic inserts: synchronous (async_insert is on by default in ClickHouse 26.x),
# deduplicated by token on the table and on every materialized-view target it feeds.
INSERT_SETTINGS: dict[str, Any] = {
    "async_insert": 0,
    "insert_deduplicate": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
}


def insert_settings(batch: InsertBatch) -> dict[str, Any]:
    """The settings of one insert: the defaults above plus its deduplication token."""
    return {**INSERT_SETTINGS, "insert_deduplication_token": batch.dedup_token}


def arrow_table(batch: InsertBatch) -> Any:
    """The rows as an Arrow table: columnar, so ClickHouse ingests it several times faster
    than rows encoded in Python. Money is decimal128(38, 12) (exact), tags a string map."""
    import pyarrow as pa

    columns = list(zip(*batch.rows, strict=True)) if batch.rows else [() for _ in batch.columns]
    arrays = {}
    for name, values in zip(batch.columns, columns, strict=True):
        if name in _MAP_COLUMNS:
            arrays[name] = pa.array(values, type=pa.map_(pa.string(), pa.string()))
        elif name.endswith("_usd") or name in _DECIMAL_COLUMNS:
            arrays[name] = pa.array(values, type=pa.decimal128(38, 12))
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays)


_MAP_COLUMNS = frozenset({"tags"})
_DECIMAL_COLUMNS = frozenset({"percent"})


def write_batch(client: Client, batch: InsertBatch) -> None:
    """Insert `batch`; raise SinkWriteError (retryable) on any ClickHouse or network failure."""
    try:
        client.insert_arrow(batch.table, arrow_table(batch), settings=insert_settings(batch))
    except Exception as exc:  # noqa: BLE001 - every failure here means "not written": retry
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SinkWriteError(batch.table, reason) from exc


def recorded_ranges(client: Client, consumer_group: str, topic: str, partition: int, committed: int) -> list[OffsetRange]:
    """Ranges recorded in sink_batches for this partition at or after the committed offset."""
    try:
        result = client.query(
            f"SELECT DISTINCT first_offset, last_offset FROM {SINK_BATCHES} "
            "WHERE consumer_group = {group:String} AND topic = {topic:String} "
            "AND partition = {partition:Int32} AND last_offset >= {committed:Int64} ORDER BY first_offset",
            parameters={"group": consumer_group, "topic": topic, "partition": partition, "committed": committed},
        )
    except Exception as exc:  # noqa: BLE001
        raise SinkWriteError(SINK_BATCHES, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from exc
    return [OffsetRange(topic, partition, int(first), int(last)) for first, last in result.result_rows]
