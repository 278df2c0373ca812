"""After a replay: write what a killed process's inserts recorded as written but left out.

ClickHouse's non-replicated MergeTree writes an insert's deduplication token to the table's
deduplication log before it commits the part the token names (MergeTreeSink::commitPart:
`deduplication_log->addPart`, then `renameTempPartAndAdd` and the transaction's commit). A process
killed between the two leaves the token without the rows; the replay, with the same token, is
then dropped as a duplicate and those rows are lost, in a raw table or in the rollup's target
table alike (tests/integration/sinks/test_replay_repair.py builds that state). Only the ranges a
sink replays can be in that state: the ranges recorded in sink_batches and not committed when
their partition came to this sink. After writing them again, the sink checks them here:

1. Every row they plan (the exact plan, `plan_inserts`) is looked up by its table's sorting key.
   A missing usage_events row is written to a staging copy of the table and attached from it
   (ATTACH PARTITION ... FROM): an attached part feeds no materialized view, and the view already
   has the row (a source block dropped as a duplicate still reaches the dependent views, each
   de-duplicated by its own token; the view runs after the source's part is committed). Other
   missing rows are inserted with a fresh token.
2. usage_hourly is compared, per (hour, team, project, provider, model) the ranges touched, with
   usage_events FINAL summed the way the view sums it; a shortfall is inserted as its own row
   (SummingMergeTree adds it). This needs the sink to be the only writer of those keys while it
   compares: true of the embedded engine (one process holds the database, and `ROLLUP_LOCK`
   keeps an in-process re-price out), so the runner checks only there. On a server,
   ReplicatedMergeTree commits the block id in Keeper with the part (one multi-op).

Both steps are idempotent: run again (after a kill during the repair), they find nothing to do.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from meterline.money import MONEY_FIELDS
from meterline.sinks.errors import TransientWriteError
from meterline.sinks.insert_plan import InsertBatch, RangeBatch, TopicKind, plan_inserts
from meterline.sinks.rows import BUDGET_SNAPSHOTS, DLQ_EVENTS, UNPRICED_EVENTS, USAGE_EVENTS, Row
from meterline.sinks.writer import write_batch

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

ROLLUP_LOCK = threading.Lock()
"""Held while the rollup is compared with usage_events, and by a re-price page's insert (which
moves both): between the two reads of a comparison, nothing in this process changes either."""

USAGE_HOURLY = "usage_hourly"
STAGING_TABLE = "usage_events_replay_repair"
LOOKUP_CHUNK = 5000
"""Keys per lookup query (a query's text stays well under a megabyte)."""

KEY_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    USAGE_EVENTS: (("event_id", "String"),),
    UNPRICED_EVENTS: (("event_id", "String"),),
    DLQ_EVENTS: (("topic", "String"), ("partition", "Int32"), ("offset", "Int64"), ("line_index", "UInt32")),
    BUDGET_SNAPSHOTS: (
        ("team", "String"),
        ("budget", "String"),
        ("period", "String"),
        ("updated_at", "DateTime64(6, 'UTC')"),
    ),
}
"""What names a row in each raw table (ReplacingMergeTree: the sorting key, or the part of it
that is unique). usage_events is sorted by (team, hour, event_id); event_id alone names it."""

ROLLUP_KEY = ("hour", "team", "project", "provider", "model")
ROLLUP_COUNTS: tuple[tuple[str, str], ...] = (
    ("requests", "count()"),
    ("error_requests", "countIf(status = 'error')"),
    ("cache_hits", "countIf(cache_hit)"),
    ("batch_requests", "countIf(batch)"),
    ("unpriced_requests", "countIf(NOT priced)"),
    ("late_requests", "countIf(late)"),
    ("input_tokens", "sum(toUInt64(input_tokens))"),
    ("output_tokens", "sum(toUInt64(output_tokens))"),
    ("cache_read_tokens", "sum(toUInt64(cache_read_tokens))"),
    ("cache_write_tokens", "sum(toUInt64(cache_write_tokens))"),
    ("reasoning_tokens", "sum(toUInt64(reasoning_tokens))"),
)
ROLLUP_MONEY = MONEY_FIELDS
"""usage_hourly's measures, and how usage_events FINAL gives each: the view's sums, with a
re-priced row (the one FINAL keeps) standing for the original plus its delta."""

RollupKey = tuple[Any, ...]
Measures = tuple[Any, ...]
Coordinates = tuple[str, int, int, int]
"""A Kafka record's (topic, partition, offset) and the line of it (sinks.insert_plan.record_lines)."""


@dataclass
class RepairReport:
    """What one check found missing and wrote again."""

    rows: dict[str, int] = field(default_factory=dict)
    rollup_rows: int = 0
    rollup_ahead: list[RollupKey] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rows or self.rollup_rows or self.rollup_ahead)


# -- pure ---------------------------------------------------------------------------------------
def normalized(value: Any) -> str:
    """A key value as text, the same for the planned row and the row read back."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="microseconds")
    return str(value)


def row_key(batch: InsertBatch, row: Row) -> tuple[str, ...]:
    """The key of a planned row of `batch`."""
    return tuple(normalized(row[batch.columns.index(name)]) for name, _ in KEY_COLUMNS[batch.table])


def absent_rows(
    batch: InsertBatch, present: set[tuple[str, ...]], token: str, dead_lettered: frozenset[Coordinates] = frozenset()
) -> InsertBatch | None:
    """The rows of `batch` whose key is not in `present`, as one insert with `token`; a row whose
    record ClickHouse refused for good (its dead letter's coordinates in `dead_lettered`) is not
    missing: it is stored where it belongs."""

    def refused(i: int) -> bool:
        if batch.sources is None:
            return False
        source = batch.sources[i]
        return (source.topic, source.partition, source.offset, source.line_index) in dead_lettered

    keep = [i for i, row in enumerate(batch.rows) if row_key(batch, row) not in present and not refused(i)]
    if not keep:
        return None
    sources = None if batch.sources is None else [batch.sources[i] for i in keep]
    return InsertBatch(batch.table, batch.columns, [batch.rows[i] for i in keep], token, sources)


def rollup_shortfall(
    raw: Mapping[RollupKey, Measures], rollup: Mapping[RollupKey, Measures]
) -> tuple[list[Row], list[RollupKey]]:
    """Rows that bring `rollup` up to `raw` (key + measures, usage_hourly's order), and the keys
    where the rollup holds more than the raw table (nothing written for those: a difference the
    check cannot explain is reported, never guessed at)."""
    rows: list[Row] = []
    ahead: list[RollupKey] = []
    width = len(ROLLUP_COUNTS) + len(ROLLUP_MONEY)
    for key in sorted(set(raw) | set(rollup), key=lambda k: tuple(map(str, k))):
        want = raw.get(key, (0,) * width)
        have = rollup.get(key, (0,) * width)
        diff = [w - h for w, h in zip(want, have, strict=True)]
        if not any(diff):
            continue
        if any(d < 0 for d in diff):
            ahead.append(key)
            continue
        rows.append([*key, *diff])
    return rows, ahead


def repair_token(batch_token: str) -> str:
    """A repair's own token: the rows it writes are missing now, so they must never be dropped as
    a duplicate of an earlier repair that was itself lost; a repair that landed is found by the
    next check, which then writes nothing."""
    return f"repair:{uuid.uuid4().hex}:{batch_token}"


# -- I/O ----------------------------------------------------------------------------------------
def repair_replayed(client: Client, kind: TopicKind, batches: Sequence[RangeBatch]) -> RepairReport:
    """Check the replayed `batches` of one topic kind; write what is missing (see the module)."""
    report = RepairReport()
    try:
        planned = [insert for batch in batches for insert in plan_inserts(kind, batch)]
        refused = _unwritable(client, batches)
        for insert in planned:
            token = repair_token(insert.dedup_token)
            missing = absent_rows(insert, _present_keys(client, insert), token, refused)
            if missing is None:
                continue
            if insert.table == USAGE_EVENTS:
                _attach_without_views(client, missing)
            else:
                write_batch(client, missing)
            report.rows[insert.table] = report.rows.get(insert.table, 0) + len(missing.rows)
        ids = [str(row[i.columns.index("event_id")]) for i in planned if i.table == USAGE_EVENTS for row in i.rows]
        if ids:
            _repair_rollup(client, ids, report)
    except TransientWriteError:
        raise
    except Exception as exc:
        raise TransientWriteError(None, f"checking a replayed range: {str(exc).splitlines()[0]}") from exc
    if report:
        log.warning(
            "a replayed range had rows its first write recorded but did not store (a process killed "
            "mid-insert); written again",
            extra={"rows": report.rows, "rollup_rows": report.rollup_rows},
        )
    if report.rollup_ahead:
        log.error(
            "usage_hourly holds more than usage_events for %d keys of a replayed range; left as it is",
            len(report.rollup_ahead),
            extra={"keys": [list(map(str, key)) for key in report.rollup_ahead[:10]]},
        )
    return report


def _present_keys(client: Client, batch: InsertBatch) -> set[tuple[str, ...]]:
    """The keys of `batch`'s rows that its table holds."""
    columns = KEY_COLUMNS[batch.table]
    names = ", ".join(f"`{name}`" for name, _ in columns)
    keys = sorted({row_key(batch, row) for row in batch.rows})
    found: set[tuple[str, ...]] = set()
    for start in range(0, len(keys), LOOKUP_CHUNK):
        part = keys[start : start + LOOKUP_CHUNK]
        # Each key column within the chunk's values: a superset of the chunk's keys, compared whole below.
        conditions = " AND ".join(f"`{name}` IN {{k{i}:Array({kind})}}" for i, (name, kind) in enumerate(columns))
        parameters = {
            f"k{i}": [_typed(v, kind) for v in sorted({key[i] for key in part})] for i, (_, kind) in enumerate(columns)
        }
        result = client.query(f"SELECT DISTINCT {names} FROM {batch.table} WHERE {conditions}", parameters=parameters)
        found.update(tuple(normalized(v) for v in row) for row in result.result_rows)
    return found


def _typed(text: str, kind: str) -> Any:
    """A normalized key value back as the query parameter of its column's type."""
    if kind.startswith("DateTime"):
        return datetime.fromisoformat(text)
    if kind.startswith(("Int", "UInt")):
        return int(text)
    return text


def _unwritable(client: Client, batches: Sequence[RangeBatch]) -> frozenset[Coordinates]:
    """The records of `batches` dead-lettered because ClickHouse refused their rows for good."""
    found: set[Coordinates] = set()
    for batch in batches:
        result = client.query(
            f"SELECT DISTINCT topic, `partition`, `offset`, line_index FROM {DLQ_EVENTS} WHERE error_kind = 'unwritable' "
            "AND topic = {topic:String} AND `partition` = {partition:Int32} "
            "AND `offset` BETWEEN {first:Int64} AND {last:Int64}",
            parameters={
                "topic": batch.range.topic,
                "partition": batch.range.partition,
                "first": batch.range.first,
                "last": batch.range.last,
            },
        )
        found.update((str(t), int(p), int(o), int(i)) for t, p, o, i in result.result_rows)
    return frozenset(found)


def _attach_without_views(client: Client, missing: InsertBatch) -> None:
    """Write usage_events rows without feeding usage_hourly_mv: through a staging copy of the
    table, whose parts are then attached (attaching runs no view). The copy is made anew each
    time: one left by a repair killed half-way may hold rows the next check no longer wants, or
    the table's shape from before a migration."""
    client.command(f"DROP TABLE IF EXISTS {STAGING_TABLE} SYNC", settings={"async_insert": 0})
    client.command(f"CREATE TABLE {STAGING_TABLE} AS {USAGE_EVENTS}", settings={"async_insert": 0})
    write_batch(client, InsertBatch(STAGING_TABLE, missing.columns, missing.rows, missing.dedup_token, missing.sources))
    partitions = client.query(
        "SELECT DISTINCT partition_id FROM system.parts WHERE database = currentDatabase() "
        "AND table = {table:String} AND active",
        parameters={"table": STAGING_TABLE},
    ).result_rows
    for (partition_id,) in partitions:
        client.command(
            f"ALTER TABLE {USAGE_EVENTS} ATTACH PARTITION ID {{pid:String}} FROM {STAGING_TABLE}",
            parameters={"pid": str(partition_id)},
            settings={"async_insert": 0},
        )
    client.command(f"DROP TABLE {STAGING_TABLE} SYNC", settings={"async_insert": 0})


def _repair_rollup(client: Client, event_ids: Iterable[str], report: RepairReport) -> None:
    ids = sorted(set(event_ids))
    with ROLLUP_LOCK:
        touched: set[tuple[Any, Any]] = set()
        for start in range(0, len(ids), LOOKUP_CHUNK):
            result = client.query(
                "SELECT DISTINCT team, toStartOfHour(occurred_at) FROM usage_events WHERE event_id IN {ids:Array(String)}",
                parameters={"ids": ids[start : start + LOOKUP_CHUNK]},
            )
            touched.update((team, hour) for team, hour in result.result_rows)
        if not touched:
            return
        raw: dict[RollupKey, Measures] = {}
        rollup: dict[RollupKey, Measures] = {}
        pairs = sorted(touched)
        for start in range(0, len(pairs), LOOKUP_CHUNK):
            chunk = pairs[start : start + LOOKUP_CHUNK]
            raw.update(_sums(client, _RAW_SUMS, chunk))
            rollup.update(_sums(client, _ROLLUP_SUMS, chunk))
        rows, ahead = rollup_shortfall(raw, rollup)
        report.rollup_ahead.extend(ahead)
        if rows:
            columns = (*ROLLUP_KEY, *(name for name, _ in ROLLUP_COUNTS), *ROLLUP_MONEY)
            client.insert(
                USAGE_HOURLY,
                rows,
                column_names=list(columns),
                settings={"async_insert": 0, "insert_deduplication_token": repair_token("rollup")},
            )
            report.rollup_rows += len(rows)


_KEY_SELECT = "hour, team, project, provider, model"
_RAW_SUMS = (
    "SELECT toStartOfHour(occurred_at) AS hour, team, ifNull(project, '') AS project, provider, model, "
    + ", ".join(expression for _, expression in ROLLUP_COUNTS)
    + ", "
    + ", ".join(f"sum({name})" for name in ROLLUP_MONEY)
    + " FROM usage_events FINAL WHERE (team, toStartOfHour(occurred_at)) IN {pairs:Array(Tuple(String, DateTime('UTC')))}"
    + f" GROUP BY {_KEY_SELECT}"
)
_ROLLUP_SUMS = (
    f"SELECT {_KEY_SELECT}, "
    + ", ".join(f"sum({name})" for name, _ in ROLLUP_COUNTS)
    + ", "
    + ", ".join(f"sum({name})" for name in ROLLUP_MONEY)
    + " FROM usage_hourly WHERE (team, hour) IN {pairs:Array(Tuple(String, DateTime('UTC')))}"
    + f" GROUP BY {_KEY_SELECT}"
)


def _sums(client: Client, sql: str, pairs: list[tuple[Any, Any]]) -> dict[RollupKey, Measures]:
    """Measures per rollup key, for the (team, hour) pairs given."""
    result = client.query(sql, parameters={"pairs": pairs})
    width = len(ROLLUP_KEY)
    return {
        tuple(_key_value(v) for v in row[:width]): tuple(_measure(v) for v in row[width:]) for row in result.result_rows
    }


def _key_value(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _measure(value: Any) -> int | Decimal:
    return value if isinstance(value, Decimal) else int(value)
