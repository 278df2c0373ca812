"""What the demo's traffic will be and cost: the seeded events, priced before they are sent."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from meterline.events import UsageEvent
from meterline.pricing import PriceCatalog
from meterline.producers.traffic import generate_events


@dataclass(frozen=True)
class TrafficPlan:
    """The seeded traffic of one demo run (`iter_events` arguments and how many events)."""

    seed: int
    teams: int
    start: datetime
    rate: float
    count: int

    def events(self) -> list[UsageEvent]:
        """Every event the run sends, duplicates (retried sends) included."""
        return generate_events(seed=self.seed, teams=self.teams, start=self.start, count=self.count, rate=self.rate)


def distinct_events(events: Iterable[UsageEvent]) -> list[UsageEvent]:
    """The events once each (the first of every event_id), in order."""
    seen: set[str] = set()
    unique: list[UsageEvent] = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            unique.append(event)
    return unique


def spend_by_team(events: Iterable[UsageEvent], catalog: PriceCatalog) -> dict[str, Decimal]:
    """Exact spend per team of the distinct events (what the worker will count)."""
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for event in distinct_events(events):
        spend[event.team] += catalog.price_event(event).cost_usd
    return dict(spend)
