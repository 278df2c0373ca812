"""Read-only SQL for people: check the statement with ClickHouse's own parse, run it bounded.

1. One engine call parses the text (given as a bound parameter, so nothing can be injected
   around it): `formatQuerySingleLine` gives the canonical text of exactly one statement (a
   second statement, an unclosed comment or a syntax error fails here), `parseQueryToJSON` its
   syntax tree, and the same call says which tables the cost database holds.
2. `sql_guard.check_tree` refuses anything but a read of the cost database (pure, no engine).
3. The canonical text, the one whose tree was checked, runs with `readonly=1` and the limits
   of `QueryLimits` (time, memory, result rows and bytes), tagged so that it can be cancelled.

In embedded chDB `readonly=1` stops neither the scalar `file()` nor `INTO OUTFILE`, and its
`user_files_path` can be set but does not confine `file()` (an absolute path is read anyway,
measured on chDB 26.9): step 2 is what keeps the files out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, get_args

import orjson

from meterline.sinks.errors import QueryParameterError, ReadOnlyQueryError
from meterline.sinks.named_queries import NAMED_QUERIES
from meterline.sinks.sql_guard import CostDatabase, SqlRefusedError, check_tree, refuse_statement

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from meterline.settings import SqlSettings

OutputFormat = Literal["table", "csv", "json"]
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
CONTENT_TYPES = {"table": "text/plain; charset=utf-8", "csv": "text/csv; charset=utf-8", "json": "application/json"}
QUERY_TAG = "meterline-sql"
"""A comment ending every query /sql runs (`/* meterline-sql <id> */`): how a stop finds and kills it."""
_PARSE_SQL = (
    "SELECT formatQuerySingleLine({q:String}) AS canonical, parseQueryToJSON(canonical) AS tree, "
    "currentDatabase() AS db, (SELECT groupArray(name) FROM system.tables WHERE database = currentDatabase()) AS tables"
)


@dataclass(frozen=True)
class QueryLimits:
    """The bounds every /sql query runs under (see `SqlSettings` for the defaults)."""

    max_execution_time: float = 30.0
    max_memory_usage: int = 1 << 30
    max_result_rows: int = 100_000
    max_result_bytes: int = 64 << 20
    max_threads: int = 1
    max_query_bytes: int = 65_536

    def engine_settings(self) -> dict[str, Any]:
        return {
            "readonly": 1,
            "max_execution_time": self.max_execution_time,
            "timeout_overflow_mode": "throw",
            "max_memory_usage": self.max_memory_usage,
            "max_result_rows": self.max_result_rows,
            "max_result_bytes": self.max_result_bytes,
            "result_overflow_mode": "throw",
            "max_threads": self.max_threads,
        }


def limits_of(settings: SqlSettings | None) -> QueryLimits:
    if settings is None:
        return QueryLimits()
    return QueryLimits(
        max_execution_time=settings.max_execution_time,
        max_memory_usage=settings.max_memory_usage,
        max_result_rows=settings.max_result_rows,
        max_result_bytes=settings.max_result_bytes,
        max_threads=settings.max_threads,
        max_query_bytes=settings.max_query_bytes,
    )


def prepare_query(client: Client, sql: str, limits: QueryLimits) -> str:
    """The canonical text of `sql` once ClickHouse's parse shows it only reads the cost database."""
    size = len(sql.encode())
    if size > limits.max_query_bytes:
        raise SqlRefusedError(
            f"the query is {size:,} bytes, more than sql.max_query_bytes ({limits.max_query_bytes:,}): "
            "a long IN list belongs in a table or a subquery"
        )
    if not sql.strip().rstrip(";").strip():
        raise ReadOnlyQueryError("the query is empty: give one SELECT statement")
    try:
        result = client.query(
            _PARSE_SQL,
            parameters={"q": sql},
            settings={"readonly": 1, "max_parser_depth": 300, "max_execution_time": 10},
        )
    except Exception as exc:  # the engine's parse says what is wrong
        raise _parse_error(exc) from exc
    canonical, tree_json, db, tables = result.result_rows[0]
    try:
        tree = orjson.loads(tree_json)
    except orjson.JSONDecodeError as exc:
        raise SqlRefusedError("the query is too deeply nested to check: simplify it") from exc
    check_tree(tree, CostDatabase(name=str(db), tables=frozenset(str(t) for t in tables)))
    return str(canonical)


def run_readonly_query(
    client: Client, sql: str, fmt: str, limits: QueryLimits | None = None, *, query_id: str = ""
) -> tuple[str, bytes]:
    """Check one reading statement, run it bounded; return (content type, rendered body)."""
    if fmt not in OUTPUT_FORMATS:
        raise ReadOnlyQueryError(f"unknown format {fmt!r}: use one of {', '.join(OUTPUT_FORMATS)}")
    limits = limits or QueryLimits()
    statement = prepare_query(client, sql, limits)
    try:
        result = client.query(f"{statement}\n/* {QUERY_TAG} {query_id} */", settings=limits.engine_settings())
    except Exception as exc:  # the engine's message says what is wrong
        raise ReadOnlyQueryError(_engine_message(exc, limits)) from exc
    columns, types = list(result.column_names), [t.name for t in result.column_types]
    if not columns:
        # The embedded engine names no columns for an empty result: ask for them, so the
        # header is there (the statement was checked above; DESCRIBE only analyses it).
        described = client.query(f"DESCRIBE TABLE ({statement})", settings=limits.engine_settings()).result_rows
        columns, types = [str(row[0]) for row in described], [str(row[1]) for row in described]
    return CONTENT_TYPES[fmt], render(columns, types, result.result_rows, fmt)  # type: ignore[arg-type]  # the rows' cell types are the engine's; render takes any of them


@dataclass(frozen=True)
class QueryRows:
    """A result: column names and ClickHouse types, and the rows as Python values."""

    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]

    def render(self, fmt: OutputFormat) -> bytes:
        return render(self.columns, self.types, self.rows, fmt)


def run_named_query(
    client: Client, name: str, parameters: dict[str, object], limits: QueryLimits | None = None, *, query_id: str = ""
) -> QueryRows:
    """Run one of `NAMED_QUERIES` with ClickHouse binding `parameters`, bounded like /sql."""
    named = NAMED_QUERIES.get(name)
    if named is None:
        raise QueryParameterError(f"no query named {name[:40]!r}: use one of {', '.join(sorted(NAMED_QUERIES))}")
    limits = limits or QueryLimits()
    try:
        result = client.query(
            f"{named.sql}\n/* {QUERY_TAG} {query_id} */", parameters=parameters, settings=limits.engine_settings()
        )
    except Exception as exc:
        raise ReadOnlyQueryError(_engine_message(exc, limits)) from exc
    return QueryRows(
        list(result.column_names), [t.name for t in result.column_types], [tuple(r) for r in result.result_rows]
    )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _parse_error(exc: Exception) -> ReadOnlyQueryError:
    message = _first_line(exc)
    if "Multi-statements are not allowed" in message:
        return SqlRefusedError("give one statement at a time (found a second statement after `;`)")
    marker = "AST node of type '"
    if marker in message:
        node_type = message.split(marker, 1)[1].split("'", 1)[0]
        return refuse_statement(node_type)
    if "SYNTAX_ERROR" in message or "Syntax error" in message:
        return ReadOnlyQueryError(message.split(": In scope", 1)[0].replace("DB::Exception: ", ""))
    return ReadOnlyQueryError(f"the query could not be parsed: {message}")


def _engine_message(exc: Exception, limits: QueryLimits) -> str:
    message = _first_line(exc)
    if "TIMEOUT_EXCEEDED" in message:
        message += f" (sql.max_execution_time is {limits.max_execution_time:g} s: narrow the query)"
    elif "QUERY_WAS_CANCELLED" in message:
        message += " (the worker is stopping, or the query was cancelled)"
    elif "MEMORY_LIMIT_EXCEEDED" in message:
        message += f" (sql.max_memory_usage is {limits.max_memory_usage:,} bytes: aggregate more, select less)"
    elif "TOO_MANY_ROWS_OR_BYTES" in message:
        message += " (add a LIMIT or aggregate: /sql caps result rows and bytes)"
    elif "UNKNOWN_TABLE" in message:
        message += " (run `meterline migrate` if the schema was never created)"
    return message


def render(columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]], fmt: OutputFormat) -> bytes:
    """Rows as an aligned text table, CSV with a header, or JSON (money as exact strings)."""
    if fmt == "json":
        body = {
            "columns": [{"name": name, "type": kind} for name, kind in zip(columns, types, strict=True)],
            "rows": [dict(zip(columns, (json_value(v) for v in row), strict=True)) for row in rows],
            "row_count": len(rows),
        }
        return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else _text(v) for v in row] for row in rows])
        return out.getvalue().encode()
    return _table(columns, rows).encode()


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        return orjson.dumps(value, default=_text).decode()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def json_value(value: Any) -> Any:
    """A value as JSON takes it: money, dates and big numbers as exact strings."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return _text(value)


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [["NULL" if v is None else _text(v) for v in row] for row in rows]
    numeric = []
    for i in range(len(columns)):
        present = [row[i] for row in rows if row[i] is not None]
        numeric.append(
            bool(present) and all(isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in present)
        )
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))]
        return "  ".join(parts).rstrip()

    out = [line(list(columns)), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in cells)
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out) + "\n"
