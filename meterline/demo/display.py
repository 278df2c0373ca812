"""The live display while traffic flows: events, rate, spend and % of each budget, alerts so far."""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from meterline.demo.queries import Row, count, money

CONSOLE_ALERT_RE = re.compile(r"^=== (.+) ===$")
RATE_WINDOW_S = 3.0
LATEST_ALERT_LINES = 6


class ConsoleAlertTail:
    """Follow the worker's log and keep the console channel's alert lines (`=== subject ===`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.lines: list[str] = []

    def poll(self) -> list[str]:
        """Read what the worker wrote since the last call; return every alert line so far."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except OSError:
            return self.lines
        self.offset += len(chunk)
        data = self.partial + chunk
        *complete, self.partial = data.split(b"\n")
        for raw in complete:
            match = CONSOLE_ALERT_RE.match(raw.decode("utf-8", "replace").rstrip("\r"))
            if match:
                self.lines.append(match.group(1))
        return self.lines


@dataclass
class LiveState:
    """What the display shows; the sender and the SQL poller update it, rich renders it."""

    duration: float
    rate: float
    began: float = field(default_factory=time.monotonic)
    sent: int = 0
    distinct: int = 0
    spooled: int = 0
    stored: int = 0
    budgets: list[Row] = field(default_factory=list)
    deliveries: list[Row] = field(default_factory=list)
    emails: int = 0
    console_alerts: list[str] = field(default_factory=list)
    phase: str = "sending traffic"
    last_error: str | None = None
    _samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))

    def record_sent(self, sent: int, distinct: int) -> None:
        self.sent, self.distinct = sent, distinct
        now = time.monotonic()
        self._samples.append((now, sent))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()

    def events_per_second(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def _percent_cell(percent: Decimal, hard_limit: bool) -> Text:
    width = 10
    filled = min(width, int(percent / 100 * width))
    style = "green" if percent < 50 else "yellow" if percent < 80 else "dark_orange" if percent < 100 else "bold red"
    bar = Text("█" * filled + "·" * (width - filled), style=style)
    bar.append(f" {percent:5.1f}%", style=style)
    if hard_limit and percent >= 100:
        bar.append(" HARD", style="bold white on red")
    return bar


def latest_per_budget(rows: list[Row]) -> dict[tuple[str, str], Row]:
    """The current period's row of each (team, budget); rows come ordered by period_start."""
    latest: dict[tuple[str, str], Row] = {}
    for row in rows:
        latest[(row["team"], row["budget"])] = row
    return latest


def budget_table(rows: list[Row]) -> Table:
    latest = latest_per_budget(rows)
    table = Table(title="spend per team vs budgets (from ClickHouse)", title_justify="left", expand=False)
    table.add_column("team")
    table.add_column("budget")
    table.add_column("spend USD", justify="right")
    table.add_column("limit USD", justify="right")
    table.add_column("% of budget")
    for (team, budget), row in sorted(latest.items()):
        hard = bool(row["hard_limit"])
        table.add_row(
            team,
            budget + (" (hard)" if hard else ""),
            f"{money(row['spend_usd']):,.4f}",
            f"{money(row['limit_usd']):,.2f}",
            _percent_cell(money(row["percent"]), hard),
        )
    return table


def render(state: LiveState) -> RenderableType:
    elapsed = time.monotonic() - state.began
    head = Text()
    head.append(f"{state.phase}  ", style="bold")
    head.append(f"{min(elapsed, state.duration):4.0f} s / {state.duration:.0f} s   ")
    head.append(f"events sent {state.sent:,} ({state.distinct:,} distinct)   ")
    head.append(f"{state.events_per_second():,.0f} events/s (target {state.rate:,.0f})   ")
    head.append(f"stored in ClickHouse {state.stored:,}")
    if state.spooled:
        head.append(f"   spooled {state.spooled:,}", style="yellow")
    delivered = ", ".join(f"{row['channel']} {count(row['sent'])}" for row in state.deliveries) or "none yet"
    alerts = Text(f"alerts delivered: {delivered}   emails captured: {state.emails}")
    parts: list[RenderableType] = [head, budget_table(state.budgets), alerts]
    if state.console_alerts:
        lines = Text("latest console alerts:\n", style="bold")
        for line in state.console_alerts[-LATEST_ALERT_LINES:]:
            lines.append(f"  {line}\n", style="magenta")
        parts.append(lines)
    if state.last_error:
        parts.append(Text(f"(reading ClickHouse: {state.last_error})", style="dim"))
    return Panel(Group(*parts), title="meterline demo", border_style="cyan")
