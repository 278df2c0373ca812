-- Re-pricing history (`meterline reprice`), corrected in place without counting anything twice.
--
-- A re-priced event is written to usage_events again as a whole row. ReplacingMergeTree keeps
-- the last inserted row of an event_id when the versions (ingested_at) are equal, so the
-- re-priced row replaces the original in FINAL reads and at merge time. The row says which run
-- priced it (reprice_run_id, empty for the stream's own pricing) and carries the money and
-- priced flag of the row it replaces (previous_*): the rollup's materialized view adds, for a
-- re-priced row, only the difference (new minus previous) and no requests or tokens, so
-- usage_hourly moves by the delta and never by a second copy. The row and its rollup delta are
-- one insert (one block, one deduplication token), so there is no moment where one is written
-- and the other is not.
ALTER TABLE usage_events
    ADD COLUMN IF NOT EXISTS reprice_run_id String DEFAULT '' COMMENT 'the reprice run that priced this row; empty: the stream at arrival',
    ADD COLUMN IF NOT EXISTS repriced_at Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS previous_priced Bool DEFAULT false COMMENT 'the replaced row''s priced flag (re-priced rows only)',
    ADD COLUMN IF NOT EXISTS previous_input_cost_usd Decimal(38, 12) DEFAULT 0,
    ADD COLUMN IF NOT EXISTS previous_cache_read_cost_usd Decimal(38, 12) DEFAULT 0,
    ADD COLUMN IF NOT EXISTS previous_cache_write_cost_usd Decimal(38, 12) DEFAULT 0,
    ADD COLUMN IF NOT EXISTS previous_output_cost_usd Decimal(38, 12) DEFAULT 0,
    ADD COLUMN IF NOT EXISTS previous_cost_usd Decimal(38, 12) DEFAULT 0,
    ADD COLUMN IF NOT EXISTS previous_cache_saving_usd Decimal(38, 12) DEFAULT 0,
    ADD COLUMN IF NOT EXISTS previous_batch_saving_usd Decimal(38, 12) DEFAULT 0;

-- An event that gets its first price leaves the unpriced count: the rollup's count must be able
-- to go down by one in a correction row (the sum per key never goes below zero).
ALTER TABLE usage_hourly MODIFY COLUMN IF EXISTS unpriced_requests Int64;

-- The view is dropped and created again, not altered with MODIFY QUERY: after MODIFY QUERY the
-- view's blocks were no longer de-duplicated once the engine was reopened (a batch replayed by
-- a restarted sink counted twice in usage_hourly; measured on chDB 26.9). Migrations run
-- before the sink writes, so no insert falls between the two statements.
DROP VIEW IF EXISTS usage_hourly_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_hourly_mv TO usage_hourly AS
SELECT
    toStartOfHour(occurred_at) AS hour,
    team,
    ifNull(project, '') AS project,
    provider,
    model,
    countIf(reprice_run_id = '') AS requests,
    countIf(reprice_run_id = '' AND status = 'error') AS error_requests,
    countIf(reprice_run_id = '' AND cache_hit) AS cache_hits,
    countIf(reprice_run_id = '' AND batch) AS batch_requests,
    sum(toInt64(NOT priced) - if(reprice_run_id = '', 0, toInt64(NOT previous_priced))) AS unpriced_requests,
    countIf(reprice_run_id = '' AND late) AS late_requests,
    sumIf(toUInt64(input_tokens), reprice_run_id = '') AS input_tokens,
    sumIf(toUInt64(output_tokens), reprice_run_id = '') AS output_tokens,
    sumIf(toUInt64(cache_read_tokens), reprice_run_id = '') AS cache_read_tokens,
    sumIf(toUInt64(cache_write_tokens), reprice_run_id = '') AS cache_write_tokens,
    sumIf(toUInt64(reasoning_tokens), reprice_run_id = '') AS reasoning_tokens,
    sum(input_cost_usd - previous_input_cost_usd) AS input_cost_usd,
    sum(cache_read_cost_usd - previous_cache_read_cost_usd) AS cache_read_cost_usd,
    sum(cache_write_cost_usd - previous_cache_write_cost_usd) AS cache_write_cost_usd,
    sum(output_cost_usd - previous_output_cost_usd) AS output_cost_usd,
    sum(cost_usd - previous_cost_usd) AS cost_usd,
    sum(cache_saving_usd - previous_cache_saving_usd) AS cache_saving_usd,
    sum(batch_saving_usd - previous_batch_saving_usd) AS batch_saving_usd
FROM usage_events
GROUP BY hour, team, project, provider, model;

-- One row per applied reprice run: what catalog priced it, its scope, what it changed.
CREATE TABLE IF NOT EXISTS reprice_runs
(
    run_id String,
    started_at DateTime64(3, 'UTC'),
    finished_at DateTime64(3, 'UTC'),
    catalog_fingerprint String COMMENT 'sha256 of genai-prices version and the override files',
    since DateTime64(6, 'UTC'),
    until Nullable(DateTime64(6, 'UTC')),
    team Nullable(String),
    model Nullable(String),
    provider Nullable(String),
    events_scanned UInt64,
    events_changed UInt64,
    events_newly_priced UInt64,
    events_newly_unpriced UInt64,
    old_cost_usd Decimal(38, 12) COMMENT 'of the events in scope, before the run',
    new_cost_usd Decimal(38, 12) COMMENT 'of the events in scope, after the run',
    delta_usd Decimal(38, 12),
    corrections_sent UInt64 COMMENT 'budget corrections sent to the stream for current periods'
)
ENGINE = ReplacingMergeTree
ORDER BY run_id;
