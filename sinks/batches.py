"""The sink's inserts as data: (table, columns, rows, dedup token) per Kafka offset range.

Pure: decoding Kafka records and planning inserts never touches Kafka or ClickHouse, so the
exact output is tested directly (the OpenMeter habit). The I/O part only executes the plan.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import ValidationError

from meterline.messages import BudgetState, DeadLetter, PricedEvent
from meterline.sinks.rows import (
    BUDGET_SNAPSHOT_COLUMNS,
    BUDGET_SNAPSHOTS,
    DLQ_EVENT_COLUMNS,
    DLQ_EVENTS,
    SINK_BATCH_COLUMNS,
    SINK_BATCHES,
    UNPRICED_EVENT_COLUMNS,
    UNPRICED_EVENTS,
    USAGE_EVENT_COLUMNS,
    USAGE_EVENTS,
    Row,
    budget_snapshot_row,
    dead_letter_row,
    unpriced_event_row,
    usage_event_row,
)

TopicKind = Literal["priced", "dlq", "budget"]
"""What a consumed topic carries: PricedEvent, DeadLetter or BudgetState messages."""


@dataclass(frozen=True)
class SourceRecord:
    """One consumed Kafka record, as much of it as the sink needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass(frozen=True, order=True)
class OffsetRange:
    """Offsets `first..last` (inclusive) of one topic partition: the unit of one write."""

    topic: str
    partition: int
    first: int
    last: int

    @property
    def dedup_token(self) -> str:
        """The insert deduplication token: the same offsets always give the same token."""
        return f"{self.topic}:{self.partition}:{self.first}-{self.last}"


@dataclass(frozen=True)
class InsertBatch:
    """One INSERT: rows for `table` in `columns` order, written with `dedup_token`."""

    table: str
    columns: tuple[str, ...]
    rows: list[Row]
    dedup_token: str


@dataclass(frozen=True)
class RangeBatch:
    """The records of one offset range, ready to be planned and written."""

    range: OffsetRange
    records: list[SourceRecord]


def plan_inserts(kind: TopicKind, batch: RangeBatch) -> list[InsertBatch]:
    """The inserts that store `batch` (at most one per table, empty tables left out).

    A priced event goes to usage_events, and also to unpriced_events when it has no price.
    A record the sink cannot parse goes to dlq_events with the reason, so nothing is dropped.
    Tombstones (null values on the compacted budget.state topic) carry nothing to store.
    """
    rows: dict[str, list[Row]] = {}
    for record in batch.records:
        if record.value is None:
            continue
        try:
            if kind == "priced":
                event = PricedEvent.model_validate_json(record.value)
                rows.setdefault(USAGE_EVENTS, []).append(usage_event_row(event))
                if not event.priced:
                    rows.setdefault(UNPRICED_EVENTS, []).append(unpriced_event_row(event))
            elif kind == "budget":
                state = BudgetState.model_validate_json(record.value)
                rows.setdefault(BUDGET_SNAPSHOTS, []).append(budget_snapshot_row(state))
            else:
                letter = DeadLetter.model_validate_json(record.value)
                rows.setdefault(DLQ_EVENTS, []).append(dead_letter_row(letter))
        except (ValidationError, ValueError) as exc:
            rows.setdefault(DLQ_EVENTS, []).append(dead_letter_row(unreadable_record(kind, record, exc)))
    columns = {
        USAGE_EVENTS: USAGE_EVENT_COLUMNS,
        UNPRICED_EVENTS: UNPRICED_EVENT_COLUMNS,
        BUDGET_SNAPSHOTS: BUDGET_SNAPSHOT_COLUMNS,
        DLQ_EVENTS: DLQ_EVENT_COLUMNS,
    }
    token = batch.range.dedup_token
    return [InsertBatch(table, columns[table], rows[table], token) for table in columns if table in rows]


INSERT_CHUNK_ROWS = 25_000
"""Rows per INSERT at most. A larger planned insert is written as consecutive chunks, so the
Arrow conversion of one chunk (Python) overlaps ClickHouse ingesting the previous one (C++,
outside the GIL). A constant, not a setting: a re-delivered range must be cut into the same
chunks, with the same tokens, as the write it repeats, or deduplication would miss it."""


def insert_chunks(batch: InsertBatch, chunk_rows: int = INSERT_CHUNK_ROWS) -> list[InsertBatch]:
    """`batch` as consecutive inserts of at most `chunk_rows` rows.

    A batch that fits is returned unchanged (same token). Chunk i of a larger batch carries
    the token `<token>/<i>`: chunks are cut by position, so the same rows always give the
    same chunks and tokens.
    """
    if len(batch.rows) <= chunk_rows:
        return [batch]
    return [
        InsertBatch(batch.table, batch.columns, batch.rows[start : start + chunk_rows], f"{batch.dedup_token}/{index}")
        for index, start in enumerate(range(0, len(batch.rows), chunk_rows))
    ]


def unreadable_record(kind: TopicKind, record: SourceRecord, error: ValueError) -> DeadLetter:
    """A DeadLetter for a record that breaks its topic's contract (kept with its bytes)."""
    not_json = False
    reason = str(error)
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        not_json = first["type"] == "json_invalid"
        location = ".".join(str(part) for part in first["loc"]) or "(message)"
        reason = f"{location}: {first['msg']}"
    return DeadLetter(
        reason=f"sink could not read a {kind} message: {reason}",
        error_kind="not_json" if not_json else "schema",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key_b64=None if record.key is None else base64.b64encode(record.key).decode(),
        value_b64=base64.b64encode(record.value or b"").decode(),
        # The record's own timestamp, not the wall clock: a replay builds the same row.
        received_at=datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC),
    )


def plan_batch_log(consumer_group: str, batches: list[RangeBatch]) -> InsertBatch:
    """The write-ahead insert into sink_batches recording the boundaries of `batches`."""
    rows: list[Row] = [
        [consumer_group, b.range.topic, b.range.partition, b.range.first, b.range.last, len(b.records)]
        for b in batches
    ]
    token = "batches:" + ",".join(b.range.dedup_token for b in batches)
    return InsertBatch(SINK_BATCHES, SINK_BATCH_COLUMNS, rows, token)
