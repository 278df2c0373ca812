"""Messages the stream publishes for the other components (the wire contracts).

- `PricedEvent` on `usage.priced` (consumed by the ClickHouse sink): JSON Lines, a record
  holding up to `stream.priced_pack_events` events of the team its key names,
- `DeadLetter` on `usage.dlq`,
- `BudgetState` on the compacted `budget.state` (consumed by BudgetGuard),
- `AlertEvent` on `alerts` (consumed by the alert dispatcher).

Money is `Decimal` and travels as a JSON string ("0.025000000000").
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from meterline.events import UsageEvent


class PricedEvent(UsageEvent):
    """A usage event with its price. `cost_usd` is what the call cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    priced: bool
    """False when no price was found; then every cost is 0 and `unpriced_reason` says why."""
    unpriced_reason: str | None = None
    price_id: str | None = None
    """Stable id of the catalog entry used, e.g. `genai-prices:openai:gpt-4o@2024-08-06`."""
    price_source: str | None = None
    """`override:<file>` or `genai-prices`."""
    input_cost_usd: Decimal = Decimal(0)
    """Uncached input tokens' cost."""
    cache_read_cost_usd: Decimal = Decimal(0)
    cache_write_cost_usd: Decimal = Decimal(0)
    output_cost_usd: Decimal = Decimal(0)
    cost_usd: Decimal = Decimal(0)
    """Total cost; 0 for a cache hit, batch discount applied."""
    cache_saving_usd: Decimal = Decimal(0)
    """What a cache hit would have cost had the provider been called."""
    batch_saving_usd: Decimal = Decimal(0)
    """What the batch discount saved against the standard price."""
    late: bool = False
    """True when the event arrived after the grace period: stored, but budgets unmoved."""
    ingested_at: AwareDatetime


DeadLetterKind = Literal[
    "not_json",  # not parseable JSON (or no value at all)
    "not_utf8",
    "duplicate_key",  # a JSON object names one key twice: which one wins is undefined
    "schema",  # JSON, but not a usage event (occurred_at out of range included)
    "wrong_key",  # the Kafka key is not the event's team
    "oversized",  # above stream.max_event_bytes
    "processing",  # a valid event a later step (pricing, budgets, serialization) raised on
    "unwritable",  # the sink: a row ClickHouse refuses for its content, on its own
]


class DeadLetter(BaseModel):
    """A message (or one line of it) the pipeline could not accept, with its bytes and reason.

    One dead letter per bad line: (topic, partition, offset, line_index) names it. A value too
    big to travel in a DLQ message is cut to its head (`truncated`); `value_size` and
    `value_sha256` always describe the whole original value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str
    error_kind: DeadLetterKind
    topic: str
    partition: int
    offset: int
    line_index: int = 0
    """0-based line of a JSON Lines message (0 for a message of one event)."""
    line_count: int = 1
    key_b64: str | None
    value_b64: str
    value_size: int | None = None
    """Bytes in the original value (None from senders older than this field)."""
    value_sha256: str | None = None
    """Hex SHA-256 of the original value."""
    truncated: bool = False
    """True when value_b64 holds only the head of the original value."""
    received_at: AwareDatetime


class BudgetState(BaseModel):
    """The current state of one budget in its current period (compacted by `team/budget`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    team: str
    budget: str
    period: str
    """Period key: `2026-11-28` (day), `2026-W48` (week), `2026-11` (month), `rolling:24h`."""
    period_start: AwareDatetime
    period_end: AwareDatetime
    spend_usd: Decimal
    limit_usd: Decimal
    percent: Decimal
    hard_limit: bool
    over_hard_limit: bool
    unpriced_events: int = 0
    updated_at: AwareDatetime


PRICE_CORRECTION_CONTENT_TYPE = b"application/vnd.meterline.price-correction+json"
"""The `content-type` header that marks a PriceCorrection on the usage topic."""


class PriceCorrection(BaseModel):
    """A stored event's cost changed (`meterline reprice`): budgets move by `delta_usd`.

    It travels on the usage topic, keyed by team, so it reaches the stream partition that holds
    the team's budgets, inside the same transactions as its events. `correction_id` names the
    change itself (the event, the row it replaced and its new price), so a correction sent again,
    by the same run or by a run repeating one that stopped half-way, is counted once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    correction_id: str
    run_id: str
    event_id: str
    team: str
    project: str | None = None
    provider: str
    model: str
    occurred_at: AwareDatetime
    delta_usd: Decimal
    unpriced_delta: Literal[-1, 0, 1] = 0
    """-1 when the event got its first price, +1 when it lost its price."""


AlertKind = Literal["threshold", "forecast", "unpriced"]


class ModelSpend(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str
    model: str
    spend_usd: Decimal


class AlertEvent(BaseModel):
    """One alert to deliver. `alert_id` is deterministic: the same crossing, the same id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: str
    """`team/budget/period/kind/threshold`, unique per (team, budget, period, threshold)."""
    kind: AlertKind
    team: str
    budget: str
    period: str
    period_start: AwareDatetime
    period_end: AwareDatetime
    timezone: str
    threshold_percent: Decimal | None = None
    spend_usd: Decimal
    limit_usd: Decimal
    percent: Decimal
    forecast_usd: Decimal | None = None
    """Burn-rate projection of spend at period end."""
    previous_period_spend_usd: Decimal | None = None
    top_models: list[ModelSpend] = Field(default_factory=list)
    hard_limit: bool = False
    unpriced_events: int = 0
    triggered_by_event_id: str | None = None
    fired_at: AwareDatetime
    """Wall-clock time the stream fired it (for crossing-to-delivery latency)."""

    @staticmethod
    def make_id(team: str, budget: str, period: str, kind: AlertKind, threshold: Decimal | None) -> str:
        suffix = "" if threshold is None else f"/{threshold.normalize():f}"
        return f"{team}/{budget}/{period}/{kind}{suffix}"
