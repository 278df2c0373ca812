"""BudgetBook.apply_corrections: re-priced events move the current period by their delta, a
crossing fires once, and a closed period or a rolling budget is left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from meterline.budgets import Charge
from meterline.settings import BudgetConfig

from .test_book import NOW, book, charge, daily


def correction(n: int, delta: str, at: datetime, unpriced_delta: int = 0) -> tuple[Charge, int]:
    return Charge(f"e{n}", "ml", None, "openai", "gpt-4o", at, D(delta), unpriced_delta <= 0), unpriced_delta


def test_a_correction_moves_the_current_period_and_crossing_a_threshold_fires_once() -> None:
    b = book(daily(thresholds=[D(50), D(80)]))
    at = datetime(2026, 11, 28, 20, tzinfo=UTC)
    assert [a.threshold_percent for a in b.apply([charge(1, "40", at)], NOW).alerts if a.kind == "threshold"] == []

    changes = b.apply_corrections([correction(1, "15", at)], NOW)

    assert changes.states[-1].spend_usd == D("55")
    assert [a.threshold_percent for a in changes.alerts if a.kind == "threshold"] == [D(50)]
    assert changes.alerts[0].triggered_by_event_id == "e1"
    cell = changes.cells["ml/daily|2026-11-28"]
    assert cell is not None and cell.events == 1, "a correction is not a new event"
    again = b.apply_corrections([correction(2, "1", at)], NOW)
    assert [a for a in again.alerts if a.kind == "threshold"] == [], "50 % fired already"
    assert again.states[-1].spend_usd == D("56")


def test_a_negative_correction_lowers_the_spend_and_an_event_getting_its_price_leaves_the_unpriced_count() -> None:
    b = book(daily())
    at = datetime(2026, 11, 28, 9, tzinfo=UTC)
    b.apply([charge(1, "10", at), charge(2, "0", at, priced=False)], NOW)

    changes = b.apply_corrections([correction(1, "-4", at), correction(2, "2.5", at, unpriced_delta=-1)], NOW)

    assert changes.states[-1].spend_usd == D("8.5")
    assert changes.states[-1].unpriced_events == 0


def test_a_closed_period_and_a_rolling_budget_are_left_alone() -> None:
    rolling = BudgetConfig(team="ml", name="window", limit_usd=D(10), period="rolling", window=timedelta(hours=24))
    b = book(daily(), rolling)
    yesterday = datetime(2026, 11, 27, 9, tzinfo=UTC)
    today = datetime(2026, 11, 28, 9, tzinfo=UTC)
    b.apply([charge(1, "1", yesterday)], NOW)
    b.apply([charge(2, "1", today)], NOW)

    changes = b.apply_corrections([correction(1, "50", yesterday)], NOW)

    assert not changes, "yesterday is over: its period is not current"
    assert b.cells["ml/daily|2026-11-27"].spend == D(1)
