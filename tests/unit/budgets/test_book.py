"""BudgetBook: aggregation, thresholds once per period, forecast, unpriced, rolling, restore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from meterline.budgets import BudgetBook, Charge, SpendCell
from meterline.settings import BudgetConfig

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def book(*budgets: BudgetConfig) -> BudgetBook:
    return BudgetBook(budgets, grace=timedelta(hours=48), forecast_min_elapsed=0.1, forecast_min_spend_fraction=0.05)


def charge(
    n: int,
    cost: str,
    at: datetime,
    *,
    team: str = "ml",
    model: str = "gpt-4o",
    priced: bool = True,
    project: str | None = None,
) -> Charge:
    return Charge(f"e{n}", team, project, "openai", model, at, D(cost), priced)


def daily(**kw: object) -> BudgetConfig:
    base: dict[str, object] = {"team": "ml", "name": "daily", "limit_usd": D(100), "period": "day"}
    base.update(kw)
    return BudgetConfig(**base)


def test_spend_is_exact_and_aggregated_per_period() -> None:
    b = book(daily())
    at = datetime(2026, 11, 28, 1, tzinfo=UTC)
    changes = b.apply([charge(i, "0.000000000001", at) for i in range(1000)], NOW)
    assert changes.states[-1].spend_usd == D("0.000000001")
    assert list(changes.cells) == ["ml/daily|2026-11-28"]
    assert changes.cells["ml/daily|2026-11-28"].events == 1000  # type: ignore[union-attr]  # the cell is present: the batch above charged it


@pytest.mark.parametrize(
    ("batches", "expected"),
    [
        # (costs per batch) -> thresholds fired per batch
        ([["30"], ["25"], ["30"], ["20"]], [[], ["50"], ["80"], ["100"]]),
        ([["85"]], [["50", "80"]]),  # several at once
        ([["40", "40", "40"]], [["50", "80", "100"]]),
        ([["60"], ["0.5"], ["1"]], [["50"], [], []]),  # never twice
        ([["160"]], [["50", "80", "100", "150"]]),  # above 100 %
    ],
)
def test_thresholds_fire_once_per_period(batches: list[list[str]], expected: list[list[str]]) -> None:
    b = book(daily(thresholds=[D(50), D(80), D(100), D(150)]))
    at = datetime(2026, 11, 28, 20, tzinfo=UTC)  # late in the day: forecast would say the same
    n = 0
    for costs, want in zip(batches, expected, strict=True):
        charges = []
        for cost in costs:
            n += 1
            charges.append(charge(n, cost, at))
        alerts = [a for a in b.apply(charges, NOW).alerts if a.kind == "threshold"]
        assert [f"{a.threshold_percent:f}" for a in alerts] == want


def test_threshold_alert_content() -> None:
    b = book(daily())
    at = datetime(2026, 11, 28, 20, tzinfo=UTC)
    b.apply([charge(1, "10", datetime(2026, 11, 27, 20, tzinfo=UTC))], NOW)
    alerts = b.apply([charge(2, "30", at), charge(3, "25", at, model="gpt-4o-mini")], NOW).alerts
    alert = next(a for a in alerts if a.kind == "threshold")
    assert alert.alert_id == "ml/daily/2026-11-28/threshold/50"
    assert alert.triggered_by_event_id == "e3"
    assert alert.spend_usd == D("55") and alert.percent == D("55")
    assert [(m.model, m.spend_usd) for m in alert.top_models] == [("gpt-4o", D(30)), ("gpt-4o-mini", D(25))]
    assert alert.previous_period_spend_usd == D(10)
    assert alert.forecast_usd is not None and alert.forecast_usd > D(55)


def test_new_period_rearms_thresholds_in_budget_timezone() -> None:
    b = book(daily(timezone="Europe/Berlin"))
    late_evening = datetime(2026, 11, 28, 22, 30, tzinfo=UTC)  # 23:30 Berlin, the 28th
    after_midnight = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)  # 00:30 Berlin, the 29th
    first = b.apply([charge(1, "60", late_evening)], NOW)
    second = b.apply([charge(2, "60", after_midnight)], NOW)
    assert [a.alert_id for a in first.alerts if a.kind == "threshold"] == ["ml/daily/2026-11-28/threshold/50"]
    assert [a.alert_id for a in second.alerts if a.kind == "threshold"] == ["ml/daily/2026-11-29/threshold/50"]
    assert second.states[-1].period == "2026-11-29" and second.states[-1].spend_usd == D(60)


def test_late_update_of_previous_period_does_not_overwrite_current_state() -> None:
    b = book(daily())
    b.apply([charge(1, "10", datetime(2026, 11, 28, 1, tzinfo=UTC))], NOW)
    changes = b.apply([charge(2, "70", datetime(2026, 11, 27, 23, tzinfo=UTC))], NOW)
    assert changes.states == []  # the state topic keeps showing the current period
    assert [a.alert_id for a in changes.alerts if a.kind == "threshold"] == ["ml/daily/2026-11-27/threshold/50"]
    assert b.cells["ml/daily|2026-11-27"].spend == D(70)


@pytest.mark.parametrize(
    ("hour", "cost", "fires"),
    [
        (1, "30", False),  # 4 % of the day elapsed: too early to forecast
        (6, "2", False),  # 25 % elapsed but only 2 % of the limit spent
        (6, "20", False),  # projects 80
        (6, "30", True),  # projects 120 > 100
    ],
)
def test_forecast_alert(hour: int, cost: str, fires: bool) -> None:
    b = book(daily())
    alerts = b.apply([charge(1, cost, datetime(2026, 11, 28, hour, tzinfo=UTC))], NOW).alerts
    assert any(a.kind == "forecast" for a in alerts) is fires
    again = b.apply([charge(2, "0.01", datetime(2026, 11, 28, hour, 30, tzinfo=UTC))], NOW).alerts
    assert not any(a.kind == "forecast" for a in again)  # one per period


def test_scope_by_project_and_model() -> None:
    b = book(daily(name="proj", project="search"), daily(name="mini", model="gpt-4o-mini"))
    at = datetime(2026, 11, 28, 1, tzinfo=UTC)
    b.apply([charge(1, "1", at, project="search"), charge(2, "2", at, model="gpt-4o-mini"), charge(3, "4", at)], NOW)
    assert b.cells["ml/proj|2026-11-28"].spend == D(1)
    assert b.cells["ml/mini|2026-11-28"].spend == D(2)


def test_unpriced_counted_and_alerted_once() -> None:
    b = book(daily())
    at = datetime(2026, 11, 28, 1, tzinfo=UTC)
    first = b.apply([charge(1, "0", at, priced=False), charge(2, "0", at, priced=False)], NOW)
    second = b.apply([charge(3, "0", at, priced=False)], NOW)
    assert [a.alert_id for a in first.alerts] == ["ml/daily/2026-11-28/unpriced"]
    assert first.alerts[0].unpriced_events == 2 and first.alerts[0].triggered_by_event_id == "e1"
    assert second.alerts == [] and second.states[-1].unpriced_events == 3


def test_hard_limit_state() -> None:
    b = book(daily(hard_limit=True))
    at = datetime(2026, 11, 28, 1, tzinfo=UTC)
    assert b.apply([charge(1, "99.99", at)], NOW).states[-1].over_hard_limit is False
    assert b.apply([charge(2, "0.01", at)], NOW).states[-1].over_hard_limit is True


def rolling(**kw: object) -> BudgetConfig:
    base: dict[str, object] = {
        "team": "ml",
        "name": "roll",
        "limit_usd": D(100),
        "period": "rolling",
        "window": timedelta(hours=1),
    }
    base.update(kw)
    return BudgetConfig(**base)


def test_rolling_window_sums_the_last_minutes_and_rearms() -> None:
    b = book(rolling(thresholds=[D(50)]))
    t0 = datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC)
    first = b.apply([charge(1, "30", t0), charge(2, "30", t0 + timedelta(minutes=30))], NOW)
    assert first.states[-1].spend_usd == D(60) and first.states[-1].period == "rolling:1h"
    assert [a.alert_id for a in first.alerts] == ["ml/roll/rolling:1h@2026-11-28T10:30Z/threshold/50"]
    # 10:59 still sees the 10:00 minute (window = 10:00 .. 10:59).
    assert b.apply([charge(3, "1", t0 + timedelta(minutes=59))], NOW).states[-1].spend_usd == D(61)
    # 11:00 drops the 10:00 minute: 31 < 50 re-arms the threshold.
    dropped = b.apply([charge(4, "1", t0 + timedelta(minutes=60))], NOW)
    assert dropped.states[-1].spend_usd == D(32)
    assert dropped.cells["ml/roll|m" + str(int(t0.timestamp()) // 60)] is None
    crossing = b.apply([charge(5, "20", t0 + timedelta(minutes=61))], NOW)
    assert [a.alert_id for a in crossing.alerts] == ["ml/roll/rolling:1h@2026-11-28T11:01Z/threshold/50"]


def test_rolling_event_older_than_window_is_ignored() -> None:
    b = book(rolling())
    t0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    b.apply([charge(1, "10", t0)], NOW)
    changes = b.apply([charge(2, "10", t0 - timedelta(hours=2))], NOW)
    assert changes.states[-1].spend_usd == D(10)


def test_restore_from_cells_and_fired_set_never_fires_twice() -> None:
    first = book(daily())
    at = datetime(2026, 11, 28, 20, tzinfo=UTC)
    changes = first.apply([charge(1, "60", at)], NOW)
    restored = book(daily())
    for cell in changes.cells.values():
        assert cell is not None
        restored.load_cell(SpendCell.from_json(cell.to_json()))
    for arm, alert_id in changes.fired.items():
        assert alert_id is not None
        restored.load_fired(arm, alert_id)
    again = restored.apply([charge(2, "25", at)], NOW)
    assert [a.threshold_percent for a in again.alerts if a.kind == "threshold"] == [D(80)]
    assert again.states[-1].spend_usd == D(85)


def test_old_periods_are_pruned_with_their_fired_entries() -> None:
    b = book(daily())
    b.apply([charge(1, "60", datetime(2026, 11, 20, 20, tzinfo=UTC))], NOW)
    changes = b.apply([charge(2, "1", datetime(2026, 11, 28, 20, tzinfo=UTC))], NOW)
    assert changes.cells["ml/daily|2026-11-20"] is None
    assert changes.fired["ml/daily/2026-11-20/threshold/50"] is None
