-- `meterline reconcile`: one row per (run, UTC day, model, scope) compared with the provider's
-- own report. Figures a side does not have are NULL (the Anthropic usage report counts no
-- requests; a usage report alone has no cost).
CREATE TABLE IF NOT EXISTS reconciliations
(
    run_id String,
    reconciled_at DateTime64(3, 'UTC'),
    provider LowCardinality(String),
    source_files String COMMENT 'the report files compared, comma-separated',
    scope_kind LowCardinality(String) COMMENT 'project_id, workspace_id, api_key_id, or empty when not by scope',
    day Date,
    model String,
    scope String,
    status LowCardinality(String) COMMENT '''matched'' | ''over_tolerance'' | ''missing_ours'' | ''missing_provider''',
    differing Array(String) COMMENT 'the figures over the tolerance',
    tolerance Decimal(38, 12),
    our_input_tokens Nullable(UInt64),
    our_cache_read_tokens Nullable(UInt64),
    our_cache_write_tokens Nullable(UInt64),
    our_output_tokens Nullable(UInt64),
    our_requests Nullable(UInt64),
    our_cost_usd Nullable(Decimal(38, 12)),
    provider_input_tokens Nullable(UInt64),
    provider_cache_read_tokens Nullable(UInt64),
    provider_cache_write_tokens Nullable(UInt64),
    provider_output_tokens Nullable(UInt64),
    provider_requests Nullable(UInt64),
    provider_cost_usd Nullable(Decimal(38, 12))
)
ENGINE = ReplacingMergeTree(reconciled_at)
ORDER BY (run_id, day, model, scope);
