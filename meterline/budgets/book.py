"""BudgetBook: the budgets of every team, applied batch by batch (pure; the stream persists it).

`apply()` takes a batch of charges (priced or unpriced, never late ones), aggregates them per
budget and bucket, and returns what changed: cells to write, fired-set entries to write,
budget states and alerts to publish. The stream writes all of that together with the batch's
de-duplication marks, so a crash replays a batch as a whole or not at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from meterline.budgets.cells import SpendCell, bucket_minute, minute_bucket
from meterline.budgets.periods import (
    Period,
    calendar_period,
    minute_of,
    minute_start,
    previous_period,
    rolling_bounds,
    rolling_key,
)
from meterline.budgets.rules import (
    crossed_thresholds,
    first_reaching,
    forecast_exceeds,
    forecast_spend,
    percent_of,
    threshold_amount,
    top_models,
)
from meterline.messages import AlertEvent, AlertKind, BudgetState, ModelSpend
from meterline.money import quantize_money
from meterline.settings import BudgetConfig

ZERO = Decimal(0)


class Charge(NamedTuple):
    """What a budget needs of one (non-late) event."""

    event_id: str
    team: str
    project: str | None
    provider: str
    model: str
    occurred_at: datetime
    cost_usd: Decimal
    priced: bool


@dataclass
class BookChanges:
    """The effects of one batch; `None` values are deletions."""

    cells: dict[str, SpendCell | None] = field(default_factory=dict)
    fired: dict[str, str | None] = field(default_factory=dict)
    states: list[BudgetState] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.cells or self.fired or self.states or self.alerts)


def _matches(budget: BudgetConfig, charge: Charge) -> bool:
    if budget.project is not None and charge.project != budget.project:
        return False
    return budget.model is None or charge.model == budget.model


class BudgetBook:
    """Spend per budget and bucket, the fired thresholds, and the rules that read them."""

    def __init__(
        self,
        budgets: Sequence[BudgetConfig],
        *,
        grace: timedelta,
        forecast_min_elapsed: float,
        forecast_min_spend_fraction: float,
        top_model_count: int = 5,
    ) -> None:
        self.by_team: dict[str, list[BudgetConfig]] = defaultdict(list)
        for budget in budgets:
            self.by_team[budget.team].append(budget)
        self.grace = grace
        self.forecast_min_elapsed = forecast_min_elapsed
        self.forecast_min_spend_fraction = forecast_min_spend_fraction
        self.top_model_count = top_model_count
        self.cells: dict[str, SpendCell] = {}
        self.rolling: dict[str, dict[int, SpendCell]] = defaultdict(dict)
        self.current: dict[str, Period] = {}
        self.fired: dict[str, str] = {}
        """Fired-set: arm key -> alert id (for calendar periods both are the alert id)."""
        self._last_period: dict[str, Period] = {}

    # -- restoring from tables ----------------------------------------------------------------
    def load_cell(self, cell: SpendCell) -> None:
        """Put a cell read back from the table into the book."""
        self.cells[cell.key] = cell
        minute = bucket_minute(cell.bucket)
        if minute is not None:
            self.rolling[cell.budget][minute] = cell
            return
        budget = self._budget(cell.budget)
        if budget is None or budget.period == "rolling":
            return
        if cell.latest is None:
            return
        period = calendar_period(cell.latest, budget.period, budget.timezone)
        if period.key == cell.bucket:
            current = self.current.get(cell.budget)
            if current is None or period.start > current.start:
                self.current[cell.budget] = period

    def load_fired(self, arm_key: str, alert_id: str) -> None:
        self.fired[arm_key] = alert_id

    def _budget(self, key: str) -> BudgetConfig | None:
        team, _, _ = key.partition("/")
        return next((b for b in self.by_team.get(team, ()) if b.key == key), None)

    # -- the batch ------------------------------------------------------------------------------
    def admit(self, charge: Charge) -> None:
        """Raise what `apply` would raise on this one charge: its period in every budget it
        counts toward, and the period before (the stream dead-letters a charge that raises,
        so one event never takes its batch down)."""
        for budget in self.by_team.get(charge.team, ()):
            if not _matches(budget, charge):
                continue
            if budget.period == "rolling":
                minute_start(minute_of(charge.occurred_at))
                continue
            key = budget.key
            period = self._last_period.get(key)
            if period is None or not period.start <= charge.occurred_at < period.end:
                period = calendar_period(charge.occurred_at, budget.period, budget.timezone)
                previous_period(period, budget.period, budget.timezone)
                self._last_period[key] = period

    def apply(self, charges: Iterable[Charge], fired_at: datetime) -> BookChanges:
        """Add a batch of charges; return the cells, fired entries, states and alerts it causes."""
        calendar: dict[tuple[str, str], list[Charge]] = defaultdict(list)
        periods: dict[tuple[str, str], Period] = {}
        rolling: dict[str, list[Charge]] = defaultdict(list)
        budgets: dict[str, BudgetConfig] = {}
        for charge in charges:
            for budget in self.by_team.get(charge.team, ()):
                if not _matches(budget, charge):
                    continue
                key = budget.key  # a property: read once per charge (the stream's hot path)
                budgets[key] = budget
                if budget.period == "rolling":
                    rolling[key].append(charge)
                    continue
                period = self._last_period.get(key)
                if period is None or not period.start <= charge.occurred_at < period.end:
                    # Most events of a batch share a period: find it once, not per event.
                    period = self._last_period[key] = calendar_period(
                        charge.occurred_at, budget.period, budget.timezone
                    )
                cell = (key, period.key)
                calendar[cell].append(charge)
                periods[cell] = period
        changes = BookChanges()
        for (key, period_key), batch in calendar.items():
            self._apply_calendar(budgets[key], periods[(key, period_key)], batch, fired_at, changes)
        for key, batch in rolling.items():
            self._apply_rolling(budgets[key], batch, fired_at, changes)
        return changes

    def _apply_calendar(
        self, budget: BudgetConfig, period: Period, batch: list[Charge], fired_at: datetime, changes: BookChanges
    ) -> None:
        cell = self.cells.get(f"{budget.key}|{period.key}") or SpendCell(budget.key, period.key)
        before_unpriced = cell.unpriced
        for charge in batch:
            cell.add(
                charge.cost_usd,
                priced=charge.priced,
                provider=charge.provider,
                model=charge.model,
                occurred_at=charge.occurred_at,
            )
        self.cells[cell.key] = cell
        changes.cells[cell.key] = cell
        current = self.current.get(budget.key)
        if current is None or period.start >= current.start:
            self.current[budget.key] = period
            if current is not None and period.start > current.start:
                self._prune_calendar(budget, period, changes)
        self._judge_calendar(budget, period, cell, batch, before_unpriced, fired_at, changes)

    def _judge_calendar(
        self,
        budget: BudgetConfig,
        period: Period,
        cell: SpendCell,
        batch: list[Charge],
        before_unpriced: int,
        fired_at: datetime,
        changes: BookChanges,
    ) -> None:
        """The alerts a calendar cell's new spend fires, and its state when the period is current."""
        elapsed = period.elapsed_fraction(cell.latest) if cell.latest is not None else 0.0
        projection = forecast_spend(cell.spend, elapsed) if elapsed >= self.forecast_min_elapsed else None
        context = _AlertContext(
            budget, period.key, period.start, period.end, cell, self._previous_spend(budget, period), projection
        )
        start_spend = cell.spend - sum((c.cost_usd for c in batch), ZERO)
        self._thresholds(context, batch, start_spend, fired_at, changes, arm_period=period.key)
        if cell.latest is not None:
            projected = forecast_exceeds(
                cell.spend,
                budget.limit_usd,
                elapsed,
                min_elapsed=self.forecast_min_elapsed,
                min_spend_fraction=self.forecast_min_spend_fraction,
            )
            arm = AlertEvent.make_id(budget.team, budget.name, period.key, "forecast", None)
            if projected is not None and arm not in self.fired:
                self._fire(context, "forecast", None, arm, arm, period.key, fired_at, changes)
        if before_unpriced == 0 and cell.unpriced > 0:
            arm = AlertEvent.make_id(budget.team, budget.name, period.key, "unpriced", None)
            if arm not in self.fired:
                trigger = next((c.event_id for c in batch if not c.priced), None)
                self._fire(context, "unpriced", None, arm, arm, period.key, fired_at, changes, trigger=trigger)
        if self.current[budget.key].key == period.key:
            changes.states.append(context.state(fired_at))

    def apply_corrections(self, corrections: Iterable[tuple[Charge, int]], fired_at: datetime) -> BookChanges:
        """Move current periods by re-priced events' deltas: each item is a Charge whose
        `cost_usd` is the delta, and the change of the unpriced count (-1, 0 or 1).

        A threshold the new spend crosses fires once, as if an event had crossed it. A rolling
        budget moves when the event's minute is still in its window (the minute cells it
        sums), and a correction that takes the window back below a threshold re-arms it, as
        an expiring minute does. A correction for a calendar period that is no longer current,
        or for a minute that left the window, changes nothing here: that spend is over, and the
        ClickHouse tables were corrected by the run itself."""
        groups: dict[str, tuple[BudgetConfig, Period, list[tuple[Charge, int]]]] = {}
        rolling: dict[str, tuple[BudgetConfig, list[tuple[Charge, int]]]] = {}
        for charge, unpriced_delta in corrections:
            for budget in self.by_team.get(charge.team, ()):
                if not _matches(budget, charge):
                    continue
                if budget.period == "rolling":
                    if minute_of(charge.occurred_at) in self.rolling.get(budget.key, {}):
                        rolling.setdefault(budget.key, (budget, []))[1].append((charge, unpriced_delta))
                    continue
                period = self.current.get(budget.key)
                if period is None or not period.start <= charge.occurred_at < period.end:
                    continue
                if f"{budget.key}|{period.key}" not in self.cells:
                    continue
                groups.setdefault(budget.key, (budget, period, []))[2].append((charge, unpriced_delta))
        changes = BookChanges()
        for budget, period, items in groups.values():
            cell = self.cells[f"{budget.key}|{period.key}"]
            before_unpriced = cell.unpriced
            for charge, unpriced_delta in items:
                cell.correct(
                    charge.cost_usd, unpriced_delta=unpriced_delta, provider=charge.provider, model=charge.model
                )
            changes.cells[cell.key] = cell
            self._judge_calendar(
                budget, period, cell, [charge for charge, _ in items], before_unpriced, fired_at, changes
            )
        for budget, items in rolling.values():
            self._correct_rolling(budget, items, fired_at, changes)
        return changes

    def _correct_rolling(
        self, budget: BudgetConfig, items: list[tuple[Charge, int]], fired_at: datetime, changes: BookChanges
    ) -> None:
        """Move the minute cells of a rolling window by re-priced deltas, then judge the window."""
        assert budget.window is not None
        minutes = self.rolling[budget.key]
        for charge, unpriced_delta in items:
            cell = minutes[minute_of(charge.occurred_at)]
            cell.correct(charge.cost_usd, unpriced_delta=unpriced_delta, provider=charge.provider, model=charge.model)
            changes.cells[cell.key] = cell
        latest = max(minutes)
        first, last = rolling_bounds(latest, budget.window)
        self._judge_rolling(budget, [charge for charge, _ in items], first, last, latest, fired_at, changes)

    def _apply_rolling(
        self, budget: BudgetConfig, batch: list[Charge], fired_at: datetime, changes: BookChanges
    ) -> None:
        assert budget.window is not None
        minutes = self.rolling[budget.key]
        latest = max([minute_of(c.occurred_at) for c in batch] + list(minutes))
        first, last = rolling_bounds(latest, budget.window)
        inside = [c for c in batch if minute_of(c.occurred_at) >= first]
        for charge in inside:
            minute = minute_of(charge.occurred_at)
            cell = minutes.get(minute)
            if cell is None:
                cell = minutes[minute] = SpendCell(budget.key, minute_bucket(minute))
                self.cells[cell.key] = cell
            cell.add(
                charge.cost_usd,
                priced=charge.priced,
                provider=charge.provider,
                model=charge.model,
                occurred_at=charge.occurred_at,
            )
            changes.cells[cell.key] = cell
        for minute in [m for m in minutes if m < first]:
            gone = minutes.pop(minute)
            self.cells.pop(gone.key, None)
            changes.cells[gone.key] = None
        self._judge_rolling(budget, inside, first, last, latest, fired_at, changes)

    def _judge_rolling(
        self,
        budget: BudgetConfig,
        inside: list[Charge],
        first: int,
        last: int,
        latest: int,
        fired_at: datetime,
        changes: BookChanges,
    ) -> None:
        """The window's spend after `inside` (new events, or corrections carrying their delta)
        moved its minute cells: re-arm what fell back below, fire what it crosses, its state."""
        assert budget.window is not None
        minutes = self.rolling[budget.key]
        window = SpendCell(budget.key, rolling_key(budget.window))
        for cell in minutes.values():
            window.spend += cell.spend
            window.events += cell.events
            window.unpriced += cell.unpriced
            for name, spend in cell.models.items():
                window.models[name] = window.models.get(name, ZERO) + spend
        start, end = minute_start(first), minute_start(last + 1)
        label = rolling_key(budget.window)
        context = _AlertContext(budget, label, start, end, window, None, None)
        # A rolling threshold re-arms once the window's spend falls back below it.
        for threshold in budget.thresholds:
            arm = AlertEvent.make_id(budget.team, budget.name, label, "threshold", threshold)
            if arm in self.fired and window.spend < threshold_amount(budget.limit_usd, threshold):
                del self.fired[arm]
                changes.fired[arm] = None
        unpriced_arm = AlertEvent.make_id(budget.team, budget.name, label, "unpriced", None)
        if window.unpriced == 0 and unpriced_arm in self.fired:
            del self.fired[unpriced_arm]
            changes.fired[unpriced_arm] = None
        start_spend = window.spend - sum((c.cost_usd for c in inside), ZERO)
        crossing_label = f"{label}@{minute_start(latest).strftime('%Y-%m-%dT%H:%MZ')}"
        self._thresholds(context, inside, start_spend, fired_at, changes, arm_period=label, alert_period=crossing_label)
        if window.unpriced > 0 and unpriced_arm not in self.fired:
            alert_id = AlertEvent.make_id(budget.team, budget.name, crossing_label, "unpriced", None)
            trigger = next((c.event_id for c in inside if not c.priced), None)
            self._fire(
                context, "unpriced", None, unpriced_arm, alert_id, crossing_label, fired_at, changes, trigger=trigger
            )
        changes.states.append(context.state(fired_at))

    def _thresholds(
        self,
        context: _AlertContext,
        batch: list[Charge],
        start_spend: Decimal,
        fired_at: datetime,
        changes: BookChanges,
        *,
        arm_period: str,
        alert_period: str | None = None,
    ) -> None:
        budget = context.budget
        label = alert_period or arm_period
        pending = []
        for threshold in budget.thresholds:
            arm = AlertEvent.make_id(budget.team, budget.name, arm_period, "threshold", threshold)
            if arm not in self.fired:
                pending.append(threshold)
        for threshold in crossed_thresholds(context.cell.spend, budget.limit_usd, pending):
            arm = AlertEvent.make_id(budget.team, budget.name, arm_period, "threshold", threshold)
            alert_id = AlertEvent.make_id(budget.team, budget.name, label, "threshold", threshold)
            amount = threshold_amount(budget.limit_usd, threshold)
            trigger = first_reaching(((c.event_id, c.cost_usd) for c in batch), start_spend, amount)
            self._fire(context, "threshold", threshold, arm, alert_id, label, fired_at, changes, trigger=trigger)

    def _fire(
        self,
        context: _AlertContext,
        kind: AlertKind,
        threshold: Decimal | None,
        arm: str,
        alert_id: str,
        period_label: str,
        fired_at: datetime,
        changes: BookChanges,
        *,
        trigger: str | None = None,
    ) -> None:
        self.fired[arm] = alert_id
        changes.fired[arm] = alert_id
        changes.alerts.append(
            context.alert(alert_id, kind, threshold, period_label, fired_at, trigger, self.top_model_count)
        )

    def _previous_spend(self, budget: BudgetConfig, period: Period) -> Decimal | None:
        if budget.period == "rolling":
            return None
        previous = previous_period(period, budget.period, budget.timezone)
        cell = self.cells.get(f"{budget.key}|{previous.key}")
        return cell.spend if cell is not None else None

    def _prune_calendar(self, budget: BudgetConfig, current: Period, changes: BookChanges) -> None:
        """Forget periods that ended before the previous period and beyond the grace period."""
        if budget.period == "rolling":
            return
        keep_after = min(previous_period(current, budget.period, budget.timezone).start, current.start - self.grace)
        prefix = f"{budget.key}|"
        for key, cell in list(self.cells.items()):
            if not key.startswith(prefix) or bucket_minute(cell.bucket) is not None or cell.latest is None:
                continue
            if calendar_period(cell.latest, budget.period, budget.timezone).end <= keep_after:
                del self.cells[key]
                changes.cells[key] = None
                for arm in [a for a in self.fired if a.startswith(f"{budget.key}/{cell.bucket}/")]:
                    del self.fired[arm]
                    changes.fired[arm] = None


@dataclass
class _AlertContext:
    budget: BudgetConfig
    period: str
    start: datetime
    end: datetime
    cell: SpendCell
    previous_spend: Decimal | None
    forecast: Decimal | None

    def state(self, updated_at: datetime) -> BudgetState:
        spend = quantize_money(self.cell.spend)
        return BudgetState(
            team=self.budget.team,
            budget=self.budget.name,
            period=self.period,
            period_start=self.start,
            period_end=self.end,
            spend_usd=spend,
            limit_usd=self.budget.limit_usd,
            percent=percent_of(spend, self.budget.limit_usd),
            hard_limit=self.budget.hard_limit,
            over_hard_limit=self.budget.hard_limit and spend >= self.budget.limit_usd,
            unpriced_events=self.cell.unpriced,
            updated_at=updated_at,
        )

    def alert(
        self,
        alert_id: str,
        kind: AlertKind,
        threshold: Decimal | None,
        period_label: str,
        fired_at: datetime,
        trigger: str | None,
        top_count: int,
    ) -> AlertEvent:
        spend = quantize_money(self.cell.spend)
        return AlertEvent(
            alert_id=alert_id,
            kind=kind,
            team=self.budget.team,
            budget=self.budget.name,
            period=period_label,
            period_start=self.start,
            period_end=self.end,
            timezone=self.budget.timezone,
            threshold_percent=threshold,
            spend_usd=spend,
            limit_usd=self.budget.limit_usd,
            percent=percent_of(spend, self.budget.limit_usd),
            forecast_usd=self.forecast,
            previous_period_spend_usd=quantize_money(self.previous_spend) if self.previous_spend is not None else None,
            top_models=[
                ModelSpend(provider=p, model=m, spend_usd=quantize_money(s))
                for p, m, s in top_models(self.cell.models, top_count)
            ],
            hard_limit=self.budget.hard_limit,
            unpriced_events=self.cell.unpriced,
            triggered_by_event_id=trigger,
            fired_at=fired_at,
        )
