"""The shipped migration files parse into ordered, idempotent statements."""

from __future__ import annotations

import pytest

from meterline.sinks.errors import MigrationError
from meterline.sinks.migrations import load_migrations, parse_migration, split_statements, ttl_statement


def test_split_statements_drops_comments_and_splits_at_line_ending_semicolons() -> None:
    sql = "-- a comment; not a statement\nCREATE TABLE a (x String COMMENT 'a;b') ENGINE = Log;\n\nCREATE VIEW v AS SELECT 1;\n"
    assert split_statements(sql) == (
        "CREATE TABLE a (x String COMMENT 'a;b') ENGINE = Log",
        "CREATE VIEW v AS SELECT 1",
    )


def test_shipped_migrations_are_ordered_and_every_statement_is_idempotent() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    for migration in migrations:
        assert migration.statements, migration.label
        for statement in migration.statements:
            # Each statement may run again (a migration that failed halfway is applied again).
            idempotent = ("IF NOT EXISTS", "MODIFY COLUMN IF EXISTS", "IF EXISTS")
            assert any(form in statement for form in idempotent), f"{migration.label}: {statement[:60]}"


def test_every_mergetree_table_written_with_tokens_has_a_dedup_window() -> None:
    statements = [s for m in load_migrations() for s in m.statements]
    for table in ("usage_events", "usage_hourly", "budget_snapshots", "dlq_events", "unpriced_events"):
        (create,) = [s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS {table}\n")]
        assert "non_replicated_deduplication_window" in create, table


def test_bad_file_name_is_refused_with_the_expected_pattern() -> None:
    with pytest.raises(MigrationError, match="NNNN_lower_snake.sql"):
        parse_migration("2_Add.sql", "SELECT 1")


def test_ttl_statement_sets_or_removes_the_ttl() -> None:
    assert ttl_statement(30) == "ALTER TABLE usage_events MODIFY TTL toDateTime(occurred_at) + INTERVAL 30 DAY"
    assert ttl_statement(None) == "ALTER TABLE usage_events REMOVE TTL"
