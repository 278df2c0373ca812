"""The `meterline` command line. Settings are built here, once, and passed down.

Commands import what they use inside their bodies (say so here, once): `meterline --help` imports
every command module and stays fast without loading faust, aiohttp, pyarrow or clickhouse-connect.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from meterline import __version__
from meterline.cli_support import console, print_error
from meterline.errors import MeterlineError

app = typer.Typer(
    name="meterline",
    help=(
        "Meter LLM token usage: applications emit usage events to Kafka, the worker prices "
        "them and tracks team budgets, ClickHouse answers cost questions in SQL, and Slack "
        "or email hear when a budget is crossed.\n\n"
        "Settings come from METERLINE_* environment variables and meterline.toml "
        "(--config or METERLINE_CONFIG)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _main(
    ctx: typer.Context,
    config: Annotated[
        Optional[Path],
        typer.Option(
            "--config",
            "-c",
            envvar="METERLINE_CONFIG",
            help="meterline.toml to read (default: ./meterline.toml when present).",
            show_default=False,
        ),
    ] = None,
) -> None:
    ctx.obj = {"config": config}


@app.command()
def version() -> None:
    """Print meterline's version."""
    console.print(f"meterline {__version__}")


def _register_components() -> None:
    from meterline import core_cli
    from meterline.alerts import cli as alerts_cli
    from meterline.demo import cli as demo_cli
    from meterline.pricing import cli as pricing_cli
    from meterline.producers import cli as producers_cli
    from meterline.report import cli as report_cli
    from meterline.sinks import cli as sinks_cli
    from meterline.sinks import reconcile_cli, reprice_cli
    from meterline.stream import cli as stream_cli

    for module in (
        core_cli,
        producers_cli,
        stream_cli,
        sinks_cli,
        reprice_cli,
        reconcile_cli,
        alerts_cli,
        pricing_cli,
        report_cli,
        demo_cli,
    ):
        module.register(app)


_register_components()


def main() -> None:
    try:
        app()
    except MeterlineError as exc:
        print_error(str(exc))
        sys.exit(1)


if __name__ == "__main__":
    main()
