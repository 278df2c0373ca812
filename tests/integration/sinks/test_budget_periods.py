"""Which budget period the dashboard shows, and which the report takes (real embedded ClickHouse)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from meterline.messages import BudgetState
from meterline.sinks.migrations import apply_migrations
from meterline.sinks.named_queries import DashboardFilter
from meterline.sinks.query import run_named_query
from tests.support.cost_data import write_records

pytestmark = pytest.mark.integration


def test_each_budget_shows_once_at_the_period_overlapping_most_and_the_report_finds_months_by_key(
    chdb_client: Any,
) -> None:
    apply_migrations(chdb_client)

    def state(budget: str, period: str, start: datetime, end: datetime) -> bytes:
        return (
            BudgetState(
                team="search",
                budget=budget,
                period=period,
                period_start=start,
                period_end=end,
                spend_usd=Decimal(1),
                limit_usd=Decimal(10),
                percent=Decimal(10),
                hard_limit=False,
                over_hard_limit=False,
                unpriced_events=0,
                updated_at=start,
            )
            .model_dump_json()
            .encode()
        )

    days = [
        state("daily", f"2026-11-{d:02d}", datetime(2026, 11, d, tzinfo=UTC), datetime(2026, 11, d + 1, tzinfo=UTC))
        for d in (3, 4, 5)
    ]
    # A Europe/Berlin month: its bounds are an hour before the UTC month's.
    berlin = [
        state("monthly", key, start, end)
        for key, start, end in (
            ("2026-11", datetime(2026, 10, 31, 23, tzinfo=UTC), datetime(2026, 11, 30, 23, tzinfo=UTC)),
            ("2026-12", datetime(2026, 11, 30, 23, tzinfo=UTC), datetime(2026, 12, 31, 23, tzinfo=UTC)),
        )
    ]
    write_records(chdb_client, "budget", "b.budget.state", days + berlin)
    flt = DashboardFilter.for_month("2026-11")
    result = run_named_query(chdb_client, "budgets", flt.parameters())
    assert [(row[1], row[2]) for row in result.rows] == [("daily", "2026-11-05"), ("monthly", "2026-11")]
    months = run_named_query(chdb_client, "month_budgets", flt.parameters())
    assert [(row[1], row[2]) for row in months.rows] == [("monthly", "2026-11")]
