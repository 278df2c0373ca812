"""Commands of meterline.sinks (registered on the main `meterline` app).

Commands import what they use inside their bodies (say so here, once): `meterline --help` imports
every command module and stays fast without loading faust, aiohttp, pyarrow or clickhouse-connect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

db_app = typer.Typer(help="The ClickHouse database: engine, version, tables.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this component's commands to the main app."""
    app.command("migrate")(migrate)
    app.command("sql")(sql)
    app.add_typer(db_app, name="db")


def migrate(ctx: typer.Context) -> None:
    """Create or upgrade the ClickHouse schema (idempotent: safe to run again).

    Uses METERLINE_CLICKHOUSE_DSN (default: the embedded database under the data folder).
    Stop a running `meterline worker` first when it holds the embedded database; the worker
    applies migrations itself at start.
    """
    from rich.console import Console

    from meterline.cli_support import fail, settings_from
    from meterline.sinks.client import redact_dsn
    from meterline.sinks.errors import SinkError
    from meterline.sinks.migrations import apply_migrations

    settings = settings_from(ctx)
    dsn = settings.effective_clickhouse_dsn
    client = open_or_fail(dsn)
    try:
        applied = apply_migrations(client, ttl_days=settings.sink.ttl_days, cluster=settings.sink.clickhouse_cluster)
    except SinkError as exc:
        raise fail(str(exc)) from exc
    finally:
        client.close()
    console = Console()
    if applied:
        for migration in applied:
            console.print(f"applied {migration.label}")
    else:
        console.print("schema is up to date")
    console.print(f"database: {redact_dsn(dsn)}", highlight=False)


def sql(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="One read-only statement: SELECT, WITH, SHOW TABLES, EXPLAIN.")],
    output: Annotated[str, typer.Option("--format", "-f", help="Output: table, csv or json.")] = "table",
) -> None:
    """Run read-only SQL on the cost database (checked, bounded) and print the rows.

    Works on a server DSN directly and on the embedded database; while a `meterline worker`
    holds the embedded database, the query goes through the worker's /sql web endpoint.
    Views to start from: spend_per_team_day, spend_per_team_month, spend_per_model,
    cost_per_1k_requests, cache_batch_savings, spend_vs_budget (see docs/queries.md).
    """
    import sys

    from meterline.cli_support import fail, settings_from
    from meterline.sinks.errors import SinkError
    from meterline.sinks.query import OUTPUT_FORMATS
    from meterline.sinks.routing import run_sql

    if output not in OUTPUT_FORMATS:
        raise fail(f"unknown --format {output!r}: use one of {', '.join(OUTPUT_FORMATS)}", code=2)
    settings = settings_from(ctx)
    try:
        _, body, _ = run_sql(settings, query, output)
    except SinkError as exc:
        raise fail(str(exc)) from exc
    sys.stdout.buffer.write(body)
    sys.stdout.flush()


@db_app.command("info")
def db_info(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the engine (embedded or server), its version, rows and disk use per table."""
    import orjson
    from rich.console import Console
    from rich.table import Table

    from meterline.cli_support import fail, settings_from
    from meterline.sinks.dbinfo import collect_db_info
    from meterline.sinks.errors import SinkError

    settings = settings_from(ctx)
    try:
        info = collect_db_info(settings)
    except SinkError as exc:
        raise fail(str(exc)) from exc
    console = Console()
    if as_json:
        console.print_json(orjson.dumps(info.as_dict()).decode())
        return
    console.print(f"engine: {info.engine}  version: {info.version}  via: {info.via}", highlight=False)
    console.print(f"database: {info.database}  ({info.dsn})", highlight=False)
    table = Table("table", "engine", "rows", "disk")
    for row in info.tables:
        table.add_row(row.name, row.engine, f"{row.rows:,}", _human_bytes(row.bytes_on_disk))
    console.print(table)
    console.print(f"total on disk: {_human_bytes(info.total_bytes)}", highlight=False)


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def open_or_fail(dsn: str) -> Client:
    from meterline.cli_support import fail
    from meterline.sinks.client import ClickHouseUnavailableError, open_client

    try:
        return open_client(dsn)
    except ClickHouseUnavailableError as exc:
        raise fail(str(exc)) from exc
