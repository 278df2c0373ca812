"""Regenerate docs/queries.md: run its queries on 20,000 sample priced events (`.venv/bin/python docs/make_queries.py`)."""

import sys
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from meterline.messages import BudgetState
from meterline.sinks.client import open_client
from meterline.sinks.insert_plan import OffsetRange, RangeBatch, SourceRecord, plan_inserts
from meterline.sinks.migrations import apply_migrations
from meterline.sinks.query import run_readonly_query
from meterline.sinks.writer import write_batch

# The sample data lives with the tests (it is not shipped); run from anywhere, import it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.samples import sample_priced_events

QUERIES = [
    (
        "Spend per team per day (last 5 days of data)",
        "SELECT day, team, requests, cost_usd FROM spend_per_team_day WHERE day >= '2026-11-10' ORDER BY day, team",
    ),
    (
        "Spend per team per month",
        "SELECT month, team, requests, round(cost_usd, 4) AS cost_usd FROM spend_per_team_month ORDER BY month, cost_usd DESC",
    ),
    (
        "Spend per model this month",
        "SELECT provider, model, requests, input_tokens, output_tokens, round(cost_usd, 4) AS cost_usd FROM spend_per_model WHERE month = '2026-10-01' ORDER BY cost_usd DESC",
    ),
    (
        "Cost per 1,000 requests by model (October)",
        "SELECT provider, model, sum(requests) AS total_requests, round(sum(cost_usd) * 1000 / total_requests, 4) AS usd_per_1k_requests FROM cost_per_1k_requests WHERE month = '2026-10-01' GROUP BY provider, model ORDER BY usd_per_1k_requests DESC",
    ),
    (
        "Cache and batch savings per team",
        "SELECT month, team, cache_hits, round(cache_saving_usd, 4) AS cache_saving_usd, batch_requests, round(batch_saving_usd, 4) AS batch_saving_usd, round(total_saving_usd, 4) AS total_saving_usd FROM cache_batch_savings ORDER BY month, team",
    ),
    (
        "Spend against budget (latest state of each budget period)",
        "SELECT team, budget, period, spend_usd, limit_usd, round(percent, 1) AS percent, remaining_usd, hard_limit FROM spend_vs_budget ORDER BY percent DESC",
    ),
    (
        "Top projects by spend in October",
        "SELECT team, project, sum(requests) AS total_requests, round(sum(cost_usd), 4) AS spend_usd FROM usage_hourly WHERE hour >= '2026-10-01' AND hour < '2026-11-01' GROUP BY team, project ORDER BY spend_usd DESC LIMIT 5",
    ),
    (
        "Busiest hours of the day (UTC) for one team",
        "SELECT toHour(hour) AS hour_utc, sum(requests) AS total_requests, round(sum(cost_usd), 4) AS spend_usd FROM usage_hourly WHERE team = 'search' GROUP BY hour_utc ORDER BY spend_usd DESC LIMIT 5",
    ),
    (
        "Most expensive single calls (raw events, collapsed with FINAL)",
        "SELECT occurred_at, team, model, input_tokens, output_tokens, cost_usd FROM usage_events FINAL ORDER BY cost_usd DESC LIMIT 5",
    ),
    (
        "Models without a price (what to add to the catalog)",
        "SELECT provider, model, count() AS events, sum(input_tokens) AS total_input_tokens, any(unpriced_reason) AS reason FROM unpriced_events FINAL GROUP BY provider, model ORDER BY events DESC",
    ),
    (
        "Spend by a tag (feature), from the raw events",
        "SELECT tags['feature'] AS feature, count() AS requests, round(sum(cost_usd), 4) AS spend_usd FROM usage_events FINAL GROUP BY feature ORDER BY spend_usd DESC",
    ),
    (
        "Error rate and latency per model",
        "SELECT model, count() AS requests, round(countIf(status = 'error') / count() * 100, 2) AS error_pct, quantile(0.5)(latency_ms) AS p50_ms, quantile(0.95)(latency_ms) AS p95_ms FROM usage_events FINAL GROUP BY model ORDER BY requests DESC",
    ),
    (
        "Cache-read share of input tokens per provider",
        "SELECT provider, sum(input_tokens) AS prompt_tokens, sum(cache_read_tokens) AS cached_tokens, round(cached_tokens / prompt_tokens * 100, 1) AS cached_pct FROM usage_hourly GROUP BY provider ORDER BY prompt_tokens DESC",
    ),
]
LATER_QUERIES = [
    (
        "Re-price runs (`meterline reprice`): scope, what changed, the delta",
        "SELECT run_id, since, team, events_scanned, events_changed, events_newly_priced, round(delta_usd, 6) AS delta_usd, corrections_sent FROM reprice_runs FINAL ORDER BY started_at",
    ),
    (
        "What a re-price changed, per model: the cost before and after",
        "SELECT reprice_run_id, model, count() AS events, round(sum(previous_cost_usd), 6) AS before_usd, round(sum(cost_usd), 6) AS after_usd, any(price_id) AS price_id FROM usage_events FINAL WHERE reprice_run_id != '' GROUP BY reprice_run_id, model ORDER BY model",
    ),
    (
        "Where the provider's report disagrees (`meterline reconcile`)",
        "SELECT day, model, status, differing, our_output_tokens, provider_output_tokens, our_requests, provider_requests FROM reconciliations FINAL WHERE status != 'matched' ORDER BY day, model",
    ),
]

events = sample_priced_events(20000, seed=2026)
folder = tempfile.mkdtemp()
c = open_client(f"chdb://{folder}/ch")
apply_migrations(c)
recs = [
    SourceRecord("meterline.usage.priced", 0, i, None, e.model_dump_json().encode(), 0) for i, e in enumerate(events)
]
for start in range(0, len(recs), 5000):
    chunk = recs[start : start + 5000]
    for ins in plan_inserts(
        "priced", RangeBatch(OffsetRange("meterline.usage.priced", 0, start, start + len(chunk) - 1), chunk)
    ):
        write_batch(c, ins)
spend = {}
for e in events:
    if e.occurred_at.astimezone(UTC).month == 11:
        spend[e.team] = spend.get(e.team, Decimal(0)) + e.cost_usd
limits = {"search": Decimal(40), "support": Decimal(25), "growth": Decimal(60), "platform": Decimal(30)}
states = []
for team, total in sorted(spend.items()):
    states.append(
        BudgetState(
            team=team,
            budget="monthly",
            period="2026-11",
            period_start=datetime(2026, 11, 1, tzinfo=UTC),
            period_end=datetime(2026, 12, 1, tzinfo=UTC),
            spend_usd=total.quantize(Decimal("0.000001")),
            limit_usd=limits[team],
            percent=(total * 100 / limits[team]).quantize(Decimal("0.000001")),
            hard_limit=team == "growth",
            over_hard_limit=False,
            unpriced_events=0,
            updated_at=datetime(2026, 11, 15, tzinfo=UTC),
        )
    )
br = [SourceRecord("meterline.budget.state", 0, i, None, s.model_dump_json().encode(), 0) for i, s in enumerate(states)]
for ins in plan_inserts("budget", RangeBatch(OffsetRange("meterline.budget.state", 0, 0, len(br) - 1), br)):
    write_batch(c, ins)


def correct_history():
    """One reprice and one reconcile run, for examples 14-16 (after 1-13 show the data as the stream priced it)."""
    # `meterline reprice --since 2026-11-01 --team search` with genai-prices' bundled catalog (the
    # sample events were priced from a small fixed table, named `sample:...`).
    from meterline.pricing import PriceCatalog
    from meterline.pricing.reprice import RepriceScope
    from meterline.settings import PricingSettings
    from meterline.sinks.reprice import run_reprice

    run_reprice(
        c,
        PriceCatalog.load(PricingSettings()),
        RepriceScope(since=datetime(2026, 11, 1, tzinfo=UTC), team="search"),
        run_id="r20261115T120000Z-docs",
        catalog_fingerprint="docs",
        apply=True,
        now=lambda: datetime(2026, 11, 15, 12, tzinfo=UTC),
    )

    # `meterline reconcile`: an OpenAI usage report for 2026-11-14 as the provider would send it,
    # built from the stored events, with gpt-4o's output tokens 3 % higher and gpt-4o-mini left out.
    from dataclasses import replace as _replace
    from datetime import date

    from meterline.reconcile.matching import Tolerance, reconcile
    from meterline.reconcile.reports import ProviderReport
    from meterline.sinks.reconcile_store import our_lines, result_rows, store_reconciliation

    day = date(2026, 11, 14)
    ours = our_lines(c, "openai", day, day, by_scope=False)
    theirs = {
        key: _replace(
            m,
            cache_write_tokens=None,
            cost_usd=None,
            output_tokens=m.output_tokens * 103 // 100 if key.model == "gpt-4o" else m.output_tokens,
        )
        for key, m in ours.items()
        if key.model != "gpt-4o-mini"
    }
    result = reconcile(ProviderReport("openai", "usage", theirs), ours, Tolerance())
    store_reconciliation(
        c,
        result_rows(
            "c20261115T120000Z-docs", datetime(2026, 11, 15, 12, tzinfo=UTC), ["usage.json"], result, Tolerance()
        ),
    )


out = [
    "# Cost questions in SQL",
    "",
    "People answer cost questions with plain ClickHouse SQL. `meterline sql` runs one read-only",
    "statement (SELECT, WITH, SHOW TABLES, EXPLAIN of a SELECT) against the embedded",
    "database, a ClickHouse server (`METERLINE_CLICKHOUSE_DSN=http://user:pass@host:8123/db`), or,",
    "while `meterline worker` holds the embedded database, through the worker's `/sql` endpoint:",
    "",
    "```console",
    '$ meterline sql "SELECT * FROM spend_per_team_month" --format table   # or csv, json',
    "```",
    "",
    "JSON output carries money as exact decimal strings. Writes and DDL are refused with a clear error,",
    "and so is anything beyond the cost database: files, URLs, other servers and databases, dictionaries,",
    "SETTINGS, FORMAT and INTO OUTFILE; the functions allowed are listed in `sinks/sql_allowlist.py`.",
    "Columns of a table: `SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'usage_events'`.",
    "",
    "## Tables and views",
    "",
    "| name | what it holds |",
    "| --- | --- |",
    "| `usage_events` | every priced event (all `PricedEvent` fields, `cost_usd` is the total); ReplacingMergeTree on `event_id`: add `FINAL` for exact counts on raw rows. A row re-priced by `meterline reprice` names its run (`reprice_run_id`) and keeps the replaced row's money in `previous_*` |",
    "| `usage_hourly` | hourly rollup by team, project, provider, model (SummingMergeTree, kept by `usage_hourly_mv`): always `sum()` its columns |",
    "| `budget_snapshots` | every budget state the stream published (`budget.state`) |",
    "| `unpriced_events` | events no price was found for |",
    "| `dlq_events` | messages the pipeline could not accept, with the reason and original bytes (base64) |",
    "| `alert_deliveries` | alert delivery log (Slack, email, console) |",
    "| `reprice_runs` | one row per applied `meterline reprice` run: catalog fingerprint, scope, counts, delta, corrections sent |",
    "| `reconciliations` | one row per UTC day x model (x scope) of each `meterline reconcile` run: status, the figures over tolerance, both sides' tokens, requests and cost |",
    "| `spend_per_team_day`, `spend_per_team_month` | requests and spend per team per UTC day / month |",
    "| `spend_per_model` | requests, tokens and spend per provider and model per month |",
    "| `cost_per_1k_requests` | spend per 1,000 requests per team, provider, model, month |",
    "| `cache_batch_savings` | what cache hits and batch discounts saved per team per month |",
    "| `spend_vs_budget` | the latest state of every budget period, with what remains |",
    "",
    "Money columns are `Decimal(38, 12)` USD; times are UTC (`DateTime64(…, 'UTC')`).",
    "",
    "## Examples",
    "",
    "The output below is real: it was produced by running each query on 20,000 realistic priced",
    "events (`tests.support.samples.sample_priced_events(20000, seed=2026)`, 2026-10-01 to",
    "2026-11-15) written by the sink's own insert path, plus one budget state per team. Before",
    "examples 14 to 16, one `meterline reprice --since 2026-11-01 --team search` run with genai-prices'",
    "bundled catalog and one `meterline reconcile` of an OpenAI usage report for 2026-11-14 with two",
    "planted gaps.",
    "Regenerate with `.venv/bin/python docs/make_queries.py`.",
    "",
]
for i, (title, sql) in enumerate(QUERIES + LATER_QUERIES, 1):
    if i == len(QUERIES) + 1:
        correct_history()
    _, body = run_readonly_query(c, sql, "table")
    out += [f"### {i}. {title}", "", "```sql", sql, "```", "", "```text", body.decode().rstrip("\n"), "```", ""]
c.close()
(Path(__file__).resolve().parent / "queries.md").write_text("\n".join(out), encoding="utf-8")
