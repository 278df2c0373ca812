"""Thresholds, forecast and top models."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from meterline.budgets.rules import (
    crossed_thresholds,
    first_reaching,
    forecast_exceeds,
    percent_of,
    top_models,
)

T = [D(50), D(80), D(100), D(150)]


@pytest.mark.parametrize(
    ("spend", "fired", "expected"),
    [
        ("49.999999999999", [], []),
        ("50", [], [D(50)]),
        ("85", [], [D(50), D(80)]),  # several at once
        ("85", [D(50)], [D(80)]),
        ("100", [D(50), D(80)], [D(100)]),
        ("150", [], [D(50), D(80), D(100), D(150)]),  # above 100 %
        ("200", T, []),
    ],
)
def test_crossed_thresholds(spend: str, fired: list[D], expected: list[D]) -> None:
    assert crossed_thresholds(D(spend), D(100), T, fired) == expected


def test_first_reaching_names_the_crossing_event() -> None:
    costs = [("a", D("10")), ("b", D("30")), ("c", D("20"))]
    assert first_reaching(costs, D("5"), D("45")) == "b"
    assert first_reaching(costs, D("5"), D("100")) is None


@pytest.mark.parametrize(
    ("spend", "elapsed", "expected"),
    [
        ("10", 0.05, None),  # too early in the period
        ("1", 0.5, None),  # too little spend (< 5 % of 100)
        ("40", 0.5, None),  # projects 80 <= 100
        ("60", 0.5, D("120")),
        ("30", 0.25, D("120")),
        ("100", 1.0, None),  # exactly at the limit is not above it
    ],
)
def test_forecast(spend: str, elapsed: float, expected: D | None) -> None:
    got = forecast_exceeds(D(spend), D(100), elapsed, min_elapsed=0.1, min_spend_fraction=0.05)
    assert got == expected


def test_percent_and_top_models() -> None:
    assert percent_of(D("33.333333333333"), D(100)) == D("33.3333")
    spend = {"openai/gpt-4o": D("2"), "anthropic/claude": D("5"), "openai/a": D("2"), "x/y": D("1")}
    assert top_models(spend, 3) == [
        ("anthropic", "claude", D("5")),
        ("openai", "a", D("2")),
        ("openai", "gpt-4o", D("2")),
    ]
