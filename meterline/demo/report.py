"""The cost report at the end of the demo: every figure read from ClickHouse by SQL."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from meterline.demo import queries
from meterline.demo.display import latest_per_budget
from meterline.demo.mailcapture import read_messages
from meterline.demo.queries import Row, count, money
from meterline.settings import Settings


@dataclass
class CapturedEmail:
    file: str
    subject: str
    to: str
    message_id: str


@dataclass
class DemoReport:
    """What the run sent and what ClickHouse holds (money as exact Decimals)."""

    sent: int
    distinct_sent: int
    stored_rows: int
    stored_distinct: int
    total_cost_usd: Decimal
    unpriced: int
    dead_letters: int
    per_team: list[Row]
    per_model: list[Row]
    savings: list[Row]
    budgets: list[Row]
    deliveries: list[Row]
    alerts: list[Row]
    emails: list[CapturedEmail] = field(default_factory=list)
    mail_dir: str = ""
    console_alert_lines: int = 0
    traffic: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.stored_distinct == self.distinct_sent and self.stored_rows == self.distinct_sent

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str) + "\n"


def read_report(
    settings: Settings, *, sent: int, distinct_sent: int, mail_dir: Path, traffic: dict[str, Any]
) -> DemoReport:
    """Query ClickHouse (through the worker) and the mail folder."""
    totals = queries.select(settings, queries.TOTALS)[0]
    budgets = list(latest_per_budget(queries.select(settings, queries.BUDGETS)).values())
    emails = [
        CapturedEmail(str(path), str(message["Subject"]), str(message["To"]), str(message["Message-ID"]))
        for path, message in read_messages(mail_dir)
    ]
    return DemoReport(
        sent=sent,
        distinct_sent=distinct_sent,
        stored_rows=count(totals["rows"]),
        stored_distinct=count(totals["distinct_events"]),
        total_cost_usd=money(totals["cost_usd"]),
        unpriced=count(totals["unpriced"]),
        dead_letters=count(queries.select(settings, queries.DLQ)[0]["dead_letters"]),
        per_team=queries.select(settings, queries.PER_TEAM),
        per_model=queries.select(settings, queries.PER_MODEL),
        savings=queries.select(settings, queries.SAVINGS),
        budgets=budgets,
        deliveries=queries.select(settings, queries.DELIVERIES),
        alerts=queries.select(settings, queries.ALERTS),
        emails=emails,
        mail_dir=str(mail_dir),
        traffic=traffic,
    )


def _usd(value: Any, places: int = 4) -> str:
    return f"{money(value):,.{places}f}"


def print_report(report: DemoReport, console: Console) -> None:
    """The report as tables; the figures are the ones ClickHouse answered."""
    console.print()
    console.rule("[bold]meterline demo: cost report (read from ClickHouse by SQL)")
    duplicates = report.sent - report.distinct_sent
    console.print(
        f"events sent {report.sent:,} ({duplicates:,} duplicate sends) -> {report.distinct_sent:,} distinct; "
        f"ClickHouse holds {report.stored_distinct:,} distinct events in {report.stored_rows:,} rows; "
        f"unpriced {report.unpriced}, dead letters {report.dead_letters}",
        highlight=False,
    )
    console.print(f"total spend: [bold]{_usd(report.total_cost_usd, 6)} USD[/bold]")

    teams = Table(title="spend per team", title_justify="left")
    for name, justify in (("team", "left"), ("requests", "right"), ("spend USD", "right")):
        teams.add_column(name, justify=justify)  # type: ignore[arg-type]  # the justify values are rich's JustifyMethod literals
    for row in report.per_team:
        teams.add_row(row["team"], f"{count(row['requests']):,}", _usd(row["cost_usd"], 6))
    console.print(teams)

    models = Table(title="spend per model", title_justify="left")
    for name in ("provider", "model", "requests", "input tokens", "output tokens", "spend USD"):
        models.add_column(name, justify="left" if name in ("provider", "model") else "right")
    for row in report.per_model:
        models.add_row(
            row["provider"],
            row["model"],
            f"{count(row['requests']):,}",
            f"{count(row['input_tokens']):,}",
            f"{count(row['output_tokens']):,}",
            _usd(row["cost_usd"], 6),
        )
    console.print(models)

    savings = Table(title="cache and batch savings", title_justify="left")
    for name in ("team", "cache hits", "cache saving USD", "batch calls", "batch saving USD"):
        savings.add_column(name, justify="left" if name == "team" else "right")
    for row in report.savings:
        savings.add_row(
            row["team"],
            f"{count(row['cache_hits']):,}",
            _usd(row["cache_saving_usd"], 6),
            f"{count(row['batch_requests']):,}",
            _usd(row["batch_saving_usd"], 6),
        )
    console.print(savings)

    budgets = Table(title="budgets vs spend (current period)", title_justify="left")
    for name in ("team", "budget", "period", "spend USD", "limit USD", "%", "hard limit"):
        budgets.add_column(name, justify="right" if name in ("spend USD", "limit USD", "%") else "left")
    for row in report.budgets:
        hard = "yes, EXCEEDED" if row["over_hard_limit"] else ("yes" if row["hard_limit"] else "")
        budgets.add_row(
            row["team"],
            row["budget"],
            row["period"],
            _usd(row["spend_usd"]),
            _usd(row["limit_usd"], 2),
            f"{money(row['percent']):.1f}",
            hard,
        )
    console.print(budgets)

    channels = Table(title="alerts delivered per channel", title_justify="left")
    for name in ("channel", "sent", "failed", "still sending"):
        channels.add_column(name, justify="left" if name == "channel" else "right")
    for row in report.deliveries:
        channels.add_row(row["channel"], str(count(row["sent"])), str(count(row["failed"])), str(count(row["sending"])))
    console.print(channels)
    kinds: dict[str, int] = {}
    for row in report.alerts:
        if row["channel"] == "console":
            kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
    if kinds:
        console.print(
            "alerts by kind: " + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())), highlight=False
        )
    console.print(f"console alert messages printed by the worker: {report.console_alert_lines}", highlight=False)

    console.print(f"emails captured: {len(report.emails)} in {report.mail_dir}", highlight=False)
    for captured in report.emails:
        console.print(
            f"  {Path(captured.file).name}  to {captured.to}: {captured.subject}", highlight=False, markup=False
        )
