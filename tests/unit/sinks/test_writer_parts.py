"""The pure parts of the sink's writer: Arrow columns from planned rows, SQL literals."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa

from meterline.sinks.insert_plan import InsertBatch
from meterline.sinks.rows import BUDGET_SNAPSHOT_COLUMNS, BUDGET_SNAPSHOTS
from meterline.sinks.writer import _sql_literal, arrow_table


def _snapshot(team: str, spend: str) -> list[object]:
    at = datetime(2026, 11, 28, 12, tzinfo=UTC)
    return [team, "daily", "day", at, at, Decimal(spend), Decimal("100"), Decimal("1.5"), True, False, 0, at]


def test_rows_become_typed_columns_in_order() -> None:
    rows = [_snapshot("ml", "1.000000000001"), _snapshot("search", "2")]
    table = arrow_table(InsertBatch(BUDGET_SNAPSHOTS, BUDGET_SNAPSHOT_COLUMNS, rows, "t"))
    assert table.column_names == list(BUDGET_SNAPSHOT_COLUMNS)
    assert table.schema.field("spend_usd").type == pa.decimal128(38, 12)
    assert table.schema.field("period_start").type == pa.timestamp("us", tz="UTC")
    assert table.column("spend_usd").to_pylist() == [Decimal("1.000000000001"), Decimal("2")]
    assert table.column("team").to_pylist() == ["ml", "search"]


def test_no_rows_give_empty_typed_columns() -> None:
    table = arrow_table(InsertBatch(BUDGET_SNAPSHOTS, BUDGET_SNAPSHOT_COLUMNS, [], "t"))
    assert table.num_rows == 0
    assert table.schema.field("spend_usd").type == pa.decimal128(38, 12)


def test_sql_literals_quote_strings_and_keep_numbers() -> None:
    assert _sql_literal(1) == "1"
    assert _sql_literal(True) == "1"
    assert _sql_literal("meterline.usage.priced:0:10-20") == "'meterline.usage.priced:0:10-20'"
    assert _sql_literal("it's a \\ path") == "'it\\'s a \\\\ path'"
