"""The test alert `meterline alerts test` sends, and the route it goes through. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from meterline.messages import AlertEvent, ModelSpend
from meterline.settings import AlertChannelName, AlertRoute, Settings

TEST_TEAM, TEST_BUDGET = "meterline", "test"


def route_for_test(settings: Settings, channel: AlertChannelName, target: str | None = None) -> AlertRoute:
    """`target` on `channel`, else the first configured route of that channel, else its defaults."""
    if target is not None:
        return AlertRoute(channel=channel, target=target)
    routes = list(settings.alerts.default_routes) + [r for b in settings.budgets for r in (b.routes or [])]
    return next((route for route in routes if route.channel == channel), AlertRoute(channel=channel))


def make_test_alert(now: datetime) -> AlertEvent:
    """A plausible threshold alert, clearly marked as a test, with an id unique to `now`."""
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    period = f"test-{now:%Y%m%dT%H%M%S}"
    return AlertEvent(
        alert_id=AlertEvent.make_id(TEST_TEAM, TEST_BUDGET, period, "threshold", Decimal(80)),
        kind="threshold",
        team=TEST_TEAM,
        budget=TEST_BUDGET,
        period=period,
        period_start=start,
        period_end=end,
        timezone="UTC",
        threshold_percent=Decimal(80),
        spend_usd=Decimal("80.00"),
        limit_usd=Decimal("100.00"),
        percent=Decimal(80),
        forecast_usd=Decimal("120.00"),
        top_models=[ModelSpend(provider="meterline", model="test-message", spend_usd=Decimal("80.00"))],
        fired_at=now,
    )
