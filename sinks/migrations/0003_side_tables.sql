-- Budget states from the compacted budget.state topic: every distinct state is kept
-- (history), an identical re-delivered state collapses.
CREATE TABLE IF NOT EXISTS budget_snapshots
(
    team LowCardinality(String),
    budget LowCardinality(String),
    period String,
    period_start DateTime64(6, 'UTC'),
    period_end DateTime64(6, 'UTC'),
    spend_usd Decimal(38, 12),
    limit_usd Decimal(38, 12),
    percent Decimal(38, 12),
    hard_limit Bool,
    over_hard_limit Bool,
    unpriced_events UInt64,
    updated_at DateTime64(6, 'UTC'),
    written_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (team, budget, period, updated_at)
SETTINGS non_replicated_deduplication_window = 10000;

-- Messages the stream could not accept (usage.dlq), with the original bytes in base64.
CREATE TABLE IF NOT EXISTS dlq_events
(
    topic LowCardinality(String),
    `partition` Int32,
    `offset` Int64,
    reason String,
    error_kind LowCardinality(String),
    key_b64 Nullable(String),
    value_b64 String,
    received_at DateTime64(6, 'UTC'),
    written_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(received_at)
ORDER BY (topic, `partition`, `offset`)
SETTINGS non_replicated_deduplication_window = 10000;

-- Events no price was found for: what to add to the price catalog.
CREATE TABLE IF NOT EXISTS unpriced_events
(
    event_id String,
    occurred_at DateTime64(6, 'UTC'),
    team LowCardinality(String),
    project LowCardinality(Nullable(String)),
    provider LowCardinality(String),
    model LowCardinality(String),
    input_tokens UInt32,
    output_tokens UInt32,
    cache_read_tokens UInt32,
    cache_write_tokens UInt32,
    reasoning_tokens UInt32,
    batch Bool,
    unpriced_reason String,
    ingested_at DateTime64(6, 'UTC'),
    written_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (provider, model, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Alert delivery log, written by meterline.alerts (one row per state change of a delivery).
CREATE TABLE IF NOT EXISTS alert_deliveries
(
    alert_id String,
    channel LowCardinality(String),
    target String,
    status LowCardinality(String) COMMENT '''sending'' | ''sent'' | ''failed''',
    attempts UInt32,
    reason String,
    external_id String COMMENT 'slack ts or email Message-ID',
    team String,
    budget String,
    kind LowCardinality(String),
    period String,
    recorded_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY (alert_id, channel, target);

-- The sink's write-ahead log of batch boundaries: a batch is recorded here before it is
-- written, so after a crash the same offsets are re-cut into the same batch and carry the
-- same insert deduplication token.
CREATE TABLE IF NOT EXISTS sink_batches
(
    consumer_group String,
    topic String,
    `partition` Int32,
    first_offset Int64,
    last_offset Int64,
    rows UInt32,
    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (consumer_group, topic, `partition`, first_offset)
TTL toDateTime(recorded_at) + INTERVAL 30 DAY;
