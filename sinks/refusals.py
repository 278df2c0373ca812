"""What the sink does with rows ClickHouse refuses for their data, planned as pure data.

A refusal for the data (sinks.errors.PermanentWriteError) would come back on every retry, so
retrying it would stall the partition and everything behind it. Instead the refused insert is
cut in two halves (`halves`), each written or cut again, down to single rows; a single row
that is still refused is dead-lettered (`plan_unwritable`) with the engine's reason and its
record's bytes. Every piece carries a token derived from the refused insert's token and its
place in the cut (`<token>/h0`, `<token>/h1/h0`, ... and `<token>/unwritable`), so a replay
after a crash cuts the same pieces with the same tokens, and ClickHouse drops those it has.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from meterline.messages import DeadLetter
from meterline.sinks.insert_plan import InsertBatch, SourceRecord
from meterline.sinks.rows import DLQ_EVENT_COLUMNS, DLQ_EVENTS, dead_letter_row


def halves(batch: InsertBatch) -> tuple[InsertBatch, InsertBatch]:
    """`batch` (two rows or more) cut at its middle, with the tokens `<token>/h0` and `<token>/h1`."""
    if len(batch.rows) < 2:
        raise ValueError("a single row cannot be cut in two; dead-letter it instead")
    middle = len(batch.rows) // 2
    return batch.piece(0, middle, "h0"), batch.piece(middle, len(batch.rows), "h1")


@dataclass(frozen=True)
class RefusedRow:
    """A single row ClickHouse refused: the table, the record it came from, the engine's reason."""

    table: str
    record: SourceRecord
    reason: str


def unwritable_record(refused: RefusedRow) -> DeadLetter:
    """The dead letter of a row ClickHouse can never write: the record's coordinates and bytes,
    the engine's reason (error_kind 'unwritable'), the record's own timestamp (a replay builds
    the same row)."""
    value = refused.record.value or b""
    return DeadLetter(
        reason=f"ClickHouse refused the row for {refused.table}: {refused.reason}",
        error_kind="unwritable",
        topic=refused.record.topic,
        partition=refused.record.partition,
        offset=refused.record.offset,
        line_index=refused.record.line_index,
        line_count=refused.record.line_count,
        key_b64=None if refused.record.key is None else base64.b64encode(refused.record.key).decode(),
        value_b64=base64.b64encode(value).decode(),
        value_size=len(value),
        value_sha256=hashlib.sha256(value).hexdigest(),
        received_at=datetime.fromtimestamp(refused.record.timestamp_ms / 1000, tz=UTC),
    )


def plan_unwritable(token: str, refused: list[RefusedRow]) -> InsertBatch:
    """One dlq_events insert of the rows refused while cutting the insert that had `token`,
    with the token `<token>/unwritable`: the same refusals always give the same block."""
    return InsertBatch(
        DLQ_EVENTS,
        DLQ_EVENT_COLUMNS,
        [dead_letter_row(unwritable_record(row)) for row in refused],
        f"{token}/unwritable",
        [row.record for row in refused],
    )
