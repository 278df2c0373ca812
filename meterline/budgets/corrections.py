"""Which re-priced events the budgets must hear about, and the correction each one sends (pure).

The stream moves current calendar periods and rolling windows that still hold the event's minute
(BudgetBook.apply_corrections), so a run sends a correction only for an event of a team with a
budget, on or after the earliest moment one of its budgets still counts (the start of a calendar
budget's current period; for a rolling window, two windows back), that was not late (a late
event never moved a budget).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from meterline.budgets.periods import calendar_period
from meterline.messages import PriceCorrection
from meterline.settings import BudgetConfig


def budget_horizons(budgets: Sequence[BudgetConfig], now: datetime) -> dict[str, datetime]:
    """Per team, the earliest moment any of its budgets still counts spend from.

    A rolling window ends at the stream's newest event, which may be behind `now`: two windows
    back covers a stream up to one window behind, and the stream itself ignores a correction
    for a minute its window no longer holds."""
    horizons: dict[str, datetime] = {}
    for budget in budgets:
        if budget.period == "rolling":
            assert budget.window is not None
            start = now - 2 * budget.window
        else:
            start = calendar_period(now, budget.period, budget.timezone).start
        if budget.team not in horizons or start < horizons[budget.team]:
            horizons[budget.team] = start
    return horizons


def correction_id(stored: Mapping[str, Any], new_price_id: str | None, new_cost: Decimal) -> str:
    """Names the change itself: the event, the row it replaces (the run that wrote it, its price
    and cost) and the new price. A run repeating one that stopped half-way sends the same id for
    the same change, and the stream counts it once; a later change of the same event differs."""
    parts = (
        stored["event_id"],
        stored.get("reprice_run_id") or "",
        stored.get("price_id") or "",
        f"{Decimal(stored['cost_usd']).normalize():f}",
        new_price_id or "",
        f"{new_cost.normalize():f}",
    )
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def correction_for(
    stored: Mapping[str, Any], new_row: Mapping[str, Any], *, run_id: str, horizons: Mapping[str, datetime]
) -> PriceCorrection | None:
    """The correction to send for a re-priced row, or None when no current budget can change."""
    team = str(stored["team"])
    horizon = horizons.get(team)
    if horizon is None or stored["occurred_at"] < horizon or stored.get("late"):
        return None
    delta = Decimal(new_row["cost_usd"]) - Decimal(stored["cost_usd"])
    unpriced_delta = int(not new_row["priced"]) - int(not stored["priced"])
    if not delta and not unpriced_delta:
        return None
    return PriceCorrection(
        correction_id=correction_id(stored, new_row.get("price_id"), Decimal(new_row["cost_usd"])),
        run_id=run_id,
        event_id=str(stored["event_id"]),
        team=team,
        project=stored.get("project"),
        provider=str(stored["provider"]),
        model=str(stored["model"]),
        occurred_at=stored["occurred_at"],
        delta_usd=delta,
        unpriced_delta=unpriced_delta,
    )
