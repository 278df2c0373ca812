"""`meterline reconcile` against ClickHouse: meterline's side of each line, and the stored result."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from meterline.reconcile.reports import MEASURES, LineKey, Measures
from meterline.sinks.rows import USAGE_EVENTS, money

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from meterline.reconcile.matching import Reconciliation, Tolerance

RECONCILIATIONS = "reconciliations"
RECONCILIATION_COLUMNS: tuple[str, ...] = (
    "run_id",
    "reconciled_at",
    "provider",
    "source_files",
    "scope_kind",
    "day",
    "model",
    "scope",
    "status",
    "differing",
    "tolerance",
    *(f"our_{name}" for name in MEASURES),
    *(f"provider_{name}" for name in MEASURES),
)


def our_lines(
    client: Client, provider: str, first_day: date, last_day: date, *, by_scope: bool
) -> dict[LineKey, Measures]:
    """meterline's totals per UTC day x model (x project as the scope) for a provider's days.

    Cache hits are left out: the provider was never called for them."""
    scope = "ifNull(project, '')" if by_scope else "''"
    result = client.query(
        f"SELECT toDate(occurred_at, 'UTC') AS day, lower(model) AS model_key, {scope} AS scope_key, "
        "sum(toUInt64(input_tokens)), sum(toUInt64(cache_read_tokens)), sum(toUInt64(cache_write_tokens)), "
        "sum(toUInt64(output_tokens)), count(), sum(cost_usd) "
        f"FROM {USAGE_EVENTS} FINAL "
        "WHERE provider = {provider:String} AND toDate(occurred_at, 'UTC') BETWEEN {first:Date} AND {last:Date} "
        "AND NOT cache_hit "
        "GROUP BY day, model_key, scope_key",
        parameters={"provider": provider, "first": first_day, "last": last_day},
    )
    return {
        LineKey(row[0], str(row[1]), str(row[2])): Measures(
            input_tokens=int(row[3]),
            cache_read_tokens=int(row[4]),
            cache_write_tokens=int(row[5]),
            output_tokens=int(row[6]),
            requests=int(row[7]),
            cost_usd=row[8],
        )
        for row in result.result_rows
    }


def result_rows(
    run_id: str, at: datetime, files: list[str], reconciliation: Reconciliation, tolerance: Tolerance
) -> list[list[Any]]:
    """The reconciliations rows of one run, in RECONCILIATION_COLUMNS order (pure)."""

    def figures(measures: Measures) -> list[Any]:
        values = [getattr(measures, name) for name in MEASURES]
        values[-1] = None if values[-1] is None else money(values[-1])
        return values

    return [
        [
            run_id,
            at,
            reconciliation.provider,
            ",".join(files),
            reconciliation.scope_kind,
            line.key.day,
            line.key.model,
            line.key.scope,
            line.status,
            list(line.differing),
            money(tolerance.relative),
            *figures(line.ours),
            *figures(line.theirs),
        ]
        for line in reconciliation.lines
    ]


def store_reconciliation(client: Client, rows: list[list[Any]]) -> None:
    if rows:
        client.insert(RECONCILIATIONS, rows, column_names=list(RECONCILIATION_COLUMNS), settings={"async_insert": 0})
