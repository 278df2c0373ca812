"""PagerDuty Events API v2 events for alerts, and which incidents to resolve when. Pure.

Each alert triggers with `dedup_key` = its alert id (team/budget/period/kind/threshold), so a
re-sent trigger joins the same PagerDuty alert instead of opening another. An incident is resolved
(same dedup key, `event_action: resolve`) once the budget period it is about has ended, i.e. a new
period has started: the dispatcher checks its delivery log every
`alerts.pagerduty_resolve_interval_seconds`. Rolling budgets have no period that ends, and test
alerts none either: their incidents are resolved by a person.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from meterline.alerts.destinations import find_budget
from meterline.alerts.view import AlertView
from meterline.budgets.periods import CalendarPeriod, calendar_period
from meterline.settings import BudgetConfig

MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class Triggered(Protocol):
    """What a delivery-log record of a sent trigger says about its budget period."""

    @property
    def team(self) -> str: ...
    @property
    def budget(self) -> str: ...
    @property
    def period(self) -> str: ...


T = TypeVar("T", bound=Triggered)


def dedup_key(alert_id: str) -> str:
    """The alert id, or (past PagerDuty's 255 characters) its head and a hash of the whole."""
    if len(alert_id) <= MAX_DEDUP_KEY:
        return alert_id
    digest = hashlib.sha256(alert_id.encode()).hexdigest()[:32]
    return f"{alert_id[: MAX_DEDUP_KEY - 33]}~{digest}"


def trigger_event(view: AlertView, routing_key: str) -> dict[str, Any]:
    """The `trigger` event of one alert: critical at or above 100% of the limit, else warning."""
    facts = dict(view.facts)
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(view.alert_id),
        "client": "meterline",
        "payload": {
            "summary": view.summary[:MAX_SUMMARY],
            "source": "meterline",
            "severity": "critical" if view.percent_value >= 100 else "warning",
            "component": f"{facts.get('Team', '')}/{facts.get('Budget', '')}",
            "group": facts.get("Team", ""),
            "class": view.kind,
            "custom_details": {**facts, "alert_id": view.alert_id, "top_models": dict(view.top_models)},
        },
    }
    if view.link:
        event["links"] = [{"href": view.link, "text": "Cost dashboard"}]
    return event


def resolve_event(alert_id: str, routing_key: str) -> dict[str, Any]:
    return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key(alert_id)}


def period_end(period: str, kind: CalendarPeriod | None, timezone: str) -> datetime | None:
    """When the calendar period named `period` (`2026-11-28`, `2026-W48`, `2026-11`) ends, in UTC.

    None for keys that name no calendar period (rolling windows, test alerts).
    """
    zone = ZoneInfo(timezone)
    first: date | None = None
    found: CalendarPeriod | None = None
    if match := _DAY.match(period):
        first, found = date(int(match[1]), int(match[2]), int(match[3])), "day"
    elif match := _WEEK.match(period):
        first, found = date.fromisocalendar(int(match[1]), int(match[2]), 1), "week"
    elif match := _MONTH.match(period):
        first, found = date(int(match[1]), int(match[2]), 1), "month"
    if first is None or found is None or (kind is not None and kind != found):
        return None
    midday = datetime.combine(first, time(12), tzinfo=zone)
    return calendar_period(midday.astimezone(UTC), found, timezone).end


def due_resolves(triggered: Sequence[T], budgets: list[BudgetConfig], now: datetime) -> list[T]:
    """The sent triggers whose budget period has ended by `now` (in the budget's timezone, UTC if unknown)."""
    due: list[T] = []
    for record in triggered:
        budget = find_budget(record.team, record.budget, budgets)
        if budget is not None and budget.period == "rolling":
            continue
        kind: CalendarPeriod | None = budget.period if budget is not None and budget.period != "rolling" else None
        try:
            end = period_end(record.period, kind, budget.timezone if budget is not None else "UTC")
        except ValueError:  # a malformed key (month 13): no calendar period, nothing to resolve
            continue
        if end is not None and end <= now:
            due.append(record)
    return due
