"""Read-only SQL for people: check the statement, run it with readonly=1, render the rows.

Two guards: the statement must start with a reading keyword (ClickHouse lets a few state
changes such as `SYSTEM STOP MERGES` through readonly=1), and the engine runs it with
`readonly=1`, which refuses writes, DDL, setting changes and file/url table functions.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, get_args

import orjson

from meterline.sinks.errors import ReadOnlyQueryError

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

OutputFormat = Literal["table", "csv", "json"]
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
READING_KEYWORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")
CONTENT_TYPES = {"table": "text/plain; charset=utf-8", "csv": "text/csv; charset=utf-8", "json": "application/json"}
READONLY_SETTINGS = {"readonly": 1}

_COMMENT_RE = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_STRING_RE = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`", re.DOTALL)
_FORMAT_RE = re.compile(r"\bFORMAT\s+\w+\s*$", re.IGNORECASE)


def check_read_only(sql: str) -> str:
    """The statement without trailing `;`; ReadOnlyQueryError unless it only reads."""
    text = _COMMENT_RE.sub(" ", sql).strip().rstrip(";").strip()
    if not text:
        raise ReadOnlyQueryError("the query is empty: give one SELECT statement")
    bare = _STRING_RE.sub("''", text)
    if ";" in bare:
        raise ReadOnlyQueryError("give one statement at a time (found `;` between statements)")
    keyword = re.match(r"[(\s]*([A-Za-z]+)", bare)
    first = keyword.group(1).upper() if keyword else ""
    if first not in READING_KEYWORDS:
        raise ReadOnlyQueryError(
            f"`{first or text[:20]}` is refused: meterline sql is read-only and runs only "
            f"{', '.join(READING_KEYWORDS)} statements. Write through the pipeline, and change "
            "the schema with `meterline migrate`."
        )
    if _FORMAT_RE.search(bare):
        raise ReadOnlyQueryError("drop the FORMAT clause and choose the output with --format table|csv|json")
    return text


def run_readonly_query(client: Client, sql: str, fmt: str) -> tuple[str, bytes]:
    """Run one reading statement with readonly=1; return (content type, rendered body)."""
    if fmt not in OUTPUT_FORMATS:
        raise ReadOnlyQueryError(f"unknown format {fmt!r}: use one of {', '.join(OUTPUT_FORMATS)}")
    statement = check_read_only(sql)
    try:
        result = client.query(statement, settings=READONLY_SETTINGS)
    except Exception as exc:  # noqa: BLE001 - the engine's message says what is wrong
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "READONLY" in message:
            message += " (meterline sql is read-only)"
        elif "UNKNOWN_TABLE" in message:
            message += " (run `meterline migrate` if the schema was never created)"
        raise ReadOnlyQueryError(message) from exc
    types = [t.name for t in result.column_types]
    return CONTENT_TYPES[fmt], render(list(result.column_names), types, result.result_rows, fmt)  # type: ignore[arg-type]


def render(columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]], fmt: OutputFormat) -> bytes:
    """Rows as an aligned text table, CSV with a header, or JSON (money as exact strings)."""
    if fmt == "json":
        body = {
            "columns": [{"name": name, "type": kind} for name, kind in zip(columns, types, strict=True)],
            "rows": [dict(zip(columns, (_json_value(v) for v in row), strict=True)) for row in rows],
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


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return _text(value)


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [["NULL" if v is None else _text(v) for v in row] for row in rows]
    numeric = []
    for i in range(len(columns)):
        present = [row[i] for row in rows if row[i] is not None]
        numeric.append(bool(present) and all(isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in present))
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))]
        return "  ".join(parts).rstrip()

    out = [line(list(columns)), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in cells)
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out) + "\n"
