"""The demo's meterline.toml: five teams with daily and monthly budgets, one hard-limited. Pure.

Limits are sized from what the planned traffic will cost (see `plan.py`), so that about a
minute of traffic crosses the 50/80/100 % thresholds for several teams: real budgets are far
larger, but a demo that never alerts shows nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

# Limit = planned spend x factor: the percent each budget ends at is about 100 / factor.
# Daily: 125 %, 105 %, 87 %, 62 %, 53 %; monthly (never below daily): 67 %, 91 %, 40 %, 55 %, 33 %.
DAILY_FACTORS = (Decimal("0.8"), Decimal("0.95"), Decimal("1.15"), Decimal("1.6"), Decimal("1.9"))
MONTHLY_FACTORS = (Decimal("1.5"), Decimal("1.1"), Decimal("2.5"), Decimal("1.8"), Decimal("3"))
MIN_LIMIT = Decimal("0.01")


@dataclass(frozen=True)
class DemoBudget:
    team: str
    name: str
    period: str
    limit_usd: Decimal
    hard_limit: bool
    email: str


@dataclass(frozen=True)
class DemoConfig:
    """Everything the demo's meterline.toml says."""

    data_dir: Path
    kafka_bootstrap: str
    topic_prefix: str
    web_port: int
    smtp_port: int
    kafka_cache_dir: Path
    budgets: tuple[DemoBudget, ...]


def round_limit(value: Decimal) -> Decimal:
    """Two significant digits (a limit a person would write), at least one cent."""
    if value <= MIN_LIMIT:
        return MIN_LIMIT
    exponent = value.adjusted() - 1
    return value.scaleb(-exponent).quantize(Decimal(1), ROUND_HALF_UP).scaleb(exponent).normalize()


def team_email(team: str) -> str:
    return f"{team}-owners@example.org"


def plan_budgets(spend_by_team: dict[str, Decimal]) -> tuple[DemoBudget, ...]:
    """A daily and a monthly budget per team; the biggest team's daily budget is a hard limit."""
    budgets: list[DemoBudget] = []
    for rank, team in enumerate(sorted(spend_by_team)):
        spend = max(spend_by_team[team], MIN_LIMIT)
        daily = round_limit(spend * DAILY_FACTORS[rank % len(DAILY_FACTORS)])
        monthly = max(round_limit(spend * MONTHLY_FACTORS[rank % len(MONTHLY_FACTORS)]), daily)
        budgets.append(DemoBudget(team, "daily", "day", daily, hard_limit=rank == 0, email=team_email(team)))
        budgets.append(DemoBudget(team, "monthly", "month", monthly, hard_limit=False, email=team_email(team)))
    return tuple(budgets)


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(config: DemoConfig) -> str:
    """The meterline.toml text (read by the worker and by `meterline --config … sql`)."""
    lines = [
        "# Written by `meterline demo`. Limits are sized so that a minute of demo traffic crosses",
        '# thresholds; query with `meterline --config <this file> sql "SELECT …"`.',
        f"data_dir = {_toml_string(str(config.data_dir))}",
        f"kafka_bootstrap = {_toml_string(config.kafka_bootstrap)}",
        f"topic_prefix = {_toml_string(config.topic_prefix)}",
        "",
        "[local_kafka]",
        f"port = {config.kafka_bootstrap.rpartition(':')[2]}",
        f"cache_dir = {_toml_string(str(config.kafka_cache_dir))}",
        "",
        "[stream]",
        'web_host = "127.0.0.1"',
        f"web_port = {config.web_port}",
        "",
        "[alerts]",
        'smtp_host = "127.0.0.1"',
        f"smtp_port = {config.smtp_port}",
        'smtp_security = "none"',
        'smtp_sender = "meterline-demo@localhost"',
        "rate_limit_per_minute = 60",
    ]
    for budget in config.budgets:
        lines += [
            "",
            "[[budgets]]",
            f"team = {_toml_string(budget.team)}",
            f"name = {_toml_string(budget.name)}",
            f"period = {_toml_string(budget.period)}",
            f'limit_usd = "{budget.limit_usd:f}"',
            'timezone = "UTC"',
            "thresholds = [50, 80, 100]",
        ]
        if budget.hard_limit:
            lines.append("hard_limit = true")
        lines.append(
            f'routes = [{{channel = "console"}}, {{channel = "email", target = {_toml_string(budget.email)}}}]'
        )
    return "\n".join(lines) + "\n"
