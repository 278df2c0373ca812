"""`meterline price`, `estimate`, `prices list` and `prices show` through typer's CliRunner."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterline.cli import app

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
        config, "price", "-p", "openai", "-m", "gpt-4-turbo", "--input", "1000", "--output", "500", "--at", "2024-05-01", "--json"
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
        config, "price", "-p", "openai", "-m", "gpt-4-turbo", "--input", "1000", "--output", "500", "--batch", "--at", "2025-08-01"
    )
    assert code == 0, output
    assert "$0.012" in output  # (1,000 x 8 + 500 x 24) / 1e6 x 0.6
    assert "override:openai:gpt-4-turbo@2025-07-01" in output


def test_estimate_json_has_every_period(config: Path) -> None:
    code, output = run(
        config, "estimate", "-m", "gpt-4-turbo", "-r", "10000", "--input", "500", "--output", "200", "--at", "2024-05-01", "--json"
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
    code, output = run(config, "estimate", "-m", "openai/gpt-4-turbo", "-r", "10000", "--input", "500", "--output", "200", "--at", "2024-05-01")
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
    code, output = run(config, "price", "-p", "openai", "-m", "gpt-4o", "--input", "10", "--cache-read", "11", "--output", "1")
    assert code == 1
    assert "must not exceed input_tokens" in output
