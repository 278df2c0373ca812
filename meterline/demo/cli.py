"""`meterline demo` and `meterline demo stop`.

Commands import what they use inside their bodies (say so here, once): `meterline --help` imports
every command module and stays fast without loading faust, aiohttp, pyarrow or clickhouse-connect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDirOption = Annotated[
    Path, typer.Option("--data-dir", help="Folder for the demo's config, ClickHouse, mail and logs.")
]

demo_app = typer.Typer(
    help=(
        "Run the whole pipeline on this machine: local Kafka, the worker on the embedded ClickHouse, "
        "a local SMTP capture, about a minute of seeded traffic with a live display, then a cost "
        "report read from ClickHouse by SQL. Kafka comes from METERLINE_KAFKA_BOOTSTRAP / "
        "kafka_bootstrap (a running broker is reused; on loopback one is started if none answers)."
    ),
    invoke_without_command=True,
)


@demo_app.callback()
def demo(
    ctx: typer.Context,
    duration: Annotated[float, typer.Option(help="Seconds of traffic.", min=1)] = 60.0,
    rate: Annotated[float, typer.Option(help="Events per second.", min=1)] = 200.0,
    teams: Annotated[
        int, typer.Option(help="Teams (team-01 …), each with a daily and a monthly budget.", min=1, max=99)
    ] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the traffic generator.")] = 1,
    keep: Annotated[bool, typer.Option("--keep", help="Leave Kafka, the worker and the mail capture running.")] = False,
    data_dir: DataDirOption = Path(".meterline-demo"),
) -> None:
    """Run the demo (see `meterline demo --help`); `meterline demo stop` ends a --keep demo."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console

    from meterline.cli_support import fail, settings_from
    from meterline.demo.run import Demo, DemoOptions
    from meterline.errors import MeterlineError

    settings = settings_from(ctx)
    options = DemoOptions(duration=duration, rate=rate, teams=teams, seed=seed, keep=keep, data_dir=data_dir)
    try:
        code = Demo(settings, options, Console()).run()
    except MeterlineError as exc:
        raise fail(str(exc)) from exc
    raise typer.Exit(code)


@demo_app.command("stop")
def stop(data_dir: DataDirOption = Path(".meterline-demo")) -> None:
    """Stop the worker, the mail capture and the broker a `--keep` demo left running."""
    from rich.console import Console

    from meterline.cli_support import fail
    from meterline.demo.run import stop_demo

    if not stop_demo(data_dir, Console()):
        raise fail(f"no demo state in {data_dir.resolve()}; give the --data-dir the demo ran with")


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")
