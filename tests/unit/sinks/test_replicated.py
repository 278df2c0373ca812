"""The migrations' DDL for a ClickHouse cluster: Replicated engines ON CLUSTER (exact SQL)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from meterline.settings import Settings
from meterline.sinks.errors import MigrationError
from meterline.sinks.migrations import _CREATE_MIGRATIONS_TABLE, load_migrations, ttl_statement
from meterline.sinks.replicated import on_cluster

PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"


def statement(head: str) -> str:
    """The shipped migration statement that starts with `head`."""
    return next(s for m in load_migrations() for s in m.statements if s.startswith(head))


def test_the_migrations_table_is_replicated_on_the_cluster() -> None:
    assert on_cluster(_CREATE_MIGRATIONS_TABLE.strip(), "meterline") == (
        "CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER 'meterline'\n"
        "(\n"
        "    version UInt32,\n"
        "    name String,\n"
        "    checksum String,\n"
        "    applied_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')\n"
        ")\n"
        f"ENGINE = ReplicatedReplacingMergeTree({PATH}, applied_at)\n"
        "ORDER BY version"
    )


def test_usage_events_keeps_its_columns_and_key_on_a_replicated_engine_with_the_replicated_dedup_window() -> None:
    original = statement("CREATE TABLE IF NOT EXISTS usage_events")
    replicated = on_cluster(original, "meterline")
    columns = original[original.index("(") : original.index("ENGINE")]
    assert replicated == (
        "CREATE TABLE IF NOT EXISTS usage_events ON CLUSTER 'meterline'\n"
        f"{columns}"
        f"ENGINE = ReplicatedReplacingMergeTree({PATH}, ingested_at)\n"
        "PARTITION BY toYYYYMM(occurred_at)\n"
        "ORDER BY (team, toStartOfHour(occurred_at), event_id)\n"
        "SETTINGS replicated_deduplication_window = 10000"
    )


def test_an_engine_without_arguments_gets_only_the_path_and_the_replica() -> None:
    replicated = on_cluster(statement("CREATE TABLE IF NOT EXISTS usage_hourly"), "c1")
    assert replicated.endswith(
        f"ENGINE = ReplicatedSummingMergeTree({PATH})\n"
        "PARTITION BY toYYYYMM(hour)\n"
        "ORDER BY (team, project, provider, model, hour)\n"
        "SETTINGS replicated_deduplication_window = 10000"
    )
    assert "non_replicated" not in replicated


def test_views_and_alters_run_on_the_cluster() -> None:
    mv = on_cluster(statement("CREATE MATERIALIZED VIEW IF NOT EXISTS usage_hourly_mv"), "c1")
    assert (
        mv.splitlines()[0]
        == "CREATE MATERIALIZED VIEW IF NOT EXISTS usage_hourly_mv ON CLUSTER 'c1' TO usage_hourly AS"
    )
    view = on_cluster(statement("CREATE VIEW IF NOT EXISTS spend_per_team_day"), "c1")
    assert view.splitlines()[0] == "CREATE VIEW IF NOT EXISTS spend_per_team_day ON CLUSTER 'c1' AS"
    alter = on_cluster(statement("ALTER TABLE dlq_events"), "c1")
    assert alter == statement("ALTER TABLE dlq_events").replace(
        "ALTER TABLE dlq_events", "ALTER TABLE dlq_events ON CLUSTER 'c1'", 1
    )
    assert (
        on_cluster(ttl_statement(30), "c1")
        == "ALTER TABLE usage_events ON CLUSTER 'c1' MODIFY TTL toDateTime(occurred_at) + INTERVAL 30 DAY"
    )
    assert on_cluster(ttl_statement(None), "c1") == "ALTER TABLE usage_events ON CLUSTER 'c1' REMOVE TTL"


def test_every_shipped_statement_has_a_cluster_form_with_only_replicated_engines() -> None:
    for migration in load_migrations():
        for original in migration.statements:
            replicated = on_cluster(original, "meterline")
            assert " ON CLUSTER 'meterline'" in replicated.splitlines()[0], migration.label
            for line in replicated.splitlines():
                if "ENGINE" in line:
                    assert line.startswith("ENGINE = Replicated") and PATH in line, (migration.label, line)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("CREATE TABLE IF NOT EXISTS t\n(\n    x UInt8\n)\nENGINE = Memory", "only MergeTree-family"),
        (
            "CREATE TABLE IF NOT EXISTS t\n(\n    x UInt8\n)\nENGINE = ReplicatedMergeTree ORDER BY x",
            "already names a replicated",
        ),
        ("DROP TABLE usage_events", "cannot run on a cluster"),
        ("CREATE TABLE usage_events (x UInt8) ENGINE = MergeTree ORDER BY x", "cannot run on a cluster"),
    ],
)
def test_statements_that_cannot_be_replicated_are_refused(sql: str, message: str) -> None:
    with pytest.raises(MigrationError, match=message):
        on_cluster(sql, "c1")


def test_a_cluster_name_that_could_break_out_of_the_quotes_is_refused() -> None:
    with pytest.raises(MigrationError, match="not a cluster name"):
        on_cluster(statement("ALTER TABLE dlq_events"), "c1' SETTINGS x = 1 --")
    with pytest.raises(ValidationError):
        Settings(clickhouse_dsn="http://h:8123/db", sink={"clickhouse_cluster": "a'b"})


def test_the_cluster_setting_needs_a_server_and_defaults_to_none() -> None:
    assert Settings().sink.clickhouse_cluster is None
    with pytest.raises(ValidationError, match="needs a ClickHouse server"):
        Settings(sink={"clickhouse_cluster": "meterline"})
    assert (
        Settings(clickhouse_dsn="http://h:8123/db", sink={"clickhouse_cluster": "meterline"}).sink.clickhouse_cluster
        == "meterline"
    )
