"""Migrations on the real embedded engine: from empty, re-applied, TTL from settings."""

from __future__ import annotations

from typing import Any

import pytest

from meterline.sinks.errors import MigrationError
from meterline.sinks.migrations import MIGRATIONS_TABLE, apply_migrations, load_migrations

pytestmark = pytest.mark.integration

TABLES = {
    "usage_events",
    "usage_hourly",
    "budget_snapshots",
    "dlq_events",
    "unpriced_events",
    "alert_deliveries",
    "sink_batches",
    "reprice_runs",
    "reconciliations",
    MIGRATIONS_TABLE,
}
VIEWS = {
    "usage_hourly_mv",
    "spend_per_team_day",
    "spend_per_team_month",
    "spend_per_model",
    "cost_per_1k_requests",
    "cache_batch_savings",
    "spend_vs_budget",
}


def _tables(client) -> set[str]:
    return {
        row[0] for row in client.query("SELECT name FROM system.tables WHERE database = currentDatabase()").result_rows
    }


def test_from_empty_then_reapplied_is_a_no_op(chdb_client) -> None:
    first = apply_migrations(chdb_client)
    assert [m.version for m in first] == [m.version for m in load_migrations()]
    assert _tables(chdb_client) == TABLES | VIEWS
    assert apply_migrations(chdb_client) == []
    recorded = chdb_client.query(f"SELECT version, name FROM {MIGRATIONS_TABLE} FINAL ORDER BY version").result_rows
    assert recorded == [(m.version, m.label) for m in load_migrations()]


def test_alert_deliveries_has_exactly_the_agreed_columns(chdb_client) -> None:
    apply_migrations(chdb_client)
    columns = chdb_client.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'alert_deliveries' ORDER BY position"
    ).result_rows
    assert columns == [
        ("alert_id", "String"),
        ("channel", "LowCardinality(String)"),
        ("target", "String"),
        ("status", "LowCardinality(String)"),
        ("attempts", "UInt32"),
        ("reason", "String"),
        ("external_id", "String"),
        ("team", "String"),
        ("budget", "String"),
        ("kind", "LowCardinality(String)"),
        ("period", "String"),
        ("recorded_at", "DateTime64(3, 'UTC')"),
    ]
    engine = chdb_client.query(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'alert_deliveries'"
    ).result_rows[0][0]
    assert engine.startswith("ReplacingMergeTree(recorded_at) ORDER BY (alert_id, channel, target)")


def test_ttl_follows_the_setting_each_time(chdb_client) -> None:
    apply_migrations(chdb_client, ttl_days=30)
    assert "toIntervalDay(30)" in chdb_client.command("SHOW CREATE TABLE usage_events")
    apply_migrations(chdb_client, ttl_days=7)
    assert "toIntervalDay(7)" in chdb_client.command("SHOW CREATE TABLE usage_events")
    apply_migrations(chdb_client)
    assert "TTL" not in chdb_client.command("SHOW CREATE TABLE usage_events")


def test_an_edited_applied_migration_is_refused(chdb_client) -> None:
    apply_migrations(chdb_client)
    chdb_client.insert(
        MIGRATIONS_TABLE,
        [[1, "0001_usage_events", "0000000000000000"]],
        column_names=["version", "name", "checksum"],
        settings={"async_insert": 0},
    )
    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(chdb_client)


def test_the_cluster_form_of_every_statement_parses_in_the_real_engine(chdb_client: Any) -> None:
    """The embedded engine has no cluster to run them on; its own parser (formatQuery) still
    checks each Replicated … ON CLUSTER statement is valid ClickHouse SQL."""
    from meterline.sinks.migrations import _CREATE_MIGRATIONS_TABLE
    from meterline.sinks.replicated import on_cluster

    statements = [_CREATE_MIGRATIONS_TABLE.strip()] + [s for m in load_migrations() for s in m.statements]
    for original in statements:
        replicated = on_cluster(original, "meterline")
        formatted = chdb_client.query("SELECT formatQuery({sql:String})", parameters={"sql": replicated}).result_rows[
            0
        ][0]
        assert "ON CLUSTER meterline" in formatted, formatted
        if " ENGINE" in original:
            assert "ENGINE = Replicated" in formatted, formatted
