"""The traffic the end-to-end tests send, and what must come out of it (pure: no services).

Phases alternate bulk traffic and spikes. Bulk phases carry realistic seeded traffic with
duplicates (inside the phase and of earlier phases), late events and malformed messages; all
their spend stays far below every threshold. Spike phases carry a few expensive events per
team and the unpriced events, so every alert fires while a spike phase is processed: a fault
test can hit bulk phases without cutting an alert send in two (SMTP cannot tell afterwards
whether a message was accepted, see meterline.alerts.dispatcher).

Each team has a monthly budget: limit = 10 spike events, the first spike is 3 of them (30 %,
crosses 25), the second 7 (total 100 % plus bulk, crosses 50 and 100; 150 is never reached).
team-01 also has a daily budget at half that limit (crosses 50, 100 and 200, never 300).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from meterline.budgets import calendar_period
from meterline.events import UsageEvent
from meterline.messages import AlertEvent
from meterline.producers.traffic import generate_events, team_names
from meterline.settings import BudgetConfig

UNPRICED_MODEL = "gpt-e2e-unlisted"
SPIKE_MODEL = ("openai", "gpt-4o")
MONTHLY_THRESHOLDS = (Decimal(25), Decimal(50), Decimal(100), Decimal(150))
DAILY_THRESHOLDS = (Decimal(50), Decimal(100), Decimal(200), Decimal(300))
LATE_BY = timedelta(days=3)
"""Beyond the stream's default 48 h grace: stored, never charged to a budget."""


@dataclass(frozen=True)
class Raw:
    """A message that is not a usage event (or not keyed right): it must land in the DLQ."""

    key: bytes | None
    value: bytes | None
    kind: str
    """The DLQ error_kind the stream must give it."""


@dataclass
class Phase:
    name: str
    events: list[UsageEvent]
    """Valid events in send order, duplicates included."""
    raw: list[Raw] = field(default_factory=list)
    spike: bool = False

    @property
    def sends(self) -> int:
        return len(self.events) + len(self.raw)


class Pricer(Protocol):
    """Anything with price_event(event) -> PriceResult (the PriceCatalog)."""

    def price_event(self, event: UsageEvent) -> Any: ...


@dataclass
class Scenario:
    phases: list[Phase]
    teams: list[str]
    prices: dict[str, Any]
    """event_id -> PriceResult of every distinct valid event."""
    budgets: list[BudgetConfig]
    late_ids: set[str]

    # -- what was sent ------------------------------------------------------------------
    @property
    def events(self) -> dict[str, UsageEvent]:
        """Every distinct valid event by id."""
        return self.events_upto(len(self.phases))

    def events_upto(self, phases: int) -> dict[str, UsageEvent]:
        """Distinct valid events of the first `phases` phases."""
        return {e.event_id: e for phase in self.phases[:phases] for e in phase.events}

    @property
    def sends(self) -> int:
        return sum(phase.sends for phase in self.phases)

    @property
    def duplicate_sends(self) -> int:
        return sum(len(phase.events) for phase in self.phases) - len(self.events)

    @property
    def malformed(self) -> Counter[str]:
        return Counter(raw.kind for phase in self.phases for raw in phase.raw)

    # -- what must come out -------------------------------------------------------------
    def totals_by_team(self) -> dict[str, tuple[int, Decimal]]:
        """team -> (distinct events, exact sum of catalog prices), late and unpriced included."""
        out: dict[str, tuple[int, Decimal]] = {}
        for event_id, event in self.events.items():
            count, cost = out.get(event.team, (0, Decimal(0)))
            out[event.team] = (count + 1, cost + self.prices[event_id].cost_usd)
        return out

    @property
    def unpriced_ids(self) -> set[str]:
        return {event_id for event_id, price in self.prices.items() if not price.priced}

    def expected_alerts(self, phases: int | None = None) -> set[str]:
        """Alert ids of every threshold crossed and every budget that saw unpriced events
        (after the first `phases` phases; default all)."""
        events = self.events_upto(len(self.phases) if phases is None else phases)
        ids: set[str] = set()
        for budget in self.budgets:
            on_time = [e for i, e in events.items() if e.team == budget.team and i not in self.late_ids]
            if not on_time:
                continue
            periods = {calendar_period(e.occurred_at, budget.period, budget.timezone).key for e in on_time}  # type: ignore[arg-type]  # the budget's period and timezone are validated settings
            assert len(periods) == 1, f"scenario events span periods {periods}"
            period = periods.pop()
            spend = sum((self.prices[e.event_id].cost_usd for e in on_time), Decimal(0))
            for threshold in budget.thresholds:
                if spend * 100 >= budget.limit_usd * threshold:
                    ids.add(AlertEvent.make_id(budget.team, budget.name, period, "threshold", threshold))
            if any(not self.prices[e.event_id].priced for e in on_time):
                ids.add(AlertEvent.make_id(budget.team, budget.name, period, "unpriced", None))
        return ids

    def threshold_alerts(self) -> set[str]:
        return {alert_id for alert_id in self.expected_alerts() if "/threshold/" in alert_id}

    def routes(self, alert_id: str) -> list[tuple[str, str]]:
        """(channel, target) pairs the alert goes to (see `budgets_toml`)."""
        team, budget = alert_id.split("/")[:2]
        if budget == "monthly":
            return [("slack", slack_channel(team)), ("email", f"{team}@example.org")]
        return [("slack", "#finance"), ("email", "finance@example.org")]


def slack_channel(team: str) -> str:
    """`#costs01` for team-01 (short: the Slack double's channel ids keep 10 characters)."""
    return f"#costs{team.rsplit('-', 1)[-1]}"


def event_base(now: datetime) -> datetime:
    """When the scenario's events occur: two minutes ago, but never before today (UTC) began."""
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(now - timedelta(minutes=2), midnight)


def _malformed(rng: random.Random, n: int, base: datetime, team: str, tag: str) -> list[Raw]:
    wrong_key = UsageEvent(
        team=team, provider="openai", model="gpt-4o-mini", input_tokens=10, output_tokens=1, occurred_at=base
    )
    pool = [
        Raw(team.encode(), f"not json {tag}".encode(), "not_json"),
        Raw(team.encode(), b'{"team": "' + team.encode() + b'", "provider": "openai"}', "schema"),
        Raw(
            team.encode(),
            f'{{"team": "{team}", "provider": "openai", "input_tokens": -5, "tag": "{tag}"}}'.encode(),
            "schema",
        ),
        Raw(b"some-other-team", wrong_key.to_json_bytes(), "wrong_key"),
        Raw(team.encode(), b"\xff\xfe" + tag.encode(), "not_utf8"),
        Raw(team.encode(), None, "not_json"),
    ]
    out = pool[: min(n, len(pool))]
    while len(out) < n:
        out.append(Raw(team.encode(), f"{{broken {tag} {len(out)}".encode(), "not_json"))
    rng.shuffle(out)
    return out


def build_scenario(
    pricer: Pricer,
    *,
    seed: int,
    now: datetime,
    teams: int = 3,
    bulk_phases: int = 3,
    bulk_size: int = 600,
    names: list[str] | None = None,
) -> Scenario:
    """The phases bulk, spike, bulk, spike, bulk (with `bulk_phases` = 3) and their budgets.

    `names` replaces the teams `team-01`… (`teams` of them), e.g. to pick names whose keys land
    on every partition; each must end in `-NN`.
    """
    rng = random.Random(seed)
    names = list(names) if names else team_names(teams)
    teams = len(names)
    renamed = dict(zip(team_names(teams), names, strict=True))

    def generated(**kw: Any) -> list[UsageEvent]:
        events = generate_events(teams=teams, rate=2000, duplicate_share=0, **kw)
        return (
            events if names == team_names(teams) else [e.model_copy(update={"team": renamed[e.team]}) for e in events]
        )

    base = event_base(now)
    prices: dict[str, Any] = {}
    late_ids: set[str] = set()
    bulks: list[Phase] = []
    sent: list[UsageEvent] = []
    for k in range(bulk_phases):
        fresh = generated(seed=seed * 100 + k, start=base + timedelta(seconds=k), count=bulk_size)
        late = generated(seed=seed * 100 + 50 + k, start=base - LATE_BY + timedelta(seconds=k), count=8)
        late_ids.update(e.event_id for e in late)
        events = fresh + late
        rng.shuffle(events)
        # Duplicates: re-sends within the phase (often in the same batch) and of earlier phases.
        for dup in rng.sample(fresh, 20) + (rng.sample(sent, 15) if sent else []):
            events.insert(rng.randrange(len(events) + 1), dup)
        sent += fresh + late
        raw = _malformed(rng, 8, base, names[k % teams], f"p{k}")
        bulks.append(Phase(f"bulk{k}", events, raw))
    for event in sent:
        prices[event.event_id] = pricer.price_event(event)
    bulk_spend = {
        team: sum(
            (prices[e.event_id].cost_usd for e in sent if e.team == team and e.event_id not in late_ids), Decimal(0)
        )
        for team in names
    }

    # One spike event per team costs at least 2.5x the team's whole bulk spend, so bulk stays under 4 % of the limit.
    provider, model = SPIKE_MODEL
    per_million = pricer.price_event(
        UsageEvent(team=names[0], provider=provider, model=model, input_tokens=1_000_000, occurred_at=base)
    ).cost_usd
    spike_cost: dict[str, Decimal] = {}
    spikes: list[list[UsageEvent]] = [[], []]
    for team in names:
        millions = max(1, math.ceil(bulk_spend[team] * Decimal("2.5") / per_million))
        template = {
            "team": team,
            "provider": provider,
            "model": model,
            "input_tokens": millions * 1_000_000,
            "project": f"{team}-spike",
        }
        for index, count in enumerate((3, 7)):
            for n in range(count):
                spikes[index].append(
                    UsageEvent(occurred_at=base + timedelta(seconds=bulk_phases + index, milliseconds=n), **template)
                )
        spike_cost[team] = pricer.price_event(spikes[0][-1]).cost_usd
    for team in names[:2]:
        spikes[0].append(
            UsageEvent(
                team=team, provider="openai", model=UNPRICED_MODEL, input_tokens=500, output_tokens=50, occurred_at=base
            )
        )
    spike_phases = []
    for index, events in enumerate(spikes):
        for event in events:
            prices[event.event_id] = pricer.price_event(event)
        events = events + [rng.choice(events)]  # a duplicate spike must not be charged twice
        if index == 1:
            events.append(spikes[0][0])  # nor one re-sent a phase later
        spike_phases.append(Phase(f"spike{index + 1}", events, spike=True))

    phases: list[Phase] = []
    for k, bulk in enumerate(bulks):
        phases.append(bulk)
        if k < len(spike_phases):
            phases.append(spike_phases[k])
    budgets = [
        BudgetConfig(
            team=team,
            name="monthly",
            period="month",
            limit_usd=spike_cost[team] * 10,
            thresholds=list(MONTHLY_THRESHOLDS),
        )
        for team in names
    ]
    budgets.append(
        BudgetConfig(
            team=names[0],
            name="daily",
            period="day",
            limit_usd=spike_cost[names[0]] * 5,
            thresholds=list(DAILY_THRESHOLDS),
        )
    )
    return Scenario(phases, names, prices, budgets, late_ids)


def budgets_toml(scenario: Scenario) -> str:
    """The `[[budgets]]` entries: monthly budgets route to the team, the daily one to the defaults."""
    lines: list[str] = []
    for budget in scenario.budgets:
        thresholds = ", ".join(str(t) for t in budget.thresholds)
        lines += [
            "[[budgets]]",
            f'team = "{budget.team}"',
            f'name = "{budget.name}"',
            f'period = "{budget.period}"',
            f'limit_usd = "{budget.limit_usd}"',
            f"thresholds = [{thresholds}]",
        ]
        if budget.name == "monthly":
            lines += [
                f'routes = [{{channel = "slack", target = "{slack_channel(budget.team)}"}}, {{channel = "email", target = "{budget.team}@example.org"}}]'
            ]
        lines.append("")
    return "\n".join(lines)
