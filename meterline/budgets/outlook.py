"""A budget period's outlook for people: its forecast and thresholds beside the stored state (pure).

The stored state (`spend_vs_budget`) has spend and limit; the forecast is the alerts' own
burn-rate projection (`forecast_spend`) at `now`, and the thresholds are the configured ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from meterline.budgets.periods import Period
from meterline.budgets.rules import forecast_spend, threshold_amount


@dataclass(frozen=True)
class BudgetThresholds:
    """The configured thresholds (percent) of one budget, by its `team/name` key."""

    key: str
    percents: tuple[Decimal, ...]


def budget_outlook(
    rows: Iterable[Mapping[str, Any]], thresholds: Sequence[BudgetThresholds], now: datetime
) -> list[dict[str, Any]]:
    """Each `spend_vs_budget` row with `forecast_usd` (None once the period ended or before it
    began), `thresholds` (percent) and `threshold_usd` (the spend at each)."""
    by_key = {t.key: t.percents for t in thresholds}
    out = []
    for row in rows:
        spend, limit = Decimal(row["spend_usd"]), Decimal(row["limit_usd"])
        period = Period(str(row["period"]), _aware(row["period_start"]), _aware(row["period_end"]))
        forecast = None
        if period.start <= now < period.end:
            forecast = forecast_spend(spend, period.elapsed_fraction(now))
        percents = by_key.get(f"{row['team']}/{row['budget']}", ())
        out.append(
            {
                **row,
                "forecast_usd": forecast,
                "thresholds": list(percents),
                "threshold_usd": [threshold_amount(limit, p) for p in percents],
            }
        )
    return out


def _aware(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
