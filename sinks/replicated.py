"""The migrations' DDL for a ClickHouse cluster: Replicated engines, ON CLUSTER (pure: no I/O).

The shipped migrations are written for one engine (embedded chDB or a single server): plain
MergeTree engines and `non_replicated_deduplication_window`. With `sink.clickhouse_cluster`
set, each statement is rewritten before it runs:

- every CREATE TABLE / VIEW / MATERIALIZED VIEW and ALTER TABLE runs `ON CLUSTER '<name>'`;
- `XMergeTree(args)` becomes `ReplicatedXMergeTree('/clickhouse/tables/{shard}/{database}/{table}',
  '{replica}', args)`: one replica of each table per server, its path from the server's macros;
- `non_replicated_deduplication_window` becomes `replicated_deduplication_window` (insert
  deduplication by token, which the sink relies on, is kept in Keeper for replicated tables).

One shard, N replicas: every server holds all rows. Sharding would need Distributed tables and
a sharding key that keeps an event's duplicates on one shard; it is not shipped.
"""

from __future__ import annotations

import re

from meterline.sinks.errors import MigrationError

ZOOKEEPER_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
"""Where each table's replicas meet in Keeper (ClickHouse expands the macros per server)."""
REPLICA_NAME = "{replica}"
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_DDL_HEAD = re.compile(
    r"^(CREATE\s+(?:TABLE|VIEW|MATERIALIZED\s+VIEW)\s+IF\s+NOT\s+EXISTS\s+\w+|ALTER\s+TABLE\s+\w+"
    r"|DROP\s+VIEW\s+IF\s+EXISTS\s+\w+)(?=\s|$)",
    re.IGNORECASE,
)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(\w*)MergeTree\b(?:\(([^()]*)\))?")
_DEDUP_WINDOW = re.compile(r"\bnon_replicated_deduplication_window\b")


def check_cluster_name(name: str) -> str:
    """`name` if it can name a cluster of the server's `remote_servers`; else a MigrationError."""
    if not _CLUSTER_NAME.match(name):
        raise MigrationError(
            f"sink.clickhouse_cluster {name!r} is not a cluster name: use letters, digits, '_', '.' "
            "or '-', as in the server's <remote_servers> (SELECT DISTINCT cluster FROM system.clusters)"
        )
    return name


def on_cluster(statement: str, cluster: str) -> str:
    """`statement` (one of the shipped migrations') for the replicated tables of `cluster`."""
    check_cluster_name(cluster)
    head = _DDL_HEAD.match(statement)
    if head is None:
        raise MigrationError(
            f"cannot run on a cluster (not CREATE … IF NOT EXISTS, ALTER TABLE or DROP VIEW IF EXISTS): {statement[:80]!r}"
        )
    text = f"{head.group(1)} ON CLUSTER '{cluster}'{statement[head.end() :]}"
    if re.match(r"CREATE\s+TABLE", text, re.IGNORECASE):
        if _ENGINE.search(text) is None:
            raise MigrationError(f"only MergeTree-family tables can be replicated: {statement[:80]!r}")
        text = _ENGINE.sub(_replicated_engine, text, count=1)
    return _DEDUP_WINDOW.sub("replicated_deduplication_window", text)


def _replicated_engine(match: re.Match[str]) -> str:
    family, args = match.group(1), (match.group(2) or "").strip()
    if family.startswith("Replicated"):
        raise MigrationError(f"the migration already names a replicated engine: {match.group(0)!r}")
    params = [f"'{ZOOKEEPER_PATH}'", f"'{REPLICA_NAME}'"] + ([args] if args else [])
    return f"ENGINE = Replicated{family}MergeTree({', '.join(params)})"
