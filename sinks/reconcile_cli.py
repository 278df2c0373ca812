"""`meterline reconcile`: compare stored usage with the provider's own usage and cost reports.

Commands import what they use inside their bodies: `meterline --help` stays fast (sinks/cli.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from meterline.reconcile.matching import LineResult, Reconciliation


def register(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile)


def reconcile(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(
            help="The provider's report files (JSON as the API returned it, or CSV): a usage report, "
            "a cost report, or one of each.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    provider: Annotated[
        Optional[str], typer.Option("--provider", help="openai or anthropic (default: read from the file).")
    ] = None,
    tolerance: Annotated[
        str, typer.Option("--tolerance", help="How far figures may differ: a percent (1%) or a fraction (0.01).")
    ] = "1%",
    min_usd: Annotated[
        str, typer.Option("--min-usd", help="A cost difference up to this many USD always agrees.")
    ] = "0.01",
    ignore_scope: Annotated[
        bool, typer.Option("--ignore-scope", help="Sum over projects/workspaces/API keys instead of matching them.")
    ] = False,
    show_matched: Annotated[bool, typer.Option("--show-matched", help="List the matched lines too.")] = False,
) -> None:
    """Reconcile meterline's stored usage with the provider's bill, per UTC day x model.

    Reads the OpenAI organization Usage API (completions) and Costs API, or the Anthropic
    Admin API usage report and cost report, as JSON or CSV. Where the report is grouped by
    project, workspace or API key, those ids are matched with the events' `project`. Prints
    what matched, what is missing on each side and what differs by more than the tolerance;
    stores every line in the ClickHouse table `reconciliations`. Exits 1 when anything is
    missing or over the tolerance.
    """
    import uuid

    from rich.console import Console

    from meterline.cli_support import fail, settings_from
    from meterline.errors import MeterlineError
    from meterline.reconcile.matching import Tolerance, merge_reports, without_scope
    from meterline.reconcile.matching import reconcile as match
    from meterline.reconcile.reports import PROVIDERS, read_report
    from meterline.sinks.cli import open_or_fail
    from meterline.sinks.migrations import apply_migrations
    from meterline.sinks.reconcile_store import our_lines, result_rows, store_reconciliation
    from meterline.sinks.routing import refuse_when_held

    if provider is not None and provider not in PROVIDERS:
        raise fail(f"--provider {provider!r}: use one of {', '.join(PROVIDERS)}", code=2)
    limits = Tolerance(
        relative=_fraction(tolerance, "--tolerance"), min_usd=_fraction(min_usd, "--min-usd", percent=False)
    )
    settings = settings_from(ctx)
    try:
        reports = [read_report(str(path), path.read_text(encoding="utf-8"), provider) for path in files]
        report = merge_reports(reports)
        if ignore_scope:
            report = without_scope(report)
        if not report.lines:
            raise fail(
                "the report holds no line with a model: group it by model (usage) or line item / description (cost)"
            )
        days = [key.day for key in report.lines]
        dsn = settings.effective_clickhouse_dsn
        refuse_when_held(dsn, "reconcile")
        client = open_or_fail(dsn)
        try:
            apply_migrations(client, ttl_days=settings.sink.ttl_days)
            ours = our_lines(client, report.provider, min(days), max(days), by_scope=bool(report.scope_kind))
            result = match(report, ours, limits)
            run_id = f"c{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
            store_reconciliation(
                client, result_rows(run_id, datetime.now(UTC), [str(f) for f in files], result, limits)
            )
        finally:
            client.close()
    except (MeterlineError, UnicodeDecodeError, OSError) as exc:
        raise fail(str(exc)) from exc
    console = Console()
    print_reconciliation(console, result, show_matched=show_matched)
    console.print(f"stored as run {run_id} in table reconciliations", highlight=False, soft_wrap=True)
    if result.has_gap:
        raise typer.Exit(1)


def _fraction(text: str, option: str, *, percent: bool = True) -> Decimal:
    from meterline.cli_support import fail

    raw = text.strip()
    scale = Decimal(1)
    if percent and raw.endswith("%"):
        raw, scale = raw[:-1], Decimal(100)
    try:
        value = Decimal(raw) / scale
    except InvalidOperation as exc:
        raise fail(f"{option} {text!r} is not a number: write 1% or 0.01", code=2) from exc
    if not value.is_finite() or value < 0:
        raise fail(f"{option} {text!r} must be a number of at least 0", code=2)
    return value


def print_reconciliation(console: Console, result: Reconciliation, *, show_matched: bool) -> None:
    """The lines that did not match (all with show_matched), then the counts per status."""
    from rich.table import Table

    table = Table(
        "day", "model", "scope", "status", "figure", "meterline", "provider", title=f"reconcile {result.provider}"
    )
    for line in result.lines:
        if line.status == "matched" and not show_matched:
            continue
        names = line.differing or _summary_figures(line)
        for index, name in enumerate(names):
            first = index == 0
            table.add_row(
                str(line.key.day) if first else "",
                line.key.model if first else "",
                line.key.scope if first else "",
                line.status if first else "",
                name,
                _text(getattr(line.ours, name)),
                _text(getattr(line.theirs, name)),
            )
    if table.row_count:
        console.print(table)
    counts = ", ".join(
        f"{result.count(status)} {status.replace('_', ' ')}"
        for status in ("matched", "over_tolerance", "missing_ours", "missing_provider")
    )
    console.print(f"{len(result.lines)} lines: {counts}", highlight=False, soft_wrap=True)
    if result.unattributed_cost_usd:
        console.print(
            f"{result.unattributed_cost_usd:f} USD of the provider's cost names no model (not compared)",
            highlight=False,
            soft_wrap=True,
        )


def _summary_figures(line: LineResult) -> tuple[str, ...]:
    """What a matched or missing line shows: its cost and output tokens (every figure is stored)."""
    side = line.theirs if line.status == "missing_ours" else line.ours
    return tuple(name for name in ("cost_usd", "output_tokens") if getattr(side, name) is not None) or ("input_tokens",)


def _text(value: int | Decimal | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return f"{value:,}"
