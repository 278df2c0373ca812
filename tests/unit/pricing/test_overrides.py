"""Override files: the docs' sample reproduces hand-computed costs; dates, names, tiers, errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.pricing import OverrideFileError, PriceCatalog
from meterline.pricing.estimate import estimate
from meterline.settings import PricingSettings

from .conftest import EXAMPLE_PRICES

MAY_2024 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_gpt_4_turbo_from_the_dated_table_costs_exactly_the_hand_computed_amount(example_catalog: PriceCatalog) -> None:
    result = example_catalog.price(
        provider="openai", model="gpt-4-turbo", input_tokens=1_000, output_tokens=500, at=MAY_2024
    )
    # 1,000 x $10/M + 500 x $30/M
    assert result.cost_usd == Decimal("0.025")
    assert str(result.cost_usd) == "0.025000000000"
    assert (result.input_cost_usd, result.output_cost_usd) == (Decimal("0.01"), Decimal("0.015"))
    assert result.price_id == "override:openai:gpt-4-turbo@2024-04-09"
    assert result.price_source == f"override:{EXAMPLE_PRICES}"


def test_ten_thousand_requests_a_day_cost_3300_a_month(example_catalog: PriceCatalog) -> None:
    found = estimate(
        example_catalog,
        provider="openai",
        model="gpt-4-turbo",
        requests_per_day=10_000,
        input_tokens=500,
        output_tokens=200,
        at=MAY_2024,
    )
    # (500 x 10 + 200 x 30) / 1e6 = $0.011 a request; x 10,000 = $110 a day
    assert found.per_request.cost_usd == Decimal("0.011")
    assert found.periods == {
        "daily": Decimal("110"),
        "weekly": Decimal("770"),
        "monthly": Decimal("3300.00"),
        "yearly": Decimal("40150"),
    }


@pytest.mark.parametrize(
    ("at", "price_id", "cost"),
    [
        # the day before the negotiated rate: list price 1,000 x 10 + 500 x 30
        (datetime(2025, 6, 30, 23, 59, 59, tzinfo=UTC), "override:openai:gpt-4-turbo@2024-04-09", "0.025"),
        # its first second: 1,000 x 8 + 500 x 24
        (datetime(2025, 7, 1, 0, 0, tzinfo=UTC), "override:openai:gpt-4-turbo@2025-07-01", "0.020"),
        # 22:30 on June 30th in UTC-2 is already July 1st in UTC: effective dates are UTC days
        (
            datetime(2025, 6, 30, 22, 30, tzinfo=timezone(timedelta(hours=-2))),
            "override:openai:gpt-4-turbo@2025-07-01",
            "0.020",
        ),
        # a naive time counts as UTC
        (datetime(2025, 6, 30, 23, 0), "override:openai:gpt-4-turbo@2024-04-09", "0.025"),
    ],
)
def test_effective_dates_choose_the_price_on_each_side_of_a_change(
    example_catalog: PriceCatalog, at: datetime, price_id: str, cost: str
) -> None:
    result = example_catalog.price(provider="openai", model="gpt-4-turbo", input_tokens=1_000, output_tokens=500, at=at)
    assert (result.price_id, result.cost_usd) == (price_id, Decimal(cost))


def test_before_the_first_override_date_the_bundled_price_applies(example_catalog: PriceCatalog) -> None:
    result = example_catalog.price(
        provider="openai",
        model="gpt-4-turbo",
        input_tokens=1_000,
        output_tokens=500,
        at=datetime(2024, 4, 8, tzinfo=UTC),
    )
    assert result.priced and result.price_source == "genai-prices"
    assert result.price_id is not None and result.price_id.startswith("genai-prices:openai:gpt-4-turbo")


def test_an_override_not_yet_in_force_and_unknown_elsewhere_is_unpriced_with_its_start(
    example_catalog: PriceCatalog,
) -> None:
    result = example_catalog.price(
        provider="acme-gpu", model="llama-70b", input_tokens=10, output_tokens=10, at=datetime(2024, 12, 31, tzinfo=UTC)
    )
    assert not result.priced and result.cost_usd == 0
    assert result.unpriced_reason is not None and "starts on 2025-01-01" in result.unpriced_reason


@pytest.mark.parametrize(
    ("model", "price_id"),
    [
        ("GPT-4-Turbo", "override:openai:gpt-4-turbo@2024-04-09"),
        ("openai/gpt-4-turbo", "override:openai:gpt-4-turbo@2024-04-09"),
        ("gpt-4-turbo-preview", "override:openai:gpt-4-turbo@2024-04-09"),
        ("gpt-4-turbo-2024-01-25", "override:openai:gpt-4-turbo@2024-04-09"),
        ("gpt-4-turbo-20240125", "override:openai:gpt-4-turbo@2024-04-09"),
        # the snapshot with its own table keeps its own price
        ("gpt-4-turbo-2024-04-09", "override:openai:gpt-4-turbo-2024-04-09@2024-04-09"),
        ("openai/GPT-4-TURBO-2024-04-09", "override:openai:gpt-4-turbo-2024-04-09@2024-04-09"),
    ],
)
def test_names_as_they_arrive_resolve_to_the_right_override(
    example_catalog: PriceCatalog, model: str, price_id: str
) -> None:
    result = example_catalog.price(provider="OpenAI", model=model, input_tokens=1, output_tokens=1, at=MAY_2024)
    assert result.price_id == price_id


def test_the_snapshot_price_differs_from_the_base_price(example_catalog: PriceCatalog) -> None:
    snapshot = example_catalog.price(
        provider="openai", model="gpt-4-turbo-2024-04-09", input_tokens=1_000, output_tokens=500, at=MAY_2024
    )
    assert snapshot.cost_usd == Decimal("0.0225")  # 1,000 x 9 + 500 x 27


def test_batch_multiplier_of_an_entry_and_cache_read_rate(example_catalog: PriceCatalog) -> None:
    at = datetime(2025, 8, 1, tzinfo=UTC)
    standard = example_catalog.price(
        provider="openai", model="gpt-4-turbo", input_tokens=2_000, cache_read_tokens=1_000, output_tokens=100, at=at
    )
    # 1,000 uncached x 8 + 1,000 cached x 4 + 100 x 24, per million
    assert (standard.input_cost_usd, standard.cache_read_cost_usd, standard.output_cost_usd) == (
        Decimal("0.008"),
        Decimal("0.004"),
        Decimal("0.0024"),
    )
    assert standard.cost_usd == Decimal("0.0144")
    batch = example_catalog.price(
        provider="openai",
        model="gpt-4-turbo",
        input_tokens=2_000,
        cache_read_tokens=1_000,
        output_tokens=100,
        batch=True,
        at=at,
    )
    assert batch.cost_usd == Decimal("0.00864")  # x0.6
    assert batch.batch_saving_usd == Decimal("0.00576")


def test_self_hosted_provider_without_batch_discount(example_catalog: PriceCatalog) -> None:
    at = datetime(2025, 2, 1, tzinfo=UTC)
    kwargs = dict(
        provider="acme-gpu", model="llama-70b", input_tokens=1_500, cache_write_tokens=500, output_tokens=1_000, at=at
    )
    standard = example_catalog.price(**kwargs)  # type: ignore[arg-type]  # the parametrised token counts are ints
    # 1,000 x 0.20 + 500 x 0.25 + 1,000 x 0.60, per million
    assert standard.cost_usd == Decimal("0.000925")
    assert standard.cache_write_cost_usd == Decimal("0.000125")
    batch = example_catalog.price(**kwargs, batch=True)  # type: ignore[arg-type]  # the parametrised token counts are ints
    assert (batch.cost_usd, batch.batch_saving_usd) == (standard.cost_usd, Decimal(0))


def test_tier_reprices_every_token_above_its_threshold(example_catalog: PriceCatalog) -> None:
    at = datetime(2025, 4, 1, tzinfo=UTC)
    at_threshold = example_catalog.price(
        provider="gemini",
        model="acme-gemini-tuned",
        input_tokens=200_000,
        cache_read_tokens=100_000,
        output_tokens=1_000,
        at=at,
    )
    # 100,000 x 1.25 + 100,000 x 0.3125 + 1,000 x 10, per million
    assert at_threshold.cost_usd == Decimal("0.16625")
    above = example_catalog.price(
        provider="vertex",
        model="acme-gemini-tuned",
        input_tokens=200_001,
        cache_read_tokens=100_000,
        output_tokens=1_000,
        at=at,
    )
    # 100,001 x 2.5 + 100,000 x 0.625 + 1,000 x 15, per million
    assert above.cost_usd == Decimal("0.3275025")
    assert above.price_id == "override:google:acme-gemini-tuned@2025-03-01"


def test_reasoning_tokens_bill_at_their_own_rate_when_the_entry_has_one(example_catalog: PriceCatalog) -> None:
    result = example_catalog.price(
        provider="openai",
        model="ft:o4-mini:acme::reviewer",
        input_tokens=1_000,
        output_tokens=3_000,
        reasoning_tokens=2_000,
        at=datetime(2025, 6, 1, tzinfo=UTC),
    )
    # 1,000 x 4 + 1,000 visible output x 16 + 2,000 reasoning x 8, per million
    assert result.output_cost_usd == Decimal("0.032")
    assert result.cost_usd == Decimal("0.036")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_later_file_wins_on_the_same_effective_date(tmp_path: Path) -> None:
    row = '[[price]]\nprovider = "openai"\nmodel = "gpt-4o"\neffective_from = 2025-01-01\ninput = "{}"\noutput = "1"\n'
    first = _write(tmp_path / "first.toml", row.format("3"))
    second = _write(tmp_path / "second.toml", row.format("2"))
    catalog = PriceCatalog.load(PricingSettings(override_files=[first, second]))
    result = catalog.price(
        provider="openai", model="gpt-4o", input_tokens=1_000_000, output_tokens=0, at=MAY_2024 + timedelta(days=365)
    )
    assert (result.cost_usd, result.price_source) == (Decimal(2), f"override:{second}")


def test_every_problem_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    bad = _write(
        tmp_path / "bad.toml",
        """
[[price]]
provider = "openai"
model = "gpt-4o"
effective_from = 2025-01-01
input = "-1"
output = "1"
colour = "blue"

[[price]]
provider = "openai"
model = "gpt-4o"
effective_from = "not a date"
input = "1"
output = "1"
batch_multiplier = "1.5"
""",
    )
    duplicate = _write(
        tmp_path / "duplicate.toml",
        '[[price]]\nprovider = "x"\nmodel = "m"\neffective_from = 2025-01-01\ninput = 1\noutput = 1\n' * 2,
    )
    broken = _write(tmp_path / "broken.toml", "[[price]\n")
    missing = tmp_path / "missing.toml"
    with pytest.raises(OverrideFileError) as caught:
        PriceCatalog.load(PricingSettings(override_files=[bad, duplicate, broken, missing]))
    problems = "\n".join(caught.value.problems)
    assert f"{bad}: price.0.input" in problems
    assert f"{bad}: price.0.colour" in problems
    assert f"{bad}: price.1.effective_from" in problems
    assert f"{bad}: price.1.batch_multiplier" in problems
    assert f"{duplicate}: price.1: x/m already has a price effective from 2025-01-01" in problems
    assert f"{broken}: cannot be read as TOML" in problems
    assert f"{missing}: file not found" in problems
    assert "pricing.override_files" in str(caught.value)


def test_decimal_strings_and_toml_numbers_give_the_same_exact_rates(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p.toml",
        '[[price]]\nprovider = "p"\nmodel = "a"\neffective_from = 2025-01-01\ninput = 0.3\noutput = "0.3"\n',
    )
    catalog = PriceCatalog.load(PricingSettings(override_files=[path]))
    result = catalog.price(
        provider="p", model="a", input_tokens=1, output_tokens=1, at=datetime(2025, 1, 1, tzinfo=UTC)
    )
    assert result.input_cost_usd == result.output_cost_usd == Decimal("0.0000003")
    history = catalog.history("a", "p")
    assert [getattr(entry, "effective_from", None) for entry in history] == [date(2025, 1, 1)]
