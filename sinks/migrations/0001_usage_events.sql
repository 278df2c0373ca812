-- Raw priced events: one row per usage event, every field of meterline.messages.PricedEvent.
-- ReplacingMergeTree collapses a re-inserted event_id (the key ends with it; team and
-- occurred_at never change for one event). The dedup window makes insert tokens work on this
-- non-replicated table, so a re-delivered batch is dropped whole.
CREATE TABLE IF NOT EXISTS usage_events
(
    event_id String,
    occurred_at DateTime64(6, 'UTC'),
    schema_version UInt8,
    team LowCardinality(String),
    project LowCardinality(Nullable(String)),
    app LowCardinality(Nullable(String)),
    user Nullable(String),
    environment LowCardinality(Nullable(String)),
    provider LowCardinality(String),
    model LowCardinality(String),
    input_tokens UInt32,
    output_tokens UInt32,
    cache_read_tokens UInt32,
    cache_write_tokens UInt32,
    reasoning_tokens UInt32,
    batch Bool,
    cache_hit Bool,
    latency_ms Nullable(UInt32),
    status LowCardinality(String),
    request_id Nullable(String),
    tags Map(String, String),
    priced Bool,
    unpriced_reason Nullable(String),
    price_id LowCardinality(Nullable(String)),
    price_source LowCardinality(Nullable(String)),
    input_cost_usd Decimal(38, 12),
    cache_read_cost_usd Decimal(38, 12),
    cache_write_cost_usd Decimal(38, 12),
    output_cost_usd Decimal(38, 12),
    cost_usd Decimal(38, 12),
    cache_saving_usd Decimal(38, 12),
    batch_saving_usd Decimal(38, 12),
    late Bool,
    ingested_at DateTime64(6, 'UTC'),
    written_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC') COMMENT 'when the sink wrote the row'
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (team, toStartOfHour(occurred_at), event_id)
SETTINGS non_replicated_deduplication_window = 10000;
