"""Commands of meterline.stream (registered on the main `meterline` app).

Commands import what they use inside their bodies (say so here, once): `meterline --help` imports
every command module and stays fast without loading faust, aiohttp, pyarrow or clickhouse-connect.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer


class OnlyPart(str, Enum):
    stream = "stream"
    sink = "sink"
    alerts = "alerts"


def register(app: typer.Typer) -> None:
    """Add this component's commands to the main app."""

    @app.command()
    def worker(
        ctx: typer.Context,
        only: Annotated[
            Optional[OnlyPart],
            typer.Option(
                "--only",
                help="Run one part: stream (price and budget), sink (ClickHouse) or alerts (delivery). "
                "Default: all three; the sink and alerts in a child process that owns the embedded "
                "chDB database (stream.processes = 1: all in this process).",
                show_default=False,
            ),
        ] = None,
        log_level: Annotated[
            str, typer.Option("--log-level", help="meterline's log level (debug, info, warning).")
        ] = "info",
    ) -> None:
        """Run the worker: validate, de-duplicate, price and budget usage events, write them to
        ClickHouse and deliver alerts. Serves /healthz, /metrics and /sql on stream.web_host:web_port
        (loopback by default). Stop it with Ctrl-C or SIGTERM."""
        from meterline.cli_support import fail, settings_from
        from meterline.errors import MeterlineError

        settings = settings_from(ctx)
        from meterline.stream.worker import run_worker

        try:
            code = run_worker(settings, only.value if only else None, log_level=log_level)
        except MeterlineError as exc:
            raise fail(str(exc)) from exc
        except Exception as exc:
            if type(exc).__module__.startswith("kafka"):
                raise fail(
                    f"cannot reach Kafka at {settings.kafka_bootstrap} ({exc}); start it with "
                    "`meterline services up` or set METERLINE_KAFKA_BOOTSTRAP"
                ) from exc
            raise
        raise typer.Exit(code)
