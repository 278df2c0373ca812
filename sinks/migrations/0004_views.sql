-- Views for people. Rollup views sum() usage_hourly, so they are exact before and after
-- background merges.
CREATE VIEW IF NOT EXISTS spend_per_team_day AS
SELECT
    toDate(hour) AS day,
    team,
    sum(requests) AS requests,
    sum(cost_usd) AS cost_usd
FROM usage_hourly
GROUP BY day, team;

CREATE VIEW IF NOT EXISTS spend_per_team_month AS
SELECT
    toStartOfMonth(hour) AS month,
    team,
    sum(requests) AS requests,
    sum(cost_usd) AS cost_usd
FROM usage_hourly
GROUP BY month, team;

CREATE VIEW IF NOT EXISTS spend_per_model AS
SELECT
    toStartOfMonth(hour) AS month,
    provider,
    model,
    sum(requests) AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cost_usd) AS cost_usd
FROM usage_hourly
GROUP BY month, provider, model;

CREATE VIEW IF NOT EXISTS cost_per_1k_requests AS
SELECT
    toStartOfMonth(hour) AS month,
    team,
    provider,
    model,
    sum(requests) AS requests,
    sum(cost_usd) AS cost_usd,
    cost_usd * 1000 / requests AS cost_per_1k_requests_usd
FROM usage_hourly
GROUP BY month, team, provider, model;

CREATE VIEW IF NOT EXISTS cache_batch_savings AS
SELECT
    toStartOfMonth(hour) AS month,
    team,
    sum(cache_hits) AS cache_hits,
    sum(cache_saving_usd) AS cache_saving_usd,
    sum(batch_requests) AS batch_requests,
    sum(batch_saving_usd) AS batch_saving_usd,
    cache_saving_usd + batch_saving_usd AS total_saving_usd
FROM usage_hourly
GROUP BY month, team;

-- The latest state of every budget period.
CREATE VIEW IF NOT EXISTS spend_vs_budget AS
SELECT
    team,
    budget,
    period,
    argMax(period_start, updated_at) AS period_start,
    argMax(period_end, updated_at) AS period_end,
    argMax(spend_usd, updated_at) AS spend_usd,
    argMax(limit_usd, updated_at) AS limit_usd,
    argMax(percent, updated_at) AS percent,
    limit_usd - spend_usd AS remaining_usd,
    argMax(hard_limit, updated_at) AS hard_limit,
    argMax(over_hard_limit, updated_at) AS over_hard_limit,
    argMax(unpriced_events, updated_at) AS unpriced_events,
    max(updated_at) AS last_updated_at
FROM budget_snapshots
GROUP BY team, budget, period;
