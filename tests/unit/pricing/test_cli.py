"""`meterline price`, `estimate`, `prices list` and `prices show` through typer's CliRunner."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterline.cli import app
from meterline.pricing import PriceCatalog

from .conftest import EXAMPLE_PRICES


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "meterline.toml"
    path.write_text(f'[pricing]\noverride_files = ["{EXAMPLE_PRICES}"]\n', encoding="utf-8")
    return path


def run(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    return result.exit_code, result.output


def test_price_json_gives_decimal_strings_breakdown_and_price_id(config: Path) -> None:
    code, output = run(
        config,
        "price",
        "-p",
        "openai",
        "-m",
        "gpt-4-turbo",
        "--input",
        "1000",
        "--output",
        "500",
        "--at",
        "2024-05-01",
        "--json",
    )
    assert code == 0, output
    data = json.loads(output)
    assert data["cost_usd"] == "0.025000000000"
    assert data["breakdown"] == {
        "input_usd": "0.010000000000",
        "cache_read_usd": "0.000000000000",
        "cache_write_usd": "0.000000000000",
        "output_usd": "0.015000000000",
    }
    assert data["price_id"] == "override:openai:gpt-4-turbo@2024-04-09"
    assert data["price_source"] == f"override:{EXAMPLE_PRICES}"


def test_price_table_shows_the_total_and_the_price_used(config: Path) -> None:
    code, output = run(
        config,
        "price",
        "-p",
        "openai",
        "-m",
        "gpt-4-turbo",
        "--input",
        "1000",
        "--output",
        "500",
        "--batch",
        "--at",
        "2025-08-01",
    )
    assert code == 0, output
    assert "$0.012" in output  # (1,000 x 8 + 500 x 24) / 1e6 x 0.6
    assert "override:openai:gpt-4-turbo@2025-07-01" in output


def test_estimate_json_has_every_period(config: Path) -> None:
    code, output = run(
        config,
        "estimate",
        "-m",
        "gpt-4-turbo",
        "-r",
        "10000",
        "--input",
        "500",
        "--output",
        "200",
        "--at",
        "2024-05-01",
        "--json",
    )
    assert code == 0, output
    data = json.loads(output)
    assert data["provider"] == "openai"  # inferred from the model name
    assert {key: Decimal(data[key]) for key in ("daily", "weekly", "monthly", "yearly")} == {
        "daily": Decimal("110"),
        "weekly": Decimal("770"),
        "monthly": Decimal("3300"),
        "yearly": Decimal("40150"),
    }
    assert data["per_request"]["price_id"] == "override:openai:gpt-4-turbo@2024-04-09"


def test_estimate_table(config: Path) -> None:
    code, output = run(
        config,
        "estimate",
        "-m",
        "openai/gpt-4-turbo",
        "-r",
        "10000",
        "--input",
        "500",
        "--output",
        "200",
        "--at",
        "2024-05-01",
    )
    assert code == 0, output
    assert "$3,300.00" in output and "$110.00" in output


def test_prices_list_and_show(config: Path) -> None:
    code, output = run(config, "prices", "list", "--provider", "openai", "--at", "2025-08-01", "--json")
    assert code == 0, output
    entries = {entry["price_id"]: entry for entry in json.loads(output)}
    turbo = entries["override:openai:gpt-4-turbo@2025-07-01"]
    assert turbo["bands"][0]["input"] == "8" and turbo["batch_rule"] == "x0.6"
    assert "genai-prices:openai:gpt-4o" in entries
    code, output = run(config, "prices", "show", "gpt-4-turbo", "--provider", "openai")
    assert code == 0, output
    assert "override:openai:gpt-4-turbo@2024-04-09" in output
    assert "override:openai:gpt-4-turbo@2025-07-01" in output
    assert "genai-prices:openai:gpt-4-turbo" in output


def test_unknown_model_exits_1_with_what_to_do(config: Path) -> None:
    code, output = run(config, "price", "-p", "openai", "-m", "gpt-99", "--input", "1", "--output", "1")
    assert code == 1
    assert "no price for model 'gpt-99'" in output and "override file" in output


def test_bad_override_file_exits_1_naming_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[price]]\nprovider = "openai"\nmodel = "x"\n', encoding="utf-8")
    config = tmp_path / "meterline.toml"
    config.write_text(f'[pricing]\noverride_files = ["{bad}"]\n', encoding="utf-8")
    code, output = run(config, "prices", "list")
    assert code == 1
    assert "price.0.effective_from" in output and "pricing.override_files" in output


def test_impossible_usage_exits_1(config: Path) -> None:
    code, output = run(
        config, "price", "-p", "openai", "-m", "gpt-4o", "--input", "10", "--cache-read", "11", "--output", "1"
    )
    assert code == 1
    assert "must not exceed input_tokens" in output


def test_prices_show_gives_the_batch_price_that_price_batch_charges(config: Path) -> None:
    # gpt-4o: x0.5 until genai-prices' own batch price starts (2026-10-14; it bills cache reads as input).
    code, output = run(config, "prices", "show", "gpt-4o", "--provider", "openai", "--json")
    assert code == 0, output
    shown = json.loads(output)
    assert [(entry["batch_rule"], entry["batch_from"]) for entry in shown] == [
        ("x0.5", None),
        ("provider batch price", "2026-10-14"),
    ]
    for entry, day in zip(shown, ("2026-10-01", "2026-11-01"), strict=True):
        code, output = run(
            config,
            "price",
            "-p",
            "openai",
            "-m",
            "gpt-4o",
            "--input",
            "1000000",
            "--output",
            "1000000",
            "--cache-read",
            "1000000",
            "--batch",
            "--at",
            day,
            "--json",
        )
        assert code == 0, output
        charged = json.loads(output)["breakdown"]
        band = entry["batch_bands"][0]
        assert Decimal(charged["cache_read_usd"]) == Decimal(band["cache_read"])
        assert Decimal(charged["output_usd"]) == Decimal(band["output"])
    code, output = run(config, "prices", "show", "gpt-4o", "--provider", "openai")
    assert "batch (provider batch price from 2026-10-14): input 1.25, cache read 1.25," in output


@pytest.mark.parametrize(
    ("provider", "model"), [("openai", "gpt-4o"), ("openai", "gpt-4-turbo"), ("anthropic", "claude-sonnet-4-5")]
)
def test_every_shown_batch_price_is_the_one_applied_from_its_first_day(
    example_catalog: PriceCatalog, provider: str, model: str
) -> None:
    for entry in example_catalog.history(model, provider):
        if isinstance(entry, str) or entry.time_window is not None:
            continue
        day = max(filter(None, (entry.effective_from, entry.batch_from, date(2000, 1, 1))))
        result = example_catalog.price(
            provider=provider,
            model=model,
            input_tokens=100_000,
            output_tokens=100_000,
            cache_read_tokens=50_000,
            batch=True,
            at=datetime.combine(day, datetime.min.time(), tzinfo=UTC),
        )
        if result.price_id != entry.price_id:
            continue  # a later entry of another provider's timeline is in force that day
        band = entry.batch_bands[0]  # 100k input tokens: below every tier
        assert (result.input_cost_usd, result.cache_read_cost_usd, result.output_cost_usd) == (
            band.input * Decimal("0.05"),
            band.cache_read * Decimal("0.05"),
            band.output * Decimal("0.1"),
        ), (entry.price_id, day)
