"""Catalogs shared by the pricing tests: bundled data alone, and with the docs' sample overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterline.pricing import PriceCatalog
from meterline.settings import PricingSettings

EXAMPLE_PRICES = Path(__file__).resolve().parents[3] / "docs" / "prices.example.toml"


@pytest.fixture(scope="session")
def bundled_catalog() -> PriceCatalog:
    return PriceCatalog.load(PricingSettings())


@pytest.fixture(scope="session")
def example_catalog() -> PriceCatalog:
    return PriceCatalog.load(PricingSettings(override_files=[EXAMPLE_PRICES]))
