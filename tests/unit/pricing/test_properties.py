"""Properties of every price: parts sum to the total, more tokens never cost less, batch never
costs more, a cache hit costs nothing and saves exactly the call's cost."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.pricing import PriceCatalog, PriceResult
from meterline.pricing.overrides import OverrideRow, PriceRow, TierRow

AT = datetime(2026, 1, 15, 9, tzinfo=UTC)
MONEY_FIELDS = [f.name for f in fields(PriceResult) if f.name.endswith("_usd")]

# Rates with up to 9 decimals: those past 6 need rounding to 1e-12 per token part.
rates = st.decimals(min_value=0, max_value=200, places=3) | st.decimals(min_value=0, max_value=1, places=9)


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    input_tokens = draw(st.integers(0, 2_000_000))
    cache_read = draw(st.integers(0, input_tokens))
    cache_write = draw(st.integers(0, input_tokens - cache_read))
    output_tokens = draw(st.integers(0, 500_000))
    reasoning = draw(st.integers(0, output_tokens))
    return Usage(input_tokens, output_tokens, cache_read, cache_write, reasoning)


@st.composite
def catalogs(draw: st.DrawFn) -> PriceCatalog:
    """A one-model catalog: optional cache/reasoning rates, tiers that never get cheaper."""
    base = {name: draw(rates) for name in ("input", "output")}
    for name in ("cache_read", "cache_write", "reasoning"):
        if draw(st.booleans()):
            base[name] = draw(rates)
    tiers = []
    current = dict(base)
    for start in sorted(draw(st.sets(st.integers(1, 1_000_000), max_size=2))):
        current = {name: value + draw(rates) for name, value in current.items()}
        tiers.append(TierRow(above_input_tokens=start, **current))
    multiplier = draw(st.none() | st.decimals(min_value=Decimal("0.01"), max_value=1, places=2))
    row = PriceRow(
        provider="prop", model="m", effective_from=date(2026, 1, 1), batch_multiplier=multiplier, tiers=tiers, **base
    )
    return PriceCatalog([OverrideRow(row=row, source="override:generated")], providers=[])


def priced(catalog: PriceCatalog, usage: Usage, *, batch: bool = False, cache_hit: bool = False) -> PriceResult:
    result = catalog.price(provider="prop", model="m", **vars(usage), batch=batch, cache_hit=cache_hit, at=AT)
    assert result.priced, result.unpriced_reason
    return result


def check_invariants(result: PriceResult) -> None:
    parts = result.input_cost_usd + result.cache_read_cost_usd + result.cache_write_cost_usd + result.output_cost_usd
    assert parts == result.cost_usd
    for name in MONEY_FIELDS:
        value: Decimal = getattr(result, name)
        assert value >= 0, name
        assert value.as_tuple().exponent == -12, name


@settings(max_examples=300, deadline=None)
@given(catalogs(), usages(), st.booleans())
def test_parts_sum_to_the_total_at_1e_12(catalog: PriceCatalog, usage: Usage, batch: bool) -> None:
    check_invariants(priced(catalog, usage, batch=batch))


@settings(max_examples=300, deadline=None)
@given(
    catalogs(),
    usages(),
    st.integers(1, 300_000),
    st.sampled_from(["input", "cache_read", "cache_write", "output", "reasoning"]),
    st.booleans(),
)
def test_more_tokens_of_any_kind_never_cost_less(
    catalog: PriceCatalog, usage: Usage, more: int, kind: str, batch: bool
) -> None:
    counts = vars(usage).copy()
    counts[f"{kind}_tokens"] += more
    if kind in ("cache_read", "cache_write"):
        counts["input_tokens"] += more  # cached tokens are part of the prompt
    if kind == "reasoning":
        counts["output_tokens"] += more  # reasoning tokens are part of the output
    bigger = Usage(**counts)
    assert priced(catalog, bigger, batch=batch).cost_usd >= priced(catalog, usage, batch=batch).cost_usd


@settings(max_examples=300, deadline=None)
@given(catalogs(), usages())
def test_batch_never_costs_more_and_its_saving_is_the_difference(catalog: PriceCatalog, usage: Usage) -> None:
    standard = priced(catalog, usage)
    batch = priced(catalog, usage, batch=True)
    check_invariants(batch)
    assert batch.cost_usd <= standard.cost_usd
    assert batch.batch_saving_usd == standard.cost_usd - batch.cost_usd
    assert standard.batch_saving_usd == 0


@settings(max_examples=200, deadline=None)
@given(catalogs(), usages(), st.booleans())
def test_a_cache_hit_costs_nothing_and_saves_the_calls_cost(catalog: PriceCatalog, usage: Usage, batch: bool) -> None:
    called = priced(catalog, usage, batch=batch)
    hit = priced(catalog, usage, batch=batch, cache_hit=True)
    check_invariants(hit)
    assert hit.cost_usd == 0 and hit.batch_saving_usd == 0
    assert hit.cache_saving_usd == called.cost_usd
    assert hit.price_id == called.price_id


REAL_MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-5.6-sol"),
    ("openai", "o3"),
    ("anthropic", "claude-opus-4-6"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("gemini", "gemini-2.5-pro"),
    ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
    ("azure", "gpt-4.1"),
    ("mistral", "mistral-large-latest"),
    ("deepseek", "deepseek-reasoner"),
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(REAL_MODELS),
    usages(),
    st.booleans(),
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 6, 1), timezones=st.just(UTC)),
)
def test_bundled_prices_keep_the_same_invariants(
    bundled_catalog: PriceCatalog, name: tuple[str, str], usage: Usage, cache_hit: bool, at: datetime
) -> None:
    provider, model = name
    standard = bundled_catalog.price(provider=provider, model=model, **vars(usage), cache_hit=cache_hit, at=at)
    batch = bundled_catalog.price(provider=provider, model=model, **vars(usage), batch=True, cache_hit=cache_hit, at=at)
    assert standard.priced and batch.priced
    check_invariants(standard)
    check_invariants(batch)
    if cache_hit:
        assert standard.cost_usd == batch.cost_usd == 0
        assert batch.cache_saving_usd <= standard.cache_saving_usd
    else:
        assert batch.cost_usd <= standard.cost_usd
