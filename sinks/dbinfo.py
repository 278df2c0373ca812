"""`meterline db info`: engine, version, rows and disk use per table (read-only queries)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson

from meterline.settings import Settings, is_embedded_dsn
from meterline.sinks.client import redact_dsn
from meterline.sinks.routing import run_sql

_TABLES_SQL = (
    "SELECT name, engine, ifNull(total_rows, 0) AS rows, ifNull(total_bytes, 0) AS bytes "
    "FROM system.tables WHERE database = currentDatabase() ORDER BY name"
)


@dataclass(frozen=True)
class TableInfo:
    name: str
    engine: str
    rows: int
    bytes_on_disk: int


@dataclass(frozen=True)
class DbInfo:
    engine: str
    """`embedded (chDB)` or `server`."""
    version: str
    database: str
    dsn: str
    via: str
    """`direct`, or `worker` when the query went through the worker's /sql endpoint."""
    tables: list[TableInfo]

    @property
    def total_bytes(self) -> int:
        return sum(t.bytes_on_disk for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_bytes": self.total_bytes}


def _rows(settings: Settings, sql: str) -> tuple[list[dict[str, Any]], str]:
    _, body, via = run_sql(settings, sql, "json")
    return orjson.loads(body)["rows"], via


def collect_db_info(settings: Settings) -> DbInfo:
    """Ask the database (directly, or through the worker holding it) about itself."""
    dsn = settings.effective_clickhouse_dsn
    (head,), via = _rows(settings, "SELECT version() AS version, currentDatabase() AS database")
    tables, _ = _rows(settings, _TABLES_SQL)
    return DbInfo(
        engine="embedded (chDB)" if is_embedded_dsn(dsn) else "server",
        version=str(head["version"]),
        database=str(head["database"]),
        dsn=redact_dsn(dsn),
        via=via,
        tables=[TableInfo(t["name"], t["engine"], int(t["rows"]), int(t["bytes"])) for t in tables],
    )
