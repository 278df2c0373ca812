"""What a dashboard request may ask for (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from meterline.budgets.outlook import BudgetThresholds, budget_outlook
from meterline.sinks.errors import QueryParameterError
from meterline.sinks.named_queries import DashboardFilter, month_start, next_month, previous_month

TODAY = date(2026, 11, 20)


def test_the_default_period_is_the_30_days_up_to_today_inclusive() -> None:
    flt = DashboardFilter.from_query({}, today=TODAY)
    assert (flt.start, flt.end, flt.bucket) == (
        datetime(2026, 10, 22, tzinfo=UTC),
        datetime(2026, 11, 21, tzinfo=UTC),
        "day",
    )
    assert DashboardFilter.from_query(flt.query(), today=TODAY) == flt


def test_filters_round_trip_through_the_query_string() -> None:
    flt = DashboardFilter.for_month("2026-12", team="search", model="gpt-4o")
    assert flt.query() == {
        "from": "2026-12-01",
        "to": "2026-12-31",
        "bucket": "day",
        "team": "search",
        "model": "gpt-4o",
    }
    assert DashboardFilter.from_query(flt.query(), today=TODAY) == flt


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"from": "2026-11-32"}, "from must be a date"),
        ({"to": "2026-01-01"}, "before"),
        ({"bucket": "minute"}, "bucket must be one of"),
        ({"from": "2026-01-01", "bucket": "hour"}, "use bucket=day"),
        ({"team": "a\\nb".replace("\\n", "\n")}, "printable"),
        ({"q": "SELECT 1"}, "unknown parameter"),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(query: dict[str, str], says: str) -> None:
    with pytest.raises(QueryParameterError, match=says):
        DashboardFilter.from_query(query, today=TODAY)


def test_months() -> None:
    assert month_start("2026-12") == datetime(2026, 12, 1, tzinfo=UTC)
    assert next_month(month_start("2026-12")) == datetime(2027, 1, 1, tzinfo=UTC)
    assert previous_month(month_start("2026-01")) == datetime(2025, 12, 1, tzinfo=UTC)
    with pytest.raises(QueryParameterError, match="YYYY-MM"):
        month_start("2026-1")


def test_budget_outlook_projects_the_running_period_only() -> None:
    row = {
        "team": "a",
        "budget": "monthly",
        "period": "2026-11",
        "spend_usd": Decimal(10),
        "limit_usd": Decimal(100),
        "period_start": datetime(2026, 11, 1, tzinfo=UTC),
        "period_end": datetime(2026, 12, 1, tzinfo=UTC),
    }
    mid = datetime(2026, 11, 16, tzinfo=UTC)
    (out,) = budget_outlook([row], [BudgetThresholds("a/monthly", (Decimal(50), Decimal(80)))], mid)
    assert out["forecast_usd"] == Decimal(20) and out["threshold_usd"] == [Decimal(50), Decimal(80)]
    (after,) = budget_outlook([row], [], datetime(2026, 12, 2, tzinfo=UTC))
    assert after["forecast_usd"] is None and after["thresholds"] == []
