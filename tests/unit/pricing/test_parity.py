"""Parity with genai-prices' own `calc_price` over every model of the major providers.

Usages include cache reads and writes, reasoning, and prompts past the 200k/272k tiers; dates
span price changes, time-of-day windows and batch prices. genai-prices counts cache tokens
inside input_tokens, as meterline does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import types as gp

from meterline.money import quantize_money
from meterline.pricing import PriceCatalog
from meterline.pricing.catalog import bundled_providers
from meterline.pricing.timeline import BATCH_CONTEXT

PROVIDERS = (
    "openai",
    "anthropic",
    "google",
    "aws",
    "azure",
    "mistral",
    "x-ai",
    "deepseek",
    "groq",
    "together",
    "cohere",
)
USAGES = [
    {"input_tokens": 1_000, "output_tokens": 500},
    {"input_tokens": 12_345, "cache_read_tokens": 10_000, "cache_write_tokens": 1_000, "output_tokens": 2_345},
    {"input_tokens": 150_000, "cache_read_tokens": 50_000, "output_tokens": 8_000, "output_reasoning_tokens": 6_000},
    {"input_tokens": 250_001, "cache_read_tokens": 100_000, "cache_write_tokens": 20_000, "output_tokens": 4_000},
    {"input_tokens": 300_000, "cache_read_tokens": 1, "output_tokens": 1},
]
MOMENTS = [
    datetime(2025, 3, 1, 3, tzinfo=UTC),
    datetime(2025, 3, 1, 17, tzinfo=UTC),
    datetime(2026, 3, 12, 12, tzinfo=UTC),
    datetime(2026, 11, 20, 12, tzinfo=UTC),
]


def _per_request_priced(model: gp.ModelInfo) -> bool:
    prices = [model.prices] if isinstance(model.prices, gp.ModelPrice) else [c.prices for c in model.prices]
    return any(getattr(p, "requests_kcount", None) is not None for p in prices)


def _token_priced(model: gp.ModelInfo) -> bool:
    prices = [model.prices] if isinstance(model.prices, gp.ModelPrice) else [c.prices for c in model.prices]
    return all(p.input_mtok is not None or p.output_mtok is not None for p in prices)


def sample() -> list[tuple[str, str]]:
    return [
        (provider.id, model.id)
        for provider in bundled_providers()
        if provider.id in PROVIDERS
        for model in provider.models
        if not _per_request_priced(model)  # a per-request fee is not a token price
    ]


def _ours(
    catalog: PriceCatalog, provider: str, model: str, usage: dict[str, int], at: datetime, batch: bool
) -> tuple[Decimal, Decimal, Decimal] | None:
    result = catalog.price(
        provider=provider,
        model=model,
        input_tokens=usage["input_tokens"],
        output_tokens=usage["output_tokens"],
        cache_read_tokens=usage.get("cache_read_tokens", 0),
        cache_write_tokens=usage.get("cache_write_tokens", 0),
        reasoning_tokens=usage.get("output_reasoning_tokens", 0),
        batch=batch,
        at=at,
    )
    if not result.priced:
        return None
    inputs = result.input_cost_usd + result.cache_read_cost_usd + result.cache_write_cost_usd
    return inputs, result.output_cost_usd, result.cost_usd


def _theirs(
    provider: str, model: str, usage: dict[str, int], at: datetime, batch: bool
) -> tuple[Decimal, Decimal, Decimal]:
    calculation = genai_prices.calc_price(
        genai_prices.Usage(**usage),
        model,
        provider_id=provider,
        genai_request_timestamp=at,
        price_context=BATCH_CONTEXT if batch else None,
    )
    return calculation.input_price, calculation.output_price, calculation.total_price


def _close(ours: Decimal, theirs: Decimal) -> bool:
    # Each of our four parts is rounded to 1e-12 on its own; genai-prices rounds nothing.
    return abs(ours - theirs) <= Decimal("4e-12")


def test_every_sampled_model_and_usage_matches_genai_prices(bundled_catalog: PriceCatalog) -> None:
    models = sample()
    assert len(models) > 350, "the sample should cover the major providers' catalogs"
    compared = tiered = exact = 0
    mismatches: list[str] = []
    for provider, model in models:
        for at in MOMENTS:
            for usage in USAGES:
                ours = _ours(bundled_catalog, provider, model, usage, at, batch=False)
                try:
                    theirs = _theirs(provider, model, usage, at, batch=False)
                except LookupError:  # an id its own match rules miss: neither may price it
                    if ours is not None:
                        mismatches.append(f"{provider}/{model}: priced, genai-prices finds no such model")
                    continue
                if ours is None:
                    if theirs[2] != 0:  # no per-token price (audio hours...): genai-prices says 0
                        mismatches.append(f"{provider}/{model}: unpriced")
                    continue
                compared += 1
                tiered += usage["input_tokens"] > 200_000
                if not all(_close(a, b) for a, b in zip(ours, theirs, strict=True)):
                    mismatches.append(f"{provider}/{model} {usage} at {at}: ours {ours} theirs {theirs}")
                exact += ours[2] == quantize_money(theirs[2])
    assert not mismatches, "\n".join(mismatches[:20])
    # Some ids do not match their own model's rules in genai-prices (both sides skip them).
    assert compared > 9_000
    assert tiered > 0
    assert exact == compared, f"{compared - exact} totals differ in the last 1e-12 digit"


def test_batch_prices_match_genai_prices_batch_variants(bundled_catalog: PriceCatalog) -> None:
    at = datetime(2026, 11, 20, 12, tzinfo=UTC)
    with_batch = [
        (provider.id, model.id)
        for provider in bundled_providers()
        if provider.id in PROVIDERS
        for model in provider.models
        if any(variant.when == BATCH_CONTEXT for variant in model.price_variants or ())
        and not _per_request_priced(model)
        and _token_priced(model)
        and provider.find_model(model.id) is model  # genai-prices resolves the id to this model
    ]
    assert len(with_batch) > 40
    for provider, model in with_batch:
        for usage in USAGES:
            ours = _ours(bundled_catalog, provider, model, usage, at, batch=True)
            theirs = _theirs(provider, model, usage, at, batch=True)
            assert ours is not None, f"{provider}/{model}"
            assert all(_close(a, b) for a, b in zip(ours, theirs, strict=True)), (
                f"{provider}/{model} {usage}: {ours} != {theirs}"
            )
            standard = _theirs(provider, model, usage, at, batch=False)
            assert ours[2] <= quantize_money(standard[2]), f"{provider}/{model}: a batch price is no surcharge"


@pytest.mark.parametrize(
    ("provider", "model"), [("openai", "gpt-5.6-sol"), ("anthropic", "claude-opus-4-6"), ("google", "gemini-2.5-pro")]
)
def test_tiers_cross_exactly_where_genai_prices_crosses(
    bundled_catalog: PriceCatalog, provider: str, model: str
) -> None:
    at = datetime(2026, 1, 10, tzinfo=UTC)
    for threshold in (200_000, 272_000):
        for input_tokens in (threshold, threshold + 1):
            usage = {"input_tokens": input_tokens, "cache_read_tokens": 1_000, "output_tokens": 1_000}
            ours = _ours(bundled_catalog, provider, model, usage, at, batch=False)
            assert ours is not None
            assert ours[2] == quantize_money(_theirs(provider, model, usage, at, batch=False)[2])
