-- Hourly rollup by team / project / provider / model, kept by a materialized view.
-- SummingMergeTree adds rows with the same key at merge time, so readers always sum().
-- The dedup window on this MV target keeps it exact when a batch is re-delivered
-- (inserts carry a token and deduplicate_blocks_in_dependent_materialized_views = 1).
CREATE TABLE IF NOT EXISTS usage_hourly
(
    hour DateTime('UTC'),
    team LowCardinality(String),
    project LowCardinality(String) COMMENT 'empty when the event named no project',
    provider LowCardinality(String),
    model LowCardinality(String),
    requests UInt64,
    error_requests UInt64,
    cache_hits UInt64,
    batch_requests UInt64,
    unpriced_requests UInt64,
    late_requests UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    input_cost_usd Decimal(38, 12),
    cache_read_cost_usd Decimal(38, 12),
    cache_write_cost_usd Decimal(38, 12),
    output_cost_usd Decimal(38, 12),
    cost_usd Decimal(38, 12),
    cache_saving_usd Decimal(38, 12),
    batch_saving_usd Decimal(38, 12)
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (team, project, provider, model, hour)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_hourly_mv TO usage_hourly AS
SELECT
    toStartOfHour(occurred_at) AS hour,
    team,
    ifNull(project, '') AS project,
    provider,
    model,
    count() AS requests,
    countIf(status = 'error') AS error_requests,
    countIf(cache_hit) AS cache_hits,
    countIf(batch) AS batch_requests,
    countIf(NOT priced) AS unpriced_requests,
    countIf(late) AS late_requests,
    sum(toUInt64(input_tokens)) AS input_tokens,
    sum(toUInt64(output_tokens)) AS output_tokens,
    sum(toUInt64(cache_read_tokens)) AS cache_read_tokens,
    sum(toUInt64(cache_write_tokens)) AS cache_write_tokens,
    sum(toUInt64(reasoning_tokens)) AS reasoning_tokens,
    sum(input_cost_usd) AS input_cost_usd,
    sum(cache_read_cost_usd) AS cache_read_cost_usd,
    sum(cache_write_cost_usd) AS cache_write_cost_usd,
    sum(output_cost_usd) AS output_cost_usd,
    sum(cost_usd) AS cost_usd,
    sum(cache_saving_usd) AS cache_saving_usd,
    sum(batch_saving_usd) AS batch_saving_usd
FROM usage_events
GROUP BY hour, team, project, provider, model;
