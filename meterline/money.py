"""Money in meterline: exact `Decimal` USD at 1e-12, the precision of ClickHouse Decimal(38, 12). Pure."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

MONEY_QUANTUM: Final = Decimal("1e-12")
"""The smallest amount meterline counts: 1e-12 USD."""
MONEY_ZERO: Final = Decimal("0E-12")
"""Zero at MONEY_QUANTUM, so every money field carries the same exponent."""
MONEY_FIELDS: Final[tuple[str, ...]] = (
    "input_cost_usd",
    "cache_read_cost_usd",
    "cache_write_cost_usd",
    "output_cost_usd",
    "cost_usd",
    "cache_saving_usd",
    "batch_saving_usd",
)
"""The money fields of a price (PriceResult, PricedEvent, usage_events), in column order."""


def quantize_money(amount: Decimal) -> Decimal:
    """Round to 1e-12 USD (Python's context, 28 digits: amounts below 10**16 USD)."""
    return amount.quantize(MONEY_QUANTUM)
