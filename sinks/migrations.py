"""Versioned, idempotent schema migrations, recorded in `schema_migrations`.

Migrations are the `migrations/NNNN_name.sql` files shipped with this package, applied in
version order. Every statement is idempotent (`IF NOT EXISTS`), so two processes racing to
migrate, or a crash half-way through a file, only ever re-run harmless statements. A file
that changed after it was applied is refused: add a new migration instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from meterline.sinks.errors import MigrationError
from meterline.sinks.replicated import on_cluster

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

MIGRATIONS_TABLE = "schema_migrations"
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_MIGRATIONS_TABLE = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
"""

# Every DDL runs synchronously and without insert buffering: the schema must exist when
# apply_migrations returns (async_insert is on by default in ClickHouse 26.x).
_DDL_SETTINGS = {"async_insert": 0}


@dataclass(frozen=True)
class Migration:
    """One migration file: its version, name, statements and checksum."""

    version: int
    name: str
    statements: tuple[str, ...]
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def split_statements(sql: str) -> tuple[str, ...]:
    """Split a migration file into statements at `;` ending a line; drop `--` comment lines."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    statements = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
    return tuple(s.strip() for s in statements if s.strip())


def parse_migration(filename: str, sql: str) -> Migration:
    """A Migration from a file name such as `0002_usage_hourly.sql` and its text."""
    match = _FILE_RE.match(filename)
    if match is None:
        raise MigrationError(f"migration file {filename!r} must be named NNNN_lower_snake.sql")
    checksum = hashlib.sha256(sql.encode()).hexdigest()[:16]
    return Migration(int(match.group(1)), match.group(2), split_statements(sql), checksum)


def load_migrations() -> list[Migration]:
    """Every migration shipped in `meterline/sinks/migrations/`, in version order."""
    folder = resources.files("meterline.sinks") / "migrations"
    found = [
        parse_migration(entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return found


def ttl_statement(ttl_days: int | None) -> str:
    """The ALTER that makes usage_events' TTL match `settings.sink.ttl_days`."""
    if ttl_days is None:
        return "ALTER TABLE usage_events REMOVE TTL"
    return f"ALTER TABLE usage_events MODIFY TTL toDateTime(occurred_at) + INTERVAL {int(ttl_days)} DAY"


def applied_versions(client: Client) -> dict[int, str]:
    """Applied migration versions and their checksums."""
    result = client.query(f"SELECT version, argMax(checksum, applied_at) FROM {MIGRATIONS_TABLE} GROUP BY version")
    return {int(version): str(checksum) for version, checksum in result.result_rows}


def apply_migrations(client: Client, *, ttl_days: int | None = None, cluster: str | None = None) -> list[Migration]:
    """Apply the migrations not applied yet; return those applied now (empty when up to date).

    Also makes the TTL of usage_events match `ttl_days` (None removes it), every time. With
    `cluster` every statement runs ON CLUSTER it, on Replicated engines (sinks/replicated.py).
    """

    def ddl(statement: str) -> str:
        return statement if cluster is None else on_cluster(statement, cluster)

    client.command(ddl(_CREATE_MIGRATIONS_TABLE.strip()), settings=_DDL_SETTINGS)
    done = applied_versions(client)
    applied: list[Migration] = []
    for migration in load_migrations():
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.label} changed after it was applied "
                    f"(checksum {done[migration.version]} -> {migration.checksum}); "
                    "restore the file and add a new migration for the change"
                )
            continue
        for statement in migration.statements:
            try:
                client.command(ddl(statement), settings=_DDL_SETTINGS)
            except Exception as exc:
                raise MigrationError(
                    f"migration {migration.label} failed: {str(exc).splitlines()[0]}; "
                    "fix the cause and run `meterline migrate` again (applied statements are idempotent)"
                ) from exc
        client.insert(
            MIGRATIONS_TABLE,
            [[migration.version, migration.label, migration.checksum]],
            column_names=["version", "name", "checksum"],
            settings={"async_insert": 0},
        )
        applied.append(migration)
    _apply_ttl(client, ttl_days, ddl)
    return applied


def _apply_ttl(client: Client, ttl_days: int | None, ddl: Callable[[str], str]) -> None:
    has_ttl = "TTL " in str(client.command("SHOW CREATE TABLE usage_events"))
    if ttl_days is None and not has_ttl:
        return
    # materialize_ttl_after_modify = 0: do not rewrite every part now; merges apply it.
    client.command(ddl(ttl_statement(ttl_days)), settings={**_DDL_SETTINGS, "materialize_ttl_after_modify": 0})
