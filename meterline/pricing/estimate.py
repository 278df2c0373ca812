"""Cost estimates: one request's price times requests per day, over standard periods."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from meterline.pricing.catalog import PriceCatalog
from meterline.pricing.result import PriceResult

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
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    batch: bool = False,
    at: datetime,
) -> Estimate:
    """Price one request at `at` and scale it to every period in PERIOD_DAYS."""
    if requests_per_day < 0:
        raise ValueError("requests_per_day must not be negative")
    per_request = catalog.price(
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
        reasoning_tokens=reasoning_tokens,
        batch=batch,
        at=at,
    )
    daily = per_request.cost_usd * requests_per_day
    periods = {name: daily * days for name, days in PERIOD_DAYS.items()}
    return Estimate(provider, model, requests_per_day, per_request, periods)
