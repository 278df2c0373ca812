"""The bundled catalog: provider and model names as they arrive, dates, batch, cache hits, misses."""

from __future__ import annotations

import socket
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterline.events import UsageEvent
from meterline.messages import PricedEvent
from meterline.pricing import InvalidUsageError, PriceCatalog, PriceResult
from meterline.pricing.catalog import bundled_providers
from meterline.pricing.result import make_result, unpriced
from meterline.settings import PricingSettings

NOV_2026 = datetime(2026, 11, 20, 12, tzinfo=UTC)


def price(catalog: PriceCatalog, provider: str, model: str, **usage: object) -> PriceResult:
    counts: dict[str, object] = {"input_tokens": 1_000, "output_tokens": 500, "at": NOV_2026, **usage}
    return catalog.price(provider=provider, model=model, **counts)  # type: ignore[arg-type]  # the parametrised token counts are ints


@pytest.mark.parametrize(
    ("provider", "catalog_provider"),
    [
        ("google", "google"),
        ("gemini", "google"),
        ("google-gla", "google"),
        ("vertex", "google"),
        ("vertex_ai", "google"),
        ("Azure", "azure"),
        ("azure_openai", "azure"),
        ("bedrock", "aws"),
        ("aws", "aws"),
        ("anthropic", "anthropic"),
        ("openai", "openai"),
        ("mistral", "mistral"),
        ("mistralai", "mistral"),
        ("xai", "x-ai"),
        ("together_ai", "together"),
        ("fireworks_ai", "fireworks"),
        ("deepseek", "deepseek"),
    ],
)
def test_provider_names_users_write_map_onto_catalog_ids(
    bundled_catalog: PriceCatalog, provider: str, catalog_provider: str
) -> None:
    assert bundled_catalog.provider_id(provider) == catalog_provider


def test_gpt_4o_costs_hand_computed_amounts(bundled_catalog: PriceCatalog) -> None:
    # gpt-4o: $2.50 input, $1.25 cache read, $10 output per million
    result = price(
        bundled_catalog, "openai", "gpt-4o", input_tokens=10_000, cache_read_tokens=4_000, output_tokens=2_000
    )
    assert result.input_cost_usd == Decimal("0.015")
    assert result.cache_read_cost_usd == Decimal("0.005")
    assert result.output_cost_usd == Decimal("0.02")
    assert result.cost_usd == Decimal("0.04")
    assert result.price_id == "genai-prices:openai:gpt-4o"
    assert result.price_source == "genai-prices"
    assert all(getattr(result, f.name).as_tuple().exponent == -12 for f in fields(result) if f.name.endswith("_usd"))


@pytest.mark.parametrize(
    "model", ["gpt-4o", "GPT-4o", "gpt-4o-2024-08-06", "openai/gpt-4o", "openai/gpt-4o-2024-11-20", " gpt-4o "]
)
def test_prefixed_dated_and_cased_names_resolve_to_the_same_entry(bundled_catalog: PriceCatalog, model: str) -> None:
    assert price(bundled_catalog, "openai", model).price_id == "genai-prices:openai:gpt-4o"


def test_a_snapshot_with_its_own_price_keeps_it(bundled_catalog: PriceCatalog) -> None:
    snapshot = price(bundled_catalog, "openai", "gpt-4o-2024-05-13")
    base = price(bundled_catalog, "openai", "gpt-4o")
    assert snapshot.price_id == "genai-prices:openai:gpt-4o-2024-05-13"
    assert snapshot.cost_usd == Decimal("0.0125")  # $5 / $15 per million
    assert snapshot.cost_usd != base.cost_usd


def test_fallback_providers_price_the_models_they_serve(bundled_catalog: PriceCatalog) -> None:
    # Azure serves OpenAI's models; the result names the entry it used.
    azure = price(bundled_catalog, "azure", "gpt-4o-mini")
    assert azure.priced and azure.price_id is not None and ":gpt-4o-mini" in azure.price_id
    gemini = price(bundled_catalog, "google-gla", "gemini-2.5-flash")
    assert gemini.price_id == "genai-prices:google:gemini-2.5-flash"


def test_effective_dates_in_the_bundled_data(bundled_catalog: PriceCatalog) -> None:
    before = price(bundled_catalog, "openai", "o3", at=datetime(2025, 6, 9, 23, 59, tzinfo=UTC))
    after = price(bundled_catalog, "openai", "o3", at=datetime(2025, 6, 10, 0, 1, tzinfo=UTC))
    assert (before.price_id, before.cost_usd) == ("genai-prices:openai:o3", Decimal("0.03"))  # $10 / $40
    assert (after.price_id, after.cost_usd) == ("genai-prices:openai:o3@2025-06-10", Decimal("0.006"))  # $2 / $8


def test_time_of_day_prices_change_within_one_day(bundled_catalog: PriceCatalog) -> None:
    peak = price(bundled_catalog, "deepseek", "deepseek-chat", at=datetime(2025, 3, 1, 3, tzinfo=UTC))
    off_peak = price(bundled_catalog, "deepseek", "deepseek-chat", at=datetime(2025, 3, 1, 17, tzinfo=UTC))
    assert peak.price_id != off_peak.price_id
    assert off_peak.cost_usd < peak.cost_usd


def test_cache_hit_costs_nothing_and_reports_the_saving(bundled_catalog: PriceCatalog) -> None:
    standard = price(bundled_catalog, "anthropic", "claude-sonnet-4-5", cache_read_tokens=200)
    hit = price(bundled_catalog, "anthropic", "claude-sonnet-4-5", cache_read_tokens=200, cache_hit=True)
    assert hit.priced and hit.price_id == standard.price_id
    assert hit.cost_usd == hit.input_cost_usd == hit.cache_read_cost_usd == hit.output_cost_usd == 0
    assert hit.cache_saving_usd == standard.cost_usd > 0


def test_batch_uses_the_providers_batch_price_or_half(bundled_catalog: PriceCatalog) -> None:
    # gpt-4o's own batch price (from 2026-10-14): $1.25 input, $5 output per million.
    batch = price(bundled_catalog, "openai", "gpt-4o", batch=True)
    assert batch.cost_usd == Decimal("0.00375")
    assert batch.batch_saving_usd == Decimal("0.0075") - Decimal("0.00375")
    # Before that, genai-prices has no batch price: OpenAI's batch API bills half.
    early = price(bundled_catalog, "openai", "gpt-4o", batch=True, at=datetime(2025, 1, 1, tzinfo=UTC))
    assert (early.cost_usd, early.batch_saving_usd) == (Decimal("0.00375"), Decimal("0.00375"))


def test_unknown_models_and_providers_are_unpriced_with_a_reason(bundled_catalog: PriceCatalog) -> None:
    for provider, model, words in [
        ("openai", "gpt-99-ultra", "no price for model 'gpt-99-ultra' of provider 'openai'"),
        ("acme", "gpt-4o", "unknown provider 'acme'"),
    ]:
        result = price(bundled_catalog, provider, model)
        assert not result.priced and result.price_id is None
        assert result.unpriced_reason is not None and words in result.unpriced_reason
        assert result == unpriced(result.unpriced_reason)
        assert result.cost_usd == result.input_cost_usd == result.cache_saving_usd == 0


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": -1},
        {"input_tokens": 10, "cache_read_tokens": 6, "cache_write_tokens": 5},
        {"output_tokens": 10, "reasoning_tokens": 11},
    ],
)
def test_impossible_token_counts_raise(bundled_catalog: PriceCatalog, usage: dict[str, int]) -> None:
    with pytest.raises(InvalidUsageError):
        price(bundled_catalog, "openai", "gpt-4o", **usage)


def test_price_event_uses_occurred_at_and_splats_into_priced_event(bundled_catalog: PriceCatalog) -> None:
    event = UsageEvent(
        occurred_at=datetime(2025, 6, 9, 12, tzinfo=UTC),
        team="search",
        provider="openai",
        model="openai/o3",
        input_tokens=1_000,
        output_tokens=500,
    )
    result = bundled_catalog.price_event(event)
    assert result.price_id == "genai-prices:openai:o3"
    priced = PricedEvent(**event.model_dump(), **result.as_fields(), ingested_at=NOV_2026)
    assert priced.cost_usd == Decimal("0.03")
    assert set(result.as_fields()) <= set(PricedEvent.model_fields)


def test_the_fast_constructor_builds_equal_results() -> None:
    values = (True, None, "id", "src", *(Decimal(n) for n in range(7)))
    assert make_result(*values) == PriceResult(*values)  # type: ignore[arg-type]  # the values are the test's table of fields
    with pytest.raises(AttributeError):
        make_result(*values).cost_usd = Decimal(1)  # type: ignore[arg-type,misc]  # the test checks that the frozen result refuses it


def test_the_resolved_entry_cache_is_bounded_and_refills(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("meterline.pricing.catalog.CACHE_LIMIT", 3)
    catalog = PriceCatalog.load(PricingSettings())
    days = [datetime(2025, 1, day, tzinfo=UTC) for day in range(1, 8)]
    first = [price(catalog, "openai", "gpt-4o-mini", at=day).cost_usd for day in days]
    assert len(catalog._cache) <= 3  # the bound is what is tested
    assert [price(catalog, "openai", "gpt-4o-mini", at=day).cost_usd for day in days] == first


def test_loading_and_pricing_never_touch_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pricing opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    catalog = PriceCatalog.load(PricingSettings())
    assert price(catalog, "anthropic", "claude-sonnet-4-5").priced
    assert catalog.provider_ids() == sorted(provider.id for provider in bundled_providers())
