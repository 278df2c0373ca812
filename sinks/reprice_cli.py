"""`meterline reprice`: price stored events again with the catalog as it is now."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from meterline.pricing.catalog import PriceCatalog
    from meterline.pricing.reprice import RepriceScope
    from meterline.settings import Settings
    from meterline.sinks.reprice import RepriceRun


def register(app: typer.Typer) -> None:
    app.command("reprice")(reprice)


def reprice(
    ctx: typer.Context,
    since: Annotated[
        str, typer.Option("--since", help="First day (or ISO time, UTC unless it says) of occurred_at to re-price.")
    ],
    until: Annotated[
        Optional[str], typer.Option("--until", help="Re-price events before this day or time (default: no end).")
    ] = None,
    team: Annotated[Optional[str], typer.Option("--team", help="Only this team's events.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Only events of this model (as stored).")] = None,
    provider: Annotated[
        Optional[str], typer.Option("--provider", help="Only events of this provider (as stored).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would change; write nothing.")] = False,
    budgets: Annotated[
        bool,
        typer.Option(
            "--budgets/--no-budgets",
            help="Send the changes of current budget periods to the stream over Kafka, so budgets, "
            "BudgetGuard and alerts follow (default: on when meterline.toml has budgets).",
        ),
    ] = True,
) -> None:
    """Price stored events again with the catalog as it is now, and correct every table.

    Dated prices apply by each event's occurred_at, override files included; events that had
    no price and have one now get it. Prints events, old USD, new USD and the delta per team x
    model. Applied (without --dry-run), the re-priced rows replace the old ones in usage_events,
    usage_hourly and every view move by the delta (nothing counted twice), each row names its
    price_id and reprice_run_id, and reprice_runs records the run. Running it again changes
    nothing. With budgets configured, the cost changes of current budget periods go to the
    stream through Kafka (the usage topic), so spend_vs_budget, BudgetGuard and alerts agree;
    a threshold a correction crosses alerts once. While a `meterline worker` holds the
    embedded database, the run goes through the worker's /reprice endpoint, which wants
    METERLINE_STREAM__WEB_TOKEN (the worker's stream.web_token) and reads the price files the
    worker's settings name.
    """
    from rich.console import Console

    from meterline.cli_support import fail, settings_from
    from meterline.errors import MeterlineError
    from meterline.pricing.cli import catalog_from, parse_moment
    from meterline.pricing.reprice import RepriceScope

    scope = RepriceScope(
        since=parse_moment(since, "--since"),
        until=None if until is None else parse_moment(until, "--until"),
        team=team,
        model=model,
        provider=provider,
    )
    if scope.until is not None and scope.until <= scope.since:
        raise fail(f"--until {until} is not after --since {since}: give a later --until", code=2)
    settings = settings_from(ctx)
    catalog = catalog_from(ctx)
    try:
        run = _run(settings, catalog, scope, apply=not dry_run, budgets=budgets)
    except MeterlineError as exc:
        raise fail(str(exc)) from exc
    print_run(Console(), run)


def _run(settings: Settings, catalog: PriceCatalog, scope: RepriceScope, *, apply: bool, budgets: bool) -> RepriceRun:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from meterline.settings import is_embedded_dsn
    from meterline.sinks.cli import open_or_fail
    from meterline.sinks.reprice import count_in_scope
    from meterline.sinks.reprice_service import execute_reprice
    from meterline.sinks.routing import embedded_path, embedded_path_is_held, reprice_via_worker

    dsn = settings.effective_clickhouse_dsn
    if is_embedded_dsn(dsn) and embedded_path_is_held(embedded_path(dsn)):
        from rich.console import Console

        with Console(stderr=True).status("the worker holds the database: re-pricing through its /reprice endpoint"):
            return reprice_via_worker(settings, scope, apply=apply, budgets=budgets)
    client = open_or_fail(dsn)
    try:
        total = count_in_scope(client, scope)
        with Progress(
            TextColumn("re-pricing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
        ) as progress:
            task = progress.add_task("events", total=total)
            return execute_reprice(
                settings,
                client,
                catalog,
                scope,
                apply=apply,
                budgets=budgets,
                on_progress=lambda done: progress.advance(task, done),
            )
    finally:
        client.close()


def print_run(console: Console, run: RepriceRun) -> None:
    """The team x model table of a run, its totals, and what was written."""
    from rich.table import Table

    from meterline.pricing.cli import decimal_text

    table = Table(
        "team", "model", "events", "changed", "old USD", "new USD", "delta USD", title=f"reprice {run.scope.describe()}"
    )
    for team, model, group in run.tally.lines():
        table.add_row(
            team,
            model,
            f"{group.events:,}",
            f"{group.changed:,}",
            decimal_text(group.old_cost_usd),
            decimal_text(group.new_cost_usd),
            decimal_text(group.delta_usd),
        )
    total = run.tally.total()
    table.add_row(
        "total",
        "",
        f"{total.events:,}",
        f"{total.changed:,}",
        decimal_text(total.old_cost_usd),
        decimal_text(total.new_cost_usd),
        decimal_text(total.delta_usd),
        style="bold",
    )
    console.print(table)
    console.print(
        f"{run.tally.newly_priced:,} events got their first price, {run.tally.newly_unpriced:,} lost theirs",
        highlight=False,
        soft_wrap=True,
    )
    if run.corrections_sent:
        console.print(
            f"{run.corrections_sent:,} budget corrections sent to the stream for current periods",
            highlight=False,
            soft_wrap=True,
        )
    if not run.applied:
        console.print("dry run: nothing written (run without --dry-run to apply)", highlight=False, soft_wrap=True)
    elif total.changed == 0:
        console.print(
            f"run {run.run_id}: every event already had this price; nothing changed", highlight=False, soft_wrap=True
        )
    else:
        console.print(
            f"run {run.run_id} applied: {total.changed:,} events re-priced (catalog {run.catalog_fingerprint[:12]}); "
            "see reprice_runs",
            highlight=False,
            soft_wrap=True,
        )
