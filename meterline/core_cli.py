"""Core commands: `services up|down|status|logs` (the local Kafka, one broker or a cluster) and `doctor`.

Commands import what they use inside their bodies (say so here, once): `meterline --help` imports
every command module and stays fast without loading faust, aiohttp, pyarrow or clickhouse-connect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from meterline.errors import MeterlineError, ServiceError
from meterline.services.kafka_cluster import LocalKafkaCluster
from meterline.services.kafka_local import BrokerStatus, LocalKafka, broker_version, java_version, maven_version
from meterline.settings import Settings

console = Console()
services_app = typer.Typer(
    help="Run a real Kafka on 127.0.0.1 without Docker: one broker, or a KRaft cluster of "
    "several (--brokers 3). Jars from Maven Central, cached.",
    no_args_is_help=True,
)


def local_cluster(settings: Settings, brokers: int | None = None, port: int | None = None) -> LocalKafkaCluster | None:
    """The local cluster under `<data_dir>/kafka-cluster`: the one formatted there (its own size
    and ports), else a new one of `brokers` nodes on port, port + 1, … (None for one broker)."""
    lk = settings.local_kafka
    folder = settings.data_dir / "kafka-cluster"
    cache = lk.cache_dir or settings.data_dir / "cache" / "kafka"
    existing = LocalKafkaCluster.existing(folder, cache, heap=lk.heap, kafka_version=lk.kafka_version)
    if existing is not None:
        if brokers is not None and brokers != len(existing.nodes):
            raise ServiceError(
                f"the cluster in {folder} has {len(existing.nodes)} nodes, not {brokers}; use "
                f"--brokers {len(existing.nodes)}, or stop it and delete {folder} to start afresh"
            )
        return existing
    brokers = brokers or lk.brokers
    if brokers <= 1:
        return None
    first = port or lk.port
    return LocalKafkaCluster(
        folder, cache, [first + i for i in range(brokers)], heap=lk.heap, kafka_version=lk.kafka_version
    )


PortOption = Annotated[
    Optional[int],
    typer.Option("--port", help="Broker port; a cluster's node N gets port + N - 1 (default: local_kafka.port, 9092)."),
]
BrokersOption = Annotated[
    Optional[int],
    typer.Option(
        "--brokers",
        min=1,
        max=9,
        help="Nodes: 1, or a KRaft cluster (3: replication 3, min ISR 2) (default: local_kafka.brokers, 1).",
    ),
]


def _cluster_env(cluster: LocalKafkaCluster) -> str:
    rf = cluster.replication
    return (
        f"METERLINE_KAFKA_BOOTSTRAP={cluster.bootstrap} METERLINE_TOPIC_REPLICATION_FACTOR={rf.factor} "
        f"METERLINE_TOPIC_MIN_INSYNC_REPLICAS={rf.min_insync}"
    )


@services_app.command("up")
def services_up(ctx: typer.Context, port: PortOption = None, brokers: BrokersOption = None) -> None:
    """Start the local Kafka broker, or cluster (resolving its jars with mvn the first time)."""
    from meterline.cli_support import fail, settings_from

    settings = settings_from(ctx)
    try:
        cluster = local_cluster(settings, brokers, port) if brokers != 1 else None
        if cluster is not None:
            with console.status(
                f"starting a {len(cluster.nodes)}-node Apache Kafka {cluster.kafka_version} cluster on {cluster.bootstrap} …"
            ):
                started = cluster.start()
        else:
            broker = LocalKafka.from_settings(settings, port)
            with console.status(f"starting Apache Kafka {broker.kafka_version} on {broker.bootstrap} …"):
                started = broker.start()
    except MeterlineError as exc:
        raise fail(str(exc)) from exc
    verb = "started" if started else "already running"
    if cluster is None:
        console.print(f"kafka {verb}: {broker.bootstrap} (pid {broker.status().pid}, data {broker.data_dir})")
    else:
        rf = cluster.replication
        console.print(
            f"kafka cluster {verb}: {len(cluster.nodes)} nodes, replication {rf.factor}, min ISR {rf.min_insync}"
        )
        for status in cluster.status():
            console.print(
                f"  node {status.node_id}: {status.bootstrap} (pid {status.pid}, log {status.log_file})",
                highlight=False,
                soft_wrap=True,
            )
        console.print(f"point the worker at it: {_cluster_env(cluster)}", highlight=False, soft_wrap=True)
    if started:
        console.print(f"stop it with: meterline services down{'' if port is None else f' --port {port}'}")


@services_app.command("down")
def services_down(ctx: typer.Context, port: PortOption = None) -> None:
    """Stop what `services up` started: the broker and every node of the cluster (by their pids)."""
    from meterline.cli_support import fail, settings_from

    settings = settings_from(ctx)
    stopped = []
    if LocalKafka.from_settings(settings, port).stop():
        stopped.append("kafka stopped")
    try:
        cluster = local_cluster(settings, None, port)
    except MeterlineError as exc:
        raise fail(str(exc)) from exc
    if cluster is not None:
        nodes = cluster.stop()
        if nodes:
            stopped.append(f"kafka cluster stopped (nodes {', '.join(map(str, nodes))})")
    console.print("; ".join(stopped) if stopped else "kafka was not running (nothing to stop)")


def _shown(settings: Settings, port: int | None) -> list[BrokerStatus]:
    """The single broker's status unless only a cluster is there, then every node's."""
    single = LocalKafka.from_settings(settings, port).status()
    cluster = local_cluster(settings, None, port)
    if cluster is None:
        return [single]
    nodes = cluster.status()
    if single.running or not any(node.running for node in nodes):
        return [single, *nodes] if single.running else nodes
    return nodes


@services_app.command("status")
def services_status(ctx: typer.Context, port: PortOption = None) -> None:
    """Say whether each local node runs and answers, and where its log is; exit 1 if one does not answer."""
    from meterline.cli_support import fail, settings_from

    try:
        shown = _shown(settings_from(ctx), port)
    except MeterlineError as exc:
        raise fail(str(exc)) from exc
    for status in shown:
        pid = f"pid {status.pid}" if status.pid else "not started by meterline"
        node = f"node {status.node_id} " if len(shown) > 1 else ""
        console.print(
            f"kafka {node}{status.bootstrap}: {status.detail} ({pid}; log {status.log_file})",
            highlight=False,
            soft_wrap=True,
        )
    if not all(status.answers for status in shown):
        raise typer.Exit(1)


@services_app.command("logs")
def services_logs(
    ctx: typer.Context,
    port: PortOption = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Last lines of each log to print.")] = 20,
) -> None:
    """Print where each local node logs (broker.log in its data folder) and its last lines."""
    from meterline.cli_support import fail, settings_from

    try:
        shown = _shown(settings_from(ctx), port)
    except MeterlineError as exc:
        raise fail(str(exc)) from exc
    for status in shown:
        console.print(f"== node {status.node_id}: {status.log_file}", highlight=False, soft_wrap=True)
        if lines and status.log_file is not None and status.log_file.exists():
            tail = status.log_file.read_text(errors="replace").splitlines()[-lines:]
            console.print("\n".join(tail), highlight=False, markup=False, soft_wrap=True)


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
        checks.append(
            Check(
                "kafka", True, f"{settings.kafka_bootstrap} answers, Kafka {broker_version(settings.kafka_bootstrap)}"
            )
        )
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
        console.print(
            Text.assemble(mark, f" {check.name:<10} {check.detail}"), highlight=False
        )  # the detail as text, not markup
    if any(check.required and not check.ok for check in checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(services_app, name="services")
    app.command("doctor")(doctor)
