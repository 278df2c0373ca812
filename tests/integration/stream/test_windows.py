"""Calendar boundaries in a non-UTC timezone, rolling windows, late events inside and outside grace."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from meterline.budgets import calendar_period
from meterline.messages import AlertEvent, BudgetState, PricedEvent
from meterline.pricing import PriceCatalog
from meterline.settings import Settings
from tests.integration.stream.harness import Reader, WorkerProcess, event, make_producer, produce_events

pytestmark = pytest.mark.integration

BERLIN = ZoneInfo("Europe/Berlin")


def at_least(count: int) -> Callable[[list[Any]], bool]:
    return lambda records: len(records) >= count


def fixed(n: int, team: str, at: datetime):
    return event(n, team=team, at=at, input_tokens=10_000, output_tokens=1_000)


def test_berlin_days_rolling_hour_and_grace(
    start_worker: Callable[..., WorkerProcess], kafka_bootstrap: str, topic_prefix: str
) -> None:
    now = datetime.now(UTC)
    cost = PriceCatalog.load(Settings().pricing).price_event(fixed(0, "ml", now)).cost_usd
    limit = (cost * Decimal("1.5")).quantize(Decimal("1e-9"))
    worker = start_worker(f"""
[[budgets]]
team = "ml"
name = "berlin-day"
limit_usd = "{limit}"
period = "day"
timezone = "Europe/Berlin"

[[budgets]]
team = "ops"
name = "hour"
limit_usd = "1000"
period = "rolling"
window = "1h"

[[budgets]]
team = "late"
name = "day"
limit_usd = "{limit}"
period = "day"
""")
    producer = make_producer(kafka_bootstrap)
    usage = f"{topic_prefix}usage"
    priced = Reader(kafka_bootstrap, f"{topic_prefix}usage.priced")
    states = Reader(kafka_bootstrap, f"{topic_prefix}budget.state")

    yesterday = (now.astimezone(BERLIN) - timedelta(days=1)).date()
    before_midnight = datetime.combine(yesterday, time(23, 30), BERLIN).astimezone(UTC)
    after_midnight = datetime.combine(yesterday + timedelta(days=1), time(0, 30), BERLIN).astimezone(UTC)
    outside_grace, inside_grace = now - timedelta(hours=49), now - timedelta(hours=47)
    steps = [
        [
            fixed(1, "ml", before_midnight),
            fixed(2, "ops", now - timedelta(minutes=90)),
            fixed(3, "late", outside_grace),
        ],
        [
            fixed(4, "ml", after_midnight),
            fixed(5, "ops", now - timedelta(minutes=30)),
            fixed(6, "ops", now - timedelta(minutes=5)),
        ],
        [fixed(7, "late", inside_grace)],
    ]
    sent = 0
    for step, states_after in zip(steps, (2, 4, 5), strict=True):  # the 49 h late event moves no budget
        sent += produce_events(producer, usage, step)
        priced.poll_until(at_least(sent))  # one step at a time: batches stay apart
        states.poll_until(at_least(states_after))
    producer.close()
    states.settle(quiet=2)
    by_budget: dict[str, list[BudgetState]] = {}
    for record in states.records:
        state = BudgetState.model_validate_json(record.value)
        by_budget.setdefault(f"{state.team}/{state.budget}", []).append(state)

    # Berlin: 23:30 and 00:30 local fall into two days, each bounded by Berlin midnights.
    berlin = by_budget["ml/berlin-day"]
    first = calendar_period(before_midnight, "day", "Europe/Berlin")
    second = calendar_period(after_midnight, "day", "Europe/Berlin")
    assert [(s.period, s.spend_usd) for s in berlin] == [(first.key, cost), (second.key, cost)]
    assert (berlin[1].period_start, berlin[1].period_end) == (second.start, second.end)
    assert berlin[1].period_start.astimezone(BERLIN).time() == time(0, 0)

    # Rolling hour: the event 90 minutes old has left the window once newer ones arrive.
    hour = by_budget["ops/hour"]
    assert [s.spend_usd for s in hour] == [cost, cost * 2]
    assert all(s.period == "rolling:1h" for s in hour)

    # Grace: 49 h late is priced and marked but moves nothing; 47 h late updates its period.
    marked = {p.event_id: p.late for p in (PricedEvent.model_validate_json(r.value) for r in priced.records)}
    assert marked[steps[0][2].event_id] is True and marked[steps[2][0].event_id] is False
    alerts = Reader(kafka_bootstrap, f"{topic_prefix}alerts")
    alerts.settle(quiet=2)
    late_thresholds = [
        a.alert_id
        for a in (AlertEvent.model_validate_json(r.value) for r in alerts.records)
        if a.team == "late" and a.kind == "threshold"
    ]
    inside_period = calendar_period(inside_grace, "day", "UTC").key
    assert late_thresholds == [f"late/day/{inside_period}/threshold/50"]
    assert worker.metric("meterline_stream_late_total") == 1
    for reader in (priced, states, alerts):
        reader.close()
    assert worker.stop() == 0
