"""The SQL the demo's live display and its report read, through the worker's /sql endpoint.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from meterline.settings import Settings

STORED_EVENTS = "SELECT uniqExact(event_id) AS stored FROM usage_events"
BUDGETS = """
SELECT team, budget, period, period_start, spend_usd, limit_usd, percent, hard_limit, over_hard_limit
FROM spend_vs_budget
ORDER BY team, budget, period_start
"""
DELIVERIES = """
SELECT channel, countIf(status = 'sent') AS sent, countIf(status = 'failed') AS failed,
       countIf(status = 'sending') AS sending
FROM alert_deliveries FINAL
GROUP BY channel
ORDER BY channel
"""
TOTALS = """
SELECT count() AS rows, uniqExact(event_id) AS distinct_events, sum(cost_usd) AS cost_usd,
       countIf(NOT priced) AS unpriced
FROM usage_events FINAL
"""
PER_TEAM = """
SELECT team, sum(requests) AS requests, sum(cost_usd) AS cost_usd
FROM spend_per_team_day
GROUP BY team
ORDER BY team
"""
PER_MODEL = """
SELECT provider, model, sum(requests) AS requests, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd
FROM spend_per_model
GROUP BY provider, model
ORDER BY cost_usd DESC, model
"""
SAVINGS = """
SELECT team, sum(cache_hits) AS cache_hits, sum(cache_saving_usd) AS cache_saving_usd,
       sum(batch_requests) AS batch_requests, sum(batch_saving_usd) AS batch_saving_usd
FROM cache_batch_savings
GROUP BY team
ORDER BY team
"""
ALERTS = """
SELECT alert_id, kind, team, budget, channel, target, status, reason
FROM alert_deliveries FINAL
ORDER BY team, budget, alert_id, channel
"""
DLQ = "SELECT count() AS dead_letters FROM dlq_events FINAL"

Row = dict[str, Any]


def select(settings: Settings, sql: str, timeout: float = 30.0) -> list[Row]:
    """Rows of one read-only query run by the worker (money and big integers come as strings)."""
    from meterline.sinks.routing import query_via_worker

    _, body = query_via_worker(settings, sql, "json", timeout=timeout)
    rows: list[Row] = json.loads(body)["rows"]
    return rows


def money(value: Any) -> Decimal:
    """An exact Decimal from a JSON money value (a string, or 0 for an empty sum)."""
    return Decimal(str(value)) if value is not None else Decimal(0)


def count(value: Any) -> int:
    return int(value) if value is not None else 0
