"""meterline/pricing/usage.py: the one keyword signature of a call's usage, and its rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from meterline.pricing import InvalidUsageError, PriceCatalog
from meterline.pricing.estimate import estimate
from meterline.pricing.usage import check_usage

AT = datetime(2025, 6, 1, tzinfo=UTC)


def test_omitted_counts_and_flags_are_zero_and_false() -> None:
    assert check_usage({"input_tokens": 10, "output_tokens": 5}) == (10, 5, 0, 0, 0, False, False)


@pytest.mark.parametrize(
    ("usage", "error"),
    [
        ({"input_tokens": 1, "output_tokens": 1, "cache_reads": 1}, TypeError),
        ({"input_tokens": 1}, TypeError),
        ({"input_tokens": -1, "output_tokens": 1}, InvalidUsageError),
        ({"input_tokens": 1, "output_tokens": 1, "cache_read_tokens": 1, "cache_write_tokens": 1}, InvalidUsageError),
        ({"input_tokens": 1, "output_tokens": 1, "reasoning_tokens": 2}, InvalidUsageError),
    ],
)
def test_price_and_estimate_refuse_the_same_usage(
    bundled_catalog: PriceCatalog, usage: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        bundled_catalog.price(provider="openai", model="gpt-4o", at=AT, **usage)
    with pytest.raises(error):
        estimate(bundled_catalog, provider="openai", model="gpt-4o", requests_per_day=1, at=AT, **usage)


def test_estimate_prices_a_request_as_price_does(bundled_catalog: PriceCatalog) -> None:
    usage: dict[str, Any] = {"input_tokens": 1000, "output_tokens": 300, "cache_read_tokens": 200, "batch": True}
    one = bundled_catalog.price(provider="openai", model="gpt-4o", at=AT, **usage)
    found = estimate(bundled_catalog, provider="openai", model="gpt-4o", requests_per_day=10, at=AT, **usage)
    assert found.per_request == one and found.periods["daily"] == one.cost_usd * 10
