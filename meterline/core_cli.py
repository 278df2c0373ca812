"""Core commands: `services up|down|status` (the local Kafka) and `doctor`.

Commands import what they use inside their bodies (say so here, once): `meterline --help` imports
every command module and stays fast without loading faust, aiohttp, pyarrow or clickhouse-connect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from meterline.errors import MeterlineError
from meterline.services.kafka_local import LocalKafka, broker_version, java_version, maven_version
from meterline.settings import Settings

console = Console()
services_app = typer.Typer(
    help="Run a real single-node Kafka broker on 127.0.0.1 without Docker "
    "(jars from Maven Central, cached).",
    no_args_is_help=True,
)


def local_kafka(settings: Settings, port: int | None = None) -> LocalKafka:
    """The local broker the settings describe (data under `<data_dir>/kafka`)."""
    lk = settings.local_kafka
    return LocalKafka(
        data_dir=settings.data_dir / "kafka",
        cache_dir=lk.cache_dir or settings.data_dir / "cache" / "kafka",
        port=port or lk.port,
        controller_port=lk.controller_port,
        heap=lk.heap,
        kafka_version=lk.kafka_version,
    )


PortOption = Annotated[
    Optional[int], typer.Option("--port", help="Broker port (default: local_kafka.port, 9092).")
]


@services_app.command("up")
def services_up(ctx: typer.Context, port: PortOption = None) -> None:
    """Start the local Kafka broker (resolving its jars with mvn the first time)."""
    from meterline.cli_support import fail, settings_from

    broker = local_kafka(settings_from(ctx), port)
    try:
        with console.status(f"starting Apache Kafka {broker.kafka_version} on {broker.bootstrap} …"):
            started = broker.start()
    except MeterlineError as exc:
        raise fail(str(exc)) from exc
    verb = "started" if started else "already running"
    console.print(f"kafka {verb}: {broker.bootstrap} (pid {broker.status().pid}, data {broker.data_dir})")
    if not started:
        return
    console.print(f"stop it with: meterline services down{'' if port is None else f' --port {port}'}")


@services_app.command("down")
def services_down(ctx: typer.Context, port: PortOption = None) -> None:
    """Stop the broker `services up` started (only that process, by its pid)."""
    from meterline.cli_support import settings_from

    broker = local_kafka(settings_from(ctx), port)
    console.print("kafka stopped" if broker.stop() else "kafka was not running (nothing to stop)")


@services_app.command("status")
def services_status(ctx: typer.Context, port: PortOption = None) -> None:
    """Say whether the local broker runs and answers; exit 1 if it does not answer."""
    from meterline.cli_support import settings_from

    broker = local_kafka(settings_from(ctx), port)
    status = broker.status()
    pid = f"pid {status.pid}" if status.pid else "not started by meterline"
    console.print(f"kafka {status.bootstrap}: {status.detail} ({pid})")
    if not status.answers:
        raise typer.Exit(1)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _is_loopback(bootstrap: str) -> bool:
    hosts = {server.strip().rpartition(":")[0] for server in bootstrap.split(",")}
    return hosts <= {"127.0.0.1", "localhost", "::1", "[::1]"}


def run_checks(settings: Settings) -> list[Check]:
    """Check each configured part; pure of printing so tests can read the results."""
    checks: list[Check] = []
    try:
        checks.append(Check("kafka", True, f"{settings.kafka_bootstrap} answers, Kafka {broker_version(settings.kafka_bootstrap)}"))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a line
        checks.append(
            Check(
                "kafka",
                False,
                f"{settings.kafka_bootstrap} does not answer ({type(exc).__name__}: {exc}); "
                "start one with `meterline services up` or set METERLINE_KAFKA_BOOTSTRAP",
            )
        )
    from meterline.sinks.client import open_client, redact_dsn

    dsn = settings.effective_clickhouse_dsn
    kind = "embedded chDB" if settings.clickhouse_is_embedded else "server"
    from meterline.sinks.routing import embedded_path, embedded_path_is_held, query_via_worker

    try:
        if settings.clickhouse_is_embedded and embedded_path_is_held(embedded_path(dsn)):
            import orjson

            _, body = query_via_worker(settings, "SELECT version() AS version", "json")
            version = orjson.loads(body)["rows"][0]["version"]
            kind += " (held by the running worker, asked through its /sql)"
        else:
            client = open_client(dsn)
            try:
                version = client.server_version
                client.query("SELECT 1")
            finally:
                client.close()
        checks.append(Check("clickhouse", True, f"{kind} at {redact_dsn(dsn)}, ClickHouse {version}"))
    except Exception as exc:  # noqa: BLE001 - doctor reports any failure as a failed check, never a traceback
        checks.append(Check("clickhouse", False, f"{kind} at {redact_dsn(dsn)}: {exc}"))
    local_needed = _is_loopback(settings.kafka_bootstrap)
    java = java_version()
    checks.append(
        Check(
            "java",
            java is not None,
            java or "not found: install Java 17+ to run the local Kafka (apt-get install openjdk-17-jre-headless)",
            required=local_needed,
        )
    )
    mvn = maven_version()
    checks.append(
        Check(
            "maven",
            mvn is not None,
            mvn or "not found: install Maven to resolve the local Kafka (apt-get install maven)",
            required=local_needed,
        )
    )
    return checks


def doctor(ctx: typer.Context) -> None:
    """Check Kafka, ClickHouse, Java and Maven; one line each, exit 1 if a required part fails."""
    from meterline.cli_support import settings_from

    checks = run_checks(settings_from(ctx))
    for check in checks:
        mark = ("ok  ", "green") if check.ok else (("FAIL", "red") if check.required else ("warn", "yellow"))
        console.print(Text.assemble(mark, f" {check.name:<10} {check.detail}"), highlight=False)  # the detail as text, not markup
    if any(check.required and not check.ok for check in checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(services_app, name="services")
    app.command("doctor")(doctor)
