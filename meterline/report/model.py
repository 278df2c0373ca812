"""The chargeback report's figures (pure): rows of the named queries in, exact Decimals out.

Per team x project x model: requests, tokens by type, spend and savings, the previous month's
spend beside it; per team: the spend against each monthly budget of the month. Totals are
plain sums of the rows, so they equal SQL over the same period exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
MONEY_FIELDS = ("cost_usd", "cache_saving_usd", "batch_saving_usd")
Row = Mapping[str, Any]
LineKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class ReportLine:
    """One team x project x model of the period (project is '' when events named none)."""

    team: str
    project: str
    provider: str
    model: str
    requests: int
    tokens: dict[str, int]
    cost_usd: Decimal
    cache_saving_usd: Decimal
    batch_saving_usd: Decimal
    previous_cost_usd: Decimal

    @property
    def key(self) -> LineKey:
        return (self.team, self.project, self.provider, self.model)

    @property
    def change_usd(self) -> Decimal:
        return self.cost_usd - self.previous_cost_usd


@dataclass(frozen=True)
class BudgetLine:
    """A monthly budget of the period, as its latest stored state says."""

    team: str
    budget: str
    spend_usd: Decimal
    limit_usd: Decimal
    percent: Decimal


@dataclass(frozen=True)
class TeamTotal:
    team: str
    requests: int
    cost_usd: Decimal
    savings_usd: Decimal
    previous_cost_usd: Decimal
    budgets: list[BudgetLine] = field(default_factory=list)


@dataclass(frozen=True)
class ChargebackReport:
    period: str
    previous_period: str
    lines: list[ReportLine]
    teams: list[TeamTotal]

    @property
    def total_cost_usd(self) -> Decimal:
        return sum((line.cost_usd for line in self.lines), Decimal(0))

    @property
    def total_previous_cost_usd(self) -> Decimal:
        return sum((team.previous_cost_usd for team in self.teams), Decimal(0))

    @property
    def total_requests(self) -> int:
        return sum(line.requests for line in self.lines)

    @property
    def total_savings_usd(self) -> Decimal:
        return sum((line.cache_saving_usd + line.batch_saving_usd for line in self.lines), Decimal(0))

    def total_tokens(self, kind: str) -> int:
        return sum(line.tokens[kind] for line in self.lines)


def build_report(
    period: str, previous_period: str, current: Iterable[Row], previous: Iterable[Row], budgets: Iterable[Row]
) -> ChargebackReport:
    """The report of `period` from the `chargeback` rows of it and of the month before, and the
    `month_budgets` rows of it (budgets whose period key is `period`)."""
    before: dict[LineKey, Decimal] = defaultdict(Decimal)
    for row in previous:
        before[_key(row)] += Decimal(row["cost_usd"])
    lines = [
        ReportLine(
            team=str(row["team"]),
            project=str(row["project"]),
            provider=str(row["provider"]),
            model=str(row["model"]),
            requests=int(row["requests"]),
            tokens={kind: int(row[kind]) for kind in TOKEN_KINDS},
            cost_usd=Decimal(row["cost_usd"]),
            cache_saving_usd=Decimal(row["cache_saving_usd"]),
            batch_saving_usd=Decimal(row["batch_saving_usd"]),
            previous_cost_usd=before.pop(_key(row), Decimal(0)),
        )
        for row in current
    ]
    # What was spent last month on lines with nothing this month still shows, at zero now.
    for (team, project, provider, model), cost in sorted(before.items()):
        lines.append(
            ReportLine(
                team,
                project,
                provider,
                model,
                0,
                dict.fromkeys(TOKEN_KINDS, 0),
                Decimal(0),
                Decimal(0),
                Decimal(0),
                cost,
            )
        )
    lines.sort(key=lambda line: line.key)
    by_team: dict[str, list[BudgetLine]] = defaultdict(list)
    for row in budgets:
        if row["period"] == period:
            by_team[str(row["team"])].append(
                BudgetLine(
                    str(row["team"]),
                    str(row["budget"]),
                    Decimal(row["spend_usd"]),
                    Decimal(row["limit_usd"]),
                    Decimal(row["percent"]),
                )
            )
    teams = []
    for team in sorted({line.team for line in lines} | set(by_team)):
        mine = [line for line in lines if line.team == team]
        teams.append(
            TeamTotal(
                team=team,
                requests=sum(line.requests for line in mine),
                cost_usd=sum((line.cost_usd for line in mine), Decimal(0)),
                savings_usd=sum((line.cache_saving_usd + line.batch_saving_usd for line in mine), Decimal(0)),
                previous_cost_usd=sum((line.previous_cost_usd for line in mine), Decimal(0)),
                budgets=by_team.get(team, []),
            )
        )
    return ChargebackReport(period, previous_period, lines, teams)


def _key(row: Row) -> LineKey:
    return (str(row["team"]), str(row["project"]), str(row["provider"]), str(row["model"]))
