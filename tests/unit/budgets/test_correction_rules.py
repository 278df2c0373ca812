"""Which re-priced events a run tells the stream about, the id of each correction, and how they
are packed into messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

from meterline.budgets.corrections import budget_horizons, correction_for, correction_id
from meterline.messages import PriceCorrection
from meterline.settings import BudgetConfig
from meterline.sinks.budget_corrections import pack

NOW = datetime(2026, 11, 18, 12, tzinfo=UTC)
BUDGETS = [
    BudgetConfig(team="search", name="monthly", limit_usd=D(100), period="month"),
    BudgetConfig(team="search", name="daily", limit_usd=D(10), period="day"),
    BudgetConfig(team="growth", name="window", limit_usd=D(10), period="rolling", window=timedelta(hours=24)),
]


def stored(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_id": "e1",
        "team": "search",
        "project": None,
        "provider": "openai",
        "model": "acme-chat",
        "occurred_at": datetime(2026, 11, 3, tzinfo=UTC),
        "late": False,
        "priced": True,
        "price_id": "p-old",
        "cost_usd": D("1.5"),
        "reprice_run_id": "",
    }
    row.update(kw)
    return row


def new(**kw: Any) -> dict[str, Any]:
    return {"priced": True, "price_id": "p-new", "cost_usd": D("2.25"), **kw}


def test_the_horizon_is_the_earliest_moment_a_budget_of_the_team_still_counts() -> None:
    assert budget_horizons(BUDGETS, NOW) == {
        "search": datetime(2026, 11, 1, tzinfo=UTC),
        "growth": datetime(2026, 11, 16, 12, tzinfo=UTC),
    }, "the month's start; a rolling 24 h window: two windows back"


def test_a_correction_carries_the_delta_and_the_unpriced_change() -> None:
    horizons = budget_horizons(BUDGETS, NOW)
    found = correction_for(stored(), new(), run_id="r1", horizons=horizons)
    assert found is not None and (found.delta_usd, found.unpriced_delta, found.team) == (D("0.75"), 0, "search")
    first_price = correction_for(
        stored(priced=False, price_id=None, cost_usd=D(0)), new(), run_id="r1", horizons=horizons
    )
    assert first_price is not None and first_price.unpriced_delta == -1


def test_no_correction_outside_the_horizons_for_late_events_without_a_budget_or_without_a_change() -> None:
    horizons = budget_horizons(BUDGETS, NOW)
    assert (
        correction_for(stored(occurred_at=datetime(2026, 10, 31, tzinfo=UTC)), new(), run_id="r", horizons=horizons)
        is None
    )
    assert correction_for(stored(late=True), new(), run_id="r", horizons=horizons) is None
    assert correction_for(stored(team="growth"), new(), run_id="r", horizons=horizons) is None, "two windows back"
    recent = correction_for(
        stored(team="growth", occurred_at=datetime(2026, 11, 17, tzinfo=UTC)), new(), run_id="r", horizons=horizons
    )
    assert recent is not None and recent.team == "growth", "inside the rolling window's horizon"
    assert correction_for(stored(team="ops"), new(), run_id="r", horizons=horizons) is None, "no budget"
    assert correction_for(stored(), new(cost_usd=D("1.50")), run_id="r", horizons=horizons) is None


def test_the_id_names_the_change_not_the_run() -> None:
    assert correction_id(stored(), "p-new", D("2.25")) == correction_id(
        stored(cost_usd=D("1.500")), "p-new", D("2.250")
    )
    assert correction_id(stored(), "p-new", D("2.25")) != correction_id(stored(reprice_run_id="r0"), "p-new", D("2.25"))
    assert correction_id(stored(), "p-new", D("2.25")) != correction_id(stored(), "p-new", D("2.26"))


def test_corrections_are_packed_per_team_as_json_lines() -> None:
    def item(n: int, team: str) -> PriceCorrection:
        return PriceCorrection(
            correction_id=f"c{n}",
            run_id="r",
            event_id=f"e{n}",
            team=team,
            provider="openai",
            model="m",
            occurred_at=NOW,
            delta_usd=D(1),
        )

    messages = pack([item(i, "search") for i in range(5)] + [item(9, "growth")], per_message=2)
    assert [(key, value.count(b"\n") + 1) for key, value in messages] == [
        (b"search", 2),
        (b"search", 2),
        (b"search", 1),
        (b"growth", 1),
    ]
    assert PriceCorrection.model_validate_json(messages[-1][1]).event_id == "e9"
