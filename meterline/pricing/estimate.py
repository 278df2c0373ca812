"""Cost estimates: one request's price times requests per day, over standard periods."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final, Unpack

from meterline.pricing.catalog import PriceCatalog
from meterline.pricing.result import PriceResult
from meterline.pricing.usage import TokenUsage

PERIOD_DAYS: Final = {"daily": 1, "weekly": 7, "monthly": 30, "yearly": 365}
"""Days in each estimate period (a month is 30 days, a year 365)."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a steady workload costs per period, at one request's price."""

    provider: str
    model: str
    requests_per_day: int
    per_request: PriceResult
    periods: dict[str, Decimal]
    """`daily`, `weekly`, `monthly`, `yearly` in USD (exact; zero when unpriced)."""


def estimate(
    catalog: PriceCatalog,
    *,
    provider: str,
    model: str,
    requests_per_day: int,
    at: datetime,
    **usage: Unpack[TokenUsage],
) -> Estimate:
    """Price one request at `at` and scale it to every period in PERIOD_DAYS."""
    if requests_per_day < 0:
        raise ValueError("requests_per_day must not be negative")
    per_request = catalog.price(provider=provider, model=model, at=at, **usage)
    daily = per_request.cost_usd * requests_per_day
    periods = {name: daily * days for name, days in PERIOD_DAYS.items()}
    return Estimate(provider, model, requests_per_day, per_request, periods)
