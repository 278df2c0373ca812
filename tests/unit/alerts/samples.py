"""Alert events used by the alerts tests (one per kind), and the fixed `now` they render at."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from meterline.messages import AlertEvent, ModelSpend

NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


def threshold_alert(team: str = "platform", budget: str = "monthly", threshold: str = "80") -> AlertEvent:
    return AlertEvent(
        alert_id=AlertEvent.make_id(team, budget, "2026-11", "threshold", Decimal(threshold)),
        kind="threshold",
        team=team,
        budget=budget,
        period="2026-11",
        period_start=datetime(2026, 10, 31, 23, tzinfo=UTC),
        period_end=datetime(2026, 11, 30, 23, tzinfo=UTC),
        timezone="Europe/Berlin",
        threshold_percent=Decimal(threshold),
        spend_usd=Decimal("812.404999"),
        limit_usd=Decimal("1000"),
        percent=Decimal("81.2405"),
        forecast_usd=Decimal("1240"),
        previous_period_spend_usd=Decimal("903.5"),
        top_models=[
            ModelSpend(provider="anthropic", model="claude-sonnet-4", spend_usd=Decimal("210.1")),
            ModelSpend(provider="openai", model="gpt-4o", spend_usd=Decimal("500.25")),
            ModelSpend(provider="openai", model="gpt-4o-mini", spend_usd=Decimal("0.0042")),
        ],
        fired_at=NOW,
    )


def forecast_alert() -> AlertEvent:
    return AlertEvent(
        alert_id=AlertEvent.make_id("search", "daily-cap", "2026-11-28", "forecast", None),
        kind="forecast",
        team="search",
        budget="daily-cap",
        period="2026-11-28",
        period_start=datetime(2026, 11, 28, tzinfo=UTC),
        period_end=datetime(2026, 11, 29, tzinfo=UTC),
        timezone="UTC",
        spend_usd=Decimal("40"),
        limit_usd=Decimal("100"),
        percent=Decimal("40"),
        forecast_usd=Decimal("102.857142857142"),
        top_models=[ModelSpend(provider="google-gla", model="gemini-2.5-pro", spend_usd=Decimal("40"))],
        fired_at=NOW,
    )


def unpriced_alert() -> AlertEvent:
    return AlertEvent(
        alert_id=AlertEvent.make_id("research", "weekly", "2026-W48", "unpriced", None),
        kind="unpriced",
        team="research",
        budget="weekly",
        period="2026-W48",
        period_start=datetime(2026, 11, 23, tzinfo=UTC),
        period_end=datetime(2026, 11, 30, tzinfo=UTC),
        timezone="UTC",
        spend_usd=Decimal("12.5"),
        limit_usd=Decimal("500"),
        percent=Decimal("2.5"),
        unpriced_events=17,
        hard_limit=True,
        fired_at=NOW,
    )
