"""BudgetGuard.check: hard limits only, current periods only, tombstones forget."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from meterline.messages import BudgetState
from meterline.producers import BudgetExceededError, BudgetGuard
from meterline.producers.errors import ProducerError

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def state(
    budget: str,
    *,
    over: bool,
    hard: bool = True,
    period: str = "2026-11-28",
    end: datetime = datetime(2026, 11, 29, tzinfo=UTC),
) -> bytes:
    return (
        BudgetState(
            team="ml",
            budget=budget,
            period=period,
            period_start=datetime(2026, 11, 28, tzinfo=UTC),
            period_end=end,
            spend_usd=D(10),
            limit_usd=D(5) if over else D(100),
            percent=D(200) if over else D(10),
            hard_limit=hard,
            over_hard_limit=over and hard,
            updated_at=NOW,
        )
        .model_dump_json()
        .encode()
    )


@pytest.mark.parametrize(
    ("value", "raises"),
    [
        (state("a", over=False), False),
        (state("a", over=True), True),
        (state("a", over=True, hard=False), False),
        (state("a", over=True, end=datetime(2026, 11, 28, 6, tzinfo=UTC)), False),  # period over
        (state("a", over=True, period="rolling:24h", end=datetime(2026, 11, 28, 6, tzinfo=UTC)), True),
    ],
)
def test_check(value: bytes, raises: bool) -> None:
    guard = BudgetGuard("127.0.0.1:1", "t.budget.state", now=lambda: NOW)
    guard._apply(b"ml/a", value)
    if raises:
        with pytest.raises(BudgetExceededError) as info:
            guard.check("ml")
        error: Exception = info.value
        assert isinstance(error, ProducerError) and info.value.budget == "a"
    else:
        guard.check("ml")


def test_tombstone_forgets() -> None:
    guard = BudgetGuard("127.0.0.1:1", "t.budget.state", now=lambda: NOW)
    guard._apply(b"ml/a", state("a", over=True))
    guard._apply(b"ml/a", None)
    assert guard.status("ml") == []
    guard.check("ml")
