"""BudgetBook.apply_corrections: re-priced events move the current period, or the rolling window
that still holds their minute, by their delta; a crossing fires once; a closed period is left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from meterline.budgets import Charge

from .test_book import NOW, book, charge, daily, rolling


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


def test_a_closed_period_is_left_alone() -> None:
    b = book(daily())
    yesterday = datetime(2026, 11, 27, 9, tzinfo=UTC)
    today = datetime(2026, 11, 28, 9, tzinfo=UTC)
    b.apply([charge(1, "1", yesterday)], NOW)
    b.apply([charge(2, "1", today)], NOW)

    changes = b.apply_corrections([correction(1, "50", yesterday)], NOW)

    assert not changes, "yesterday is over: its period is not current"
    assert b.cells["ml/daily|2026-11-27"].spend == D(1)


def test_a_rolling_window_moves_by_the_delta_of_a_minute_it_still_holds_and_fires_once() -> None:
    b = book(rolling(thresholds=[D(50), D(80)]))
    t0 = datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC)
    assert not b.apply([charge(1, "30", t0), charge(2, "10", t0 + timedelta(minutes=30))], NOW).alerts

    changes = b.apply_corrections([correction(1, "25", t0)], NOW)

    assert changes.states[-1].spend_usd == D(65) and changes.states[-1].period == "rolling:1h"
    assert [a.alert_id for a in changes.alerts] == ["ml/roll/rolling:1h@2026-11-28T10:30Z/threshold/50"]
    assert changes.alerts[0].triggered_by_event_id == "e1"
    minute = changes.cells["ml/roll|m" + str(int(t0.timestamp()) // 60)]
    assert minute is not None and minute.spend == D(55) and minute.events == 1, "a correction is not a new event"
    assert not b.apply_corrections([correction(2, "5", t0 + timedelta(minutes=30))], NOW).alerts, "50 % fired already"


def test_a_rolling_correction_below_a_threshold_re_arms_it_and_a_minute_gone_from_the_window_is_left_alone() -> None:
    b = book(rolling(thresholds=[D(50)]))
    t0 = datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC)
    fired = b.apply([charge(1, "30", t0), charge(2, "30", t0 + timedelta(minutes=30))], NOW)
    assert [a.threshold_percent for a in fired.alerts] == [D(50)]

    lowered = b.apply_corrections([correction(2, "-20", t0 + timedelta(minutes=30))], NOW)
    assert lowered.states[-1].spend_usd == D(40) and not lowered.alerts
    assert lowered.fired == {"ml/roll/rolling:1h/threshold/50": None}, "40 < 50: the threshold re-arms"

    b.apply([charge(3, "1", t0 + timedelta(minutes=61))], NOW)  # the 10:00 minute leaves the window
    assert not b.apply_corrections([correction(1, "500", t0)], NOW), "10:00 is no longer in the window"
    assert b.apply_corrections([correction(3, "9", t0 + timedelta(minutes=61))], NOW).states[-1].spend_usd == D(20)


def test_an_unpriced_event_in_a_rolling_window_getting_its_price_leaves_the_window_unpriced_count() -> None:
    b = book(rolling())
    t0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert b.apply([charge(1, "0", t0, priced=False)], NOW).states[-1].unpriced_events == 1

    changes = b.apply_corrections([correction(1, "2.5", t0, unpriced_delta=-1)], NOW)

    assert changes.states[-1].unpriced_events == 0 and changes.states[-1].spend_usd == D("2.5")
    assert changes.fired == {"ml/roll/rolling:1h/unpriced": None}, "priced now: the unpriced alert re-arms"
