"""Rows of the sink's tables, built from the wire messages (pure: no I/O).

Each table has its column tuple and a function turning one message into one row in that
order. Money is quantized to 1e-12 (Decimal(38, 12)); times are converted to UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

from meterline.messages import BudgetState, DeadLetter, PricedEvent
from meterline.money import MONEY_FIELDS, MONEY_QUANTUM

Row = list[Any]

USAGE_EVENTS = "usage_events"
UNPRICED_EVENTS = "unpriced_events"
BUDGET_SNAPSHOTS = "budget_snapshots"
DLQ_EVENTS = "dlq_events"
SINK_BATCHES = "sink_batches"

USAGE_EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "occurred_at",
    "schema_version",
    "team",
    "project",
    "app",
    "user",
    "environment",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "batch",
    "cache_hit",
    "latency_ms",
    "status",
    "request_id",
    "tags",
    "priced",
    "unpriced_reason",
    "price_id",
    "price_source",
    *MONEY_FIELDS,
    "late",
    "ingested_at",
)

UNPRICED_EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "occurred_at",
    "team",
    "project",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "batch",
    "unpriced_reason",
    "ingested_at",
)

BUDGET_SNAPSHOT_COLUMNS: tuple[str, ...] = (
    "team",
    "budget",
    "period",
    "period_start",
    "period_end",
    "spend_usd",
    "limit_usd",
    "percent",
    "hard_limit",
    "over_hard_limit",
    "unpriced_events",
    "updated_at",
)

DLQ_EVENT_COLUMNS: tuple[str, ...] = (
    "topic",
    "partition",
    "offset",
    "line_index",
    "line_count",
    "reason",
    "error_kind",
    "key_b64",
    "value_b64",
    "value_size",
    "value_sha256",
    "truncated",
    "received_at",
)

PARTITION_MONTH_COLUMNS: dict[str, str] = {
    USAGE_EVENTS: "occurred_at",
    UNPRICED_EVENTS: "occurred_at",
    DLQ_EVENTS: "received_at",
}
"""The tables partitioned by month (PARTITION BY toYYYYMM(column)), and that column."""

MAX_PARTITIONS_PER_INSERT = 100
"""Partitions one INSERT block may touch: ClickHouse's max_partitions_per_insert_block, set
explicitly on every insert (sinks.writer.INSERT_SETTINGS) so the plan and the engine agree."""

SINK_BATCH_COLUMNS: tuple[str, ...] = ("consumer_group", "topic", "partition", "first_offset", "last_offset", "rows")


def utc(moment: datetime) -> datetime:
    """The same instant in UTC."""
    return moment.astimezone(UTC)


# Decimal(38, 12) holds 38 digits; Python's default context (28) would refuse the larger ones.
_MONEY_CONTEXT = Context(prec=38)
MONEY_LIMIT = Decimal(10) ** 26


def money(amount: Decimal) -> Decimal:
    """`amount` at 1e-12 USD; ValueError when it does not fit Decimal(38, 12)."""
    if not -MONEY_LIMIT < amount < MONEY_LIMIT:
        raise ValueError(f"{amount} USD does not fit Decimal(38, 12)")
    return amount.quantize(MONEY_QUANTUM, context=_MONEY_CONTEXT)


def usage_event_row(event: PricedEvent) -> Row:
    """One `usage_events` row, in USAGE_EVENT_COLUMNS order."""
    return [
        event.event_id,
        utc(event.occurred_at),
        event.schema_version,
        event.team,
        event.project,
        event.app,
        event.user,
        event.environment,
        event.provider,
        event.model,
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_write_tokens,
        event.reasoning_tokens,
        event.batch,
        event.cache_hit,
        event.latency_ms,
        event.status,
        event.request_id,
        dict(event.tags),
        event.priced,
        event.unpriced_reason,
        event.price_id,
        event.price_source,
        money(event.input_cost_usd),
        money(event.cache_read_cost_usd),
        money(event.cache_write_cost_usd),
        money(event.output_cost_usd),
        money(event.cost_usd),
        money(event.cache_saving_usd),
        money(event.batch_saving_usd),
        event.late,
        utc(event.ingested_at),
    ]


def unpriced_event_row(event: PricedEvent) -> Row:
    """One `unpriced_events` row, in UNPRICED_EVENT_COLUMNS order."""
    return [
        event.event_id,
        utc(event.occurred_at),
        event.team,
        event.project,
        event.provider,
        event.model,
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_write_tokens,
        event.reasoning_tokens,
        event.batch,
        event.unpriced_reason or "no price found",
        utc(event.ingested_at),
    ]


def budget_snapshot_row(state: BudgetState) -> Row:
    """One `budget_snapshots` row, in BUDGET_SNAPSHOT_COLUMNS order."""
    return [
        state.team,
        state.budget,
        state.period,
        utc(state.period_start),
        utc(state.period_end),
        money(state.spend_usd),
        money(state.limit_usd),
        money(state.percent),
        state.hard_limit,
        state.over_hard_limit,
        state.unpriced_events,
        utc(state.updated_at),
    ]


def dead_letter_row(letter: DeadLetter) -> Row:
    """One `dlq_events` row, in DLQ_EVENT_COLUMNS order: one per bad line, named by
    (topic, partition, offset, line_index), the table's sorting key."""
    return [
        letter.topic,
        letter.partition,
        letter.offset,
        letter.line_index,
        letter.line_count,
        letter.reason,
        letter.error_kind,
        letter.key_b64,
        letter.value_b64,
        letter.value_size,
        letter.value_sha256,
        letter.truncated,
        utc(letter.received_at),
    ]
