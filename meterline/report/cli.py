"""`meterline report`: the chargeback report of one month (registered on the main app)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from meterline.report.model import ChargebackReport
    from meterline.settings import Settings


def register(app: typer.Typer) -> None:
    """Add this component's commands to the main app."""
    app.command("report")(report)


def fetch_report(settings: Settings, period: str) -> ChargebackReport:
    """Read the report's figures where the database is (directly, or through the worker)."""
    from meterline.report.model import build_report
    from meterline.sinks.named_queries import DashboardFilter, month_start, previous_month
    from meterline.sinks.routing import run_named

    current = DashboardFilter.for_month(period)
    before = DashboardFilter.for_month(previous_month(month_start(period)).strftime("%Y-%m"))
    return build_report(
        period,
        before.start.strftime("%Y-%m"),
        run_named(settings, "chargeback", current),
        run_named(settings, "chargeback", before),
        run_named(settings, "month_budgets", current),
    )


def report(
    ctx: typer.Context,
    period: Annotated[str, typer.Option("--period", "-p", help="The month to report, as YYYY-MM (UTC), e.g. 2026-11.")],
    output: Annotated[
        str, typer.Option("--format", "-f", help="html (self-contained, with charts), csv (exact money) or md.")
    ] = "html",
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="File to write (default: print to stdout).")
    ] = None,
) -> None:
    """Chargeback/showback report of one month: per team x project x model, requests, tokens by
    type, spend and savings, against the team's monthly budgets and the month before.

    Totals are exact sums of ClickHouse's figures (Decimal, 1e-12 USD). Reads the database
    directly, or through the running worker while it holds the embedded database.
    """
    from meterline.cli_support import fail, settings_from
    from meterline.errors import MeterlineError
    from meterline.report.render import REPORT_FORMATS, render_csv, render_html, render_md

    if output not in REPORT_FORMATS:
        raise fail(f"unknown format {output!r}: use one of {', '.join(REPORT_FORMATS)}", 2)
    settings = settings_from(ctx)
    try:
        built = fetch_report(settings, period)
    except MeterlineError as exc:
        raise fail(str(exc)) from exc
    if output == "csv":
        text = render_csv(built)
    elif output == "md":
        text = render_md(built)
    else:
        from meterline.dashboard.page import static_bytes

        text = render_html(built, static_bytes("chart.umd.min.js").decode())
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc.strerror}; pick a writable --out path") from exc
    typer.echo(f"wrote {out} ({len(built.lines)} lines, {built.period})", err=True)
