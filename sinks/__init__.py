"""meterline.sinks: the ClickHouse schema (migrations), the batched idempotent sink, read-only SQL.

Pure logic: `rows`, `insert_plan` (rows and inserts planned from Kafka records), `buffer`
(records cut into offset-range batches), `refusals`, `sql_guard` + `sql_allowlist` (what /sql
lets through), `replicated` (the migrations' DDL for a ClickHouse cluster), `stall` (when the
sink's consumer stopped taking records), `named_queries` (the SQL of the dashboard and the
report, and what a request may ask for). I/O: `client` (+ `clickhouse_fence`), `writer`, `runner` (`SinkRunner`),
`migrations`, `query`, `routing` (where a read-only query runs, and the CLI's calls to the
worker), `web` (/sql), `dashboard_api` (/api/dashboard/), `dbinfo`. Correcting the past: `reprice`
(a run's pages, rollup deltas, audit), `reprice_service` (a run from the settings), `reprice_cli`,
`reprice_web` (the worker's /reprice), `budget_corrections` (the corrections sent to the stream
over Kafka), `reconcile_store` (meterline's side of a reconciliation and its stored result).
`grafana/` holds Grafana's provisioning and dashboard JSON.

May import: the core, clickhouse-connect, kafka-python and aiohttp; never the stream, alerts or
producers. Heavy imports stay inside the modules that need them: import
`meterline.sinks.runner.SinkRunner` and `meterline.sinks.web.make_sql_handler` directly.
"""

from meterline.sinks.migrations import Migration, apply_migrations
from meterline.sinks.query import run_readonly_query

TABLES = (
    "usage_events",
    "usage_hourly",
    "budget_snapshots",
    "dlq_events",
    "unpriced_events",
    "alert_deliveries",
    "sink_batches",
    "reprice_runs",
    "reconciliations",
    "schema_migrations",
)
VIEWS = (
    "spend_per_team_day",
    "spend_per_team_month",
    "spend_per_model",
    "cost_per_1k_requests",
    "cache_batch_savings",
    "spend_vs_budget",
)

__all__ = ["TABLES", "VIEWS", "Migration", "apply_migrations", "run_readonly_query"]
