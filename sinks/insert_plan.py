"""The sink's inserts as data: (table, columns, rows, dedup token) per Kafka offset range.

Pure: decoding Kafka records and planning inserts never touches Kafka or ClickHouse, so the
exact output is tested directly (the OpenMeter habit). The I/O part only executes the plan.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from operator import itemgetter
from typing import Literal

from pydantic import ValidationError

from meterline.messages import BudgetState, DeadLetter, PricedEvent
from meterline.priced_json import priced_flag
from meterline.sinks.rows import (
    BUDGET_SNAPSHOT_COLUMNS,
    BUDGET_SNAPSHOTS,
    DLQ_EVENT_COLUMNS,
    DLQ_EVENTS,
    MAX_PARTITIONS_PER_INSERT,
    PARTITION_MONTH_COLUMNS,
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
    """One consumed Kafka record, as much of it as the sink needs; for a usage.priced record
    of several JSON lines, one of its lines (`line_index` of `line_count`, see `record_lines`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    line_index: int = 0
    line_count: int = 1


def record_lines(record: SourceRecord) -> list[SourceRecord]:
    """A priced record as its events: one SourceRecord per non-blank line of a JSON Lines value
    (the stream packs a team's events), the record itself when it holds one line.

    Lines share the record's offset; `line_index` tells them apart (in dead letters too). The
    split is by position, so a replay gives the same lines, in the same ranges and inserts."""
    value = record.value
    if value is None or b"\n" not in value:
        return [record]
    lines = [line for line in value.split(b"\n") if line and not line.isspace()]
    if len(lines) < 2:
        return [record] if not lines else [replace(record, value=lines[0])]
    topic, partition, offset, key, timestamp, count = (
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.timestamp_ms,
        len(lines),
    )
    # Built directly: dataclasses.replace took 4.5 us a line, this 2.1 (a 400-line record, median of 5).
    return [
        SourceRecord(topic, partition, offset, key, line, timestamp, index, count) for index, line in enumerate(lines)
    ]


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
    """One INSERT: rows for `table` in `columns` order, written with `dedup_token`.

    `sources` (when planned from records) holds the record of each row, in the same order: a
    row ClickHouse can never write is dead-lettered with its record's bytes. It describes
    where the rows came from, not the insert, so it takes no part in equality.
    """

    table: str
    columns: tuple[str, ...]
    rows: list[Row]
    dedup_token: str
    sources: list[SourceRecord] | None = field(default=None, compare=False, repr=False)

    def piece(self, start: int, stop: int, label: str) -> InsertBatch:
        """Rows `start:stop` as their own insert, with the token `<token>/<label>`."""
        return InsertBatch(
            self.table,
            self.columns,
            self.rows[start:stop],
            f"{self.dedup_token}/{label}",
            None if self.sources is None else self.sources[start:stop],
        )


@dataclass(frozen=True)
class RangeBatch:
    """The records of one offset range, ready to be planned and written."""

    range: OffsetRange
    records: list[SourceRecord]


def plan_inserts(kind: TopicKind, batch: RangeBatch, token: str | None = None) -> list[InsertBatch]:
    """The inserts that store `batch` (at most one per table, empty tables left out), each
    with `token` (default: the range's deduplication token).

    A priced event goes to usage_events, and also to unpriced_events when it has no price.
    A record the sink cannot parse goes to dlq_events with the reason, so nothing is dropped.
    Tombstones (null values on the compacted budget.state topic) carry nothing to store.
    """
    return _inserts(_plan_rows(kind, batch.records), batch.range.dedup_token if token is None else token)


_Planned = dict[str, tuple[list[Row], list[SourceRecord]]]
"""Rows per table, each with the record it came from."""


def _plan_rows(kind: TopicKind, records: list[SourceRecord]) -> _Planned:
    planned: _Planned = {}

    def add(table: str, row: Row, record: SourceRecord) -> None:
        rows, sources = planned.setdefault(table, ([], []))
        rows.append(row)
        sources.append(record)

    for record in records:
        if record.value is None:
            continue
        try:
            if kind == "priced":
                event = PricedEvent.model_validate_json(record.value)
                add(USAGE_EVENTS, usage_event_row(event), record)
                if not event.priced:
                    add(UNPRICED_EVENTS, unpriced_event_row(event), record)
            elif kind == "budget":
                state = BudgetState.model_validate_json(record.value)
                add(BUDGET_SNAPSHOTS, budget_snapshot_row(state), record)
            else:
                letter = DeadLetter.model_validate_json(record.value)
                add(DLQ_EVENTS, dead_letter_row(letter), record)
        except (ValidationError, ValueError) as exc:
            add(DLQ_EVENTS, dead_letter_row(unreadable_record(kind, record, exc)), record)
    return planned


_TABLE_COLUMNS = {
    USAGE_EVENTS: USAGE_EVENT_COLUMNS,
    UNPRICED_EVENTS: UNPRICED_EVENT_COLUMNS,
    BUDGET_SNAPSHOTS: BUDGET_SNAPSHOT_COLUMNS,
    DLQ_EVENTS: DLQ_EVENT_COLUMNS,
}


def _inserts(planned: _Planned, token: str) -> list[InsertBatch]:
    return [
        InsertBatch(table, columns, planned[table][0], token, planned[table][1])
        for table, columns in _TABLE_COLUMNS.items()
        if table in planned and planned[table][0]
    ]


@dataclass(frozen=True)
class JsonInsert:
    """One INSERT of priced events as the stream wrote them, parsed by ClickHouse itself
    (FORMAT JSONEachRow). `records` are kept for `exact_inserts`, the fallback."""

    table: str
    records: list[SourceRecord]
    dedup_token: str

    @property
    def rows(self) -> list[bytes]:
        """The JSON lines, one row each."""
        return [record.value or b"" for record in self.records]


Write = InsertBatch | JsonInsert


def plan_writes(kind: TopicKind, batch: RangeBatch) -> list[Write]:
    """The writes that store `batch`: what `plan_inserts` plans, except that usage_events
    gets the priced events in the stream's own JSON as JSON lines, for ClickHouse to parse.

    Validating and converting each event in Python cost more of the sink's CPU than the
    insert (py-spy: the sink thread was busy 85 % of the time at 10,000 events/s); ClickHouse
    parses the same JSON in C++, outside the GIL. The stream validated each event against the
    contract before pricing it, and ClickHouse still refuses a wrong type, an unknown key or a
    money amount out of range: then `exact_inserts` takes over. An event without a price is
    also validated here, for its unpriced_events row (it is rare), and takes the exact path if
    that fails. The JSON lines are cut by position into chunks of INSERT_CHUNK_ROWS with tokens
    `<range token>/json/<i>`; every other row is planned as `plan_inserts` plans it, with the
    range's own token. A replay plans the same writes.
    """
    if kind != "priced":
        return list(plan_inserts(kind, batch))
    lines: list[SourceRecord] = []
    unpriced: list[Row] = []
    unpriced_sources: list[SourceRecord] = []
    rest: list[SourceRecord] = []
    for record in batch.records:
        priced = priced_flag(record.value)
        if priced is None:
            rest.append(record)
            continue
        if not priced:
            try:
                event = PricedEvent.model_validate_json(record.value or b"")
            except (ValidationError, ValueError):
                rest.append(record)
                continue
            if event.priced:  # a repeated key: the exact path decides
                rest.append(record)
                continue
            unpriced.append(unpriced_event_row(event))
            unpriced_sources.append(record)
        lines.append(record)
    if not lines:
        return list(plan_inserts(kind, batch))
    writes: list[Write] = [
        JsonInsert(USAGE_EVENTS, lines[start : start + INSERT_CHUNK_ROWS], f"{batch.range.dedup_token}/json/{index}")
        for index, start in enumerate(range(0, len(lines), INSERT_CHUNK_ROWS))
    ]
    planned = _plan_rows(kind, rest)
    if unpriced:
        rows, sources = planned.get(UNPRICED_EVENTS, ([], []))
        planned[UNPRICED_EVENTS] = (unpriced + rows, unpriced_sources + sources)
    writes.extend(_inserts(planned, batch.range.dedup_token))
    return writes


def exact_inserts(write: JsonInsert) -> list[InsertBatch]:
    """The fallback for JSON lines ClickHouse refused: each event validated in Python, rows
    for the good ones, dead letters for the others, all with the JSON insert's own token (so
    a replay that succeeds or falls back alike writes these rows once). The unpriced_events
    rows of these lines were planned with the range (`plan_writes`) and are not repeated."""
    first, last = write.records[0], write.records[-1]
    span = OffsetRange(first.topic, first.partition, first.offset, last.offset)
    inserts = plan_inserts("priced", RangeBatch(span, write.records), token=write.dedup_token)
    return [insert for insert in inserts if insert.table != UNPRICED_EVENTS]


INSERT_CHUNK_ROWS = 25_000
"""Rows per INSERT at most. A larger planned insert is written as consecutive chunks, so the
Arrow conversion of one chunk (Python) overlaps ClickHouse ingesting the previous one (C++,
outside the GIL). A constant, not a setting: a re-delivered range must be cut into the same
chunks, with the same tokens, as the write it repeats, or deduplication would miss it."""


def insert_chunks(batch: InsertBatch, chunk_rows: int = INSERT_CHUNK_ROWS) -> list[InsertBatch]:
    """`batch` as consecutive inserts of at most `chunk_rows` rows and MAX_PARTITIONS_PER_INSERT
    partitions each.

    A batch that fits is returned unchanged (same token). Chunk i of a larger batch carries
    the token `<token>/<i>`: chunks are cut by position, so the same rows always give the
    same chunks and tokens. A chunk touching more partitions than one INSERT may (events late
    by years, one per month) is cut further by `partition_pieces`.
    """
    if len(batch.rows) <= chunk_rows:
        chunks = [batch]
    else:
        chunks = [
            batch.piece(start, start + chunk_rows, str(index))
            for index, start in enumerate(range(0, len(batch.rows), chunk_rows))
        ]
    return [piece for chunk in chunks for piece in partition_pieces(chunk)]


def partition_pieces(batch: InsertBatch, limit: int = MAX_PARTITIONS_PER_INSERT) -> list[InsertBatch]:
    """`batch` as inserts touching at most `limit` partitions (months) each.

    ClickHouse refuses a block whose rows fall in more partitions than
    max_partitions_per_insert_block ("Too many partitions for single INSERT block"), and it
    would refuse it again on every retry. A batch within the limit is returned unchanged
    (same token; the span of its months is checked first, in C, so the common case costs two
    passes of min/max). Otherwise its months are sorted and taken `limit` at a time: piece i
    holds the rows of those months in their order, with the token `<token>/p<i>`. The same
    rows always give the same pieces and tokens, so a replay after a crash between pieces
    re-cuts them alike and ClickHouse drops those it already has.
    """
    column = PARTITION_MONTH_COLUMNS.get(batch.table)
    if column is None or len(batch.rows) <= limit:
        return [batch]
    moments = list(map(itemgetter(batch.columns.index(column)), batch.rows))
    first, last = min(moments), max(moments)
    if (last.year - first.year) * 12 + last.month - first.month < limit:
        return [batch]
    months = [moment.year * 100 + moment.month for moment in moments]
    ordered = sorted(set(months))
    if len(ordered) <= limit:
        return [batch]
    group = {month: index // limit for index, month in enumerate(ordered)}
    members: list[list[int]] = [[] for _ in range((len(ordered) + limit - 1) // limit)]
    for position, month in enumerate(months):
        members[group[month]].append(position)
    return [_select(batch, positions, f"p{index}") for index, positions in enumerate(members)]


def _select(batch: InsertBatch, positions: list[int], label: str) -> InsertBatch:
    """The rows at `positions` (ascending) as their own insert, with the token `<token>/<label>`."""
    rows = [batch.rows[i] for i in positions]
    sources = None if batch.sources is None else [batch.sources[i] for i in positions]
    return InsertBatch(batch.table, batch.columns, rows, f"{batch.dedup_token}/{label}", sources)


def unreadable_record(kind: TopicKind, record: SourceRecord, error: ValueError) -> DeadLetter:
    """A DeadLetter for a record (or a line of a packed one) that breaks its topic's contract,
    kept with its bytes, their size and SHA-256."""
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
        line_index=record.line_index,
        line_count=record.line_count,
        key_b64=None if record.key is None else base64.b64encode(record.key).decode(),
        value_b64=base64.b64encode(record.value or b"").decode(),
        value_size=len(record.value or b""),
        value_sha256=hashlib.sha256(record.value or b"").hexdigest(),
        # The record's own timestamp, not the wall clock: a replay builds the same row.
        received_at=datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC),
    )


def plan_batch_log(consumer_group: str, batches: list[RangeBatch]) -> InsertBatch:
    """The write-ahead insert into sink_batches recording the boundaries of `batches`."""
    rows: list[Row] = [
        [consumer_group, b.range.topic, b.range.partition, b.range.first, b.range.last, len(b.records)] for b in batches
    ]
    token = "batches:" + ",".join(b.range.dedup_token for b in batches)
    return InsertBatch(SINK_BATCHES, SINK_BATCH_COLUMNS, rows, token)
