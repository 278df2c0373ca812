"""Which queries /sql lets reach the engine: a check of ClickHouse's own parse. Pure.

The engine parses the query (`parseQueryToJSON`, given the text as a bound parameter, so the
wrapper cannot be abused: a parse, no execution, one statement or a syntax error); this module
walks that JSON tree and refuses anything outside the allowlists:

- statements: SELECT (WITH, UNION, INTERSECT, EXCEPT), SHOW TABLES, EXPLAIN of a SELECT;
- syntax: the AST node types below, with no SETTINGS, FORMAT, INTO OUTFILE or query parameter;
- tables: the cost database's own tables and views, the query's CTEs, a few system tables;
- functions: `sql_allowlist.FUNCTIONS` (aggregate combinators on top), table functions that
  only generate rows.

Each refusal says what was refused and what to do instead. Nothing here talks to ClickHouse:
`check_tree` takes the tree and what the cost database holds (`CostDatabase`), so the tests
feed it trees captured from the engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from meterline.sinks.errors import ReadOnlyQueryError
from meterline.sinks.sql_allowlist import AGGREGATE_COMBINATORS, CASE_INSENSITIVE, FUNCTIONS, TABLE_FUNCTIONS

STATEMENTS = ("SELECT", "WITH", "SHOW TABLES", "EXPLAIN")
SYSTEM_TABLES = frozenset(
    {"one", "tables", "columns", "functions", "table_functions", "data_type_families", "numbers", "zeros"}
)
"""Read-only introspection that says nothing about the host or other databases' data."""
EXPLAIN_KINDS = frozenset(
    {"EXPLAIN", "EXPLAIN AST", "EXPLAIN SYNTAX", "EXPLAIN PIPELINE", "EXPLAIN ESTIMATE", "EXPLAIN QUERY TREE"}
)
NODE_TYPES = frozenset(
    {
        "SelectWithUnionQuery",
        "SelectIntersectExceptQuery",
        "SelectQuery",
        "ExpressionList",
        "Identifier",
        "Function",
        "Literal",
        "Asterisk",
        "QualifiedAsterisk",
        "ColumnsRegexpMatcher",
        "ColumnsListMatcher",
        "QualifiedColumnsRegexpMatcher",
        "QualifiedColumnsListMatcher",
        "ColumnsTransformerList",
        "ColumnsExceptTransformer",
        "ColumnsReplaceTransformer",
        "ColumnsReplaceTransformerReplacement",
        "ColumnsApplyTransformer",
        "TablesInSelectQuery",
        "TablesInSelectQueryElement",
        "TableExpression",
        "TableIdentifier",
        "TableJoin",
        "ArrayJoin",
        "Subquery",
        "WithElement",
        "OrderByElement",
        "WindowDefinition",
        "WindowListElement",
        "SampleRatio",
        "InterpolateElement",
        "ShowTablesQuery",
        "ExplainQuery",
    }
)
"""The syntax a reading query is made of; any other node (a new engine's, a DDL's) is refused."""
IN_FUNCTIONS = frozenset(
    {"in", "notIn", "globalIn", "globalNotIn", "nullIn", "notNullIn", "globalNullIn", "globalNotNullIn"}
)
"""`x IN name` reads the table `name` when no alias of that name exists."""
_SHOW_TABLES_KEYS = frozenset({"type", "like", "not_like", "case_insensitive_like", "from", "limit_length"})
_STATEMENT_KEYWORDS = {
    "InsertQuery": "INSERT",
    "CreateQuery": "CREATE",
    "DropQuery": "DROP",
    "AlterQuery": "ALTER",
    "SystemQuery": "SYSTEM",
    "KillQueryQuery": "KILL",
    "OptimizeQuery": "OPTIMIZE",
    "SetQuery": "SET",
    "DeleteQuery": "DELETE",
    "UpdateQuery": "UPDATE",
    "RenameQuery": "RENAME",
    "UseQuery": "USE",
    "GrantQuery": "GRANT",
    "CheckQuery": "CHECK",
    "WatchQuery": "WATCH",
    "UndropQuery": "UNDROP",
    "TransactionControl": "BEGIN/COMMIT",
    "BackupQuery": "BACKUP",
    "ShowProcesslistQuery": "SHOW PROCESSLIST",
}
MAX_NODES = 20_000


class SqlRefusedError(ReadOnlyQueryError):
    """The query was parsed and refused: it would do more than read the cost database."""


@dataclass(frozen=True)
class CostDatabase:
    """What a query may read: the current database's name and its tables and views."""

    name: str
    tables: frozenset[str]


def function_allowed(name: str) -> bool:
    """True for an allowlisted function, in the engine's spelling or case, with combinators."""
    if not name.isascii() or not name:
        return False
    if name in FUNCTIONS or name.lower() in CASE_INSENSITIVE:
        return True
    for suffix in AGGREGATE_COMBINATORS:
        if name.endswith(suffix) and len(name) > len(suffix) and function_allowed(name[: -len(suffix)]):
            return True
    return False


def statement_keyword(node_type: str) -> str:
    """`DROP` for `DropQuery`: how a refusal names a statement the engine parsed."""
    if node_type in _STATEMENT_KEYWORDS:
        return _STATEMENT_KEYWORDS[node_type]
    base = node_type.split("_")[0].removesuffix("Query")
    return "".join(f" {c}" if c.isupper() and i else c for i, c in enumerate(base)).upper() or node_type


def refuse_statement(node_type: str) -> SqlRefusedError:
    keyword = statement_keyword(node_type)
    return SqlRefusedError(
        f"`{keyword}` is refused: meterline sql is read-only and runs only {', '.join(STATEMENTS)} statements. "
        "Write through the pipeline, change the schema with `meterline migrate`, and describe a table with "
        "`SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = '...'`."
    )


def check_tree(tree: Mapping[str, Any], database: CostDatabase) -> None:
    """Raise SqlRefusedError unless the parsed statement only reads the cost database."""
    root = tree.get("type")
    if root not in {"SelectWithUnionQuery", "ShowTablesQuery", "ExplainQuery"}:
        raise refuse_statement(str(root))
    if root == "ExplainQuery":
        kind = tree.get("kind")
        if kind not in EXPLAIN_KINDS:
            raise SqlRefusedError(f"`{kind}` is refused: use one of {', '.join(sorted(EXPLAIN_KINDS))}")
        inner = tree.get("query")
        if not isinstance(inner, Mapping) or inner.get("type") != "SelectWithUnionQuery":
            raise SqlRefusedError("EXPLAIN is allowed for a SELECT only")
    nodes = list(_walk(tree))
    if len(nodes) > MAX_NODES:
        raise SqlRefusedError(f"the query has {len(nodes):,} syntax elements (at most {MAX_NODES:,}): make it smaller")
    ctes = {str(n["name"]) for n, _ in nodes if n.get("type") == "WithElement" and "name" in n}
    aliases = {str(n["alias"]) for n, _ in nodes if "alias" in n} | ctes
    for node, role in nodes:
        _check_node(node, role, database, ctes, aliases)


def _walk(tree: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], str]]:
    """Every node with its role: `expr`, `table_function`, `table`, or `in_set` (IN's right side)."""
    stack: list[tuple[Mapping[str, Any], str]] = [(tree, "expr")]
    while stack:
        node, role = stack.pop()
        yield node, role
        for key, value in node.items():
            if key == "arguments" and node.get("type") == "Function" and node.get("name") in IN_FUNCTIONS:
                children = value.get("children", []) if isinstance(value, Mapping) else []
                for i, child in enumerate(children):
                    if isinstance(child, Mapping) and "type" in child:
                        stack.append((child, "in_set" if i == 1 else "expr"))
                stack.append(({**value, "children": []}, "expr"))
                continue
            child_role = "table_function" if key == "table_function" else "expr"
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, Mapping) and "type" in child:
                    stack.append((child, child_role))


def _check_node(node: Mapping[str, Any], role: str, database: CostDatabase, ctes: set[str], aliases: set[str]) -> None:
    kind = str(node.get("type"))
    if kind == "SetQuery":
        raise SqlRefusedError(
            "settings inside the query are refused: /sql runs with fixed limits (readonly, time, memory, rows)"
        )
    if kind == "QueryParameter":
        raise SqlRefusedError("query parameters ({name:Type}) are not supported by /sql: write the value in the query")
    if kind not in NODE_TYPES:
        raise SqlRefusedError(f"`{kind}` is not allowed in /sql queries (only reading SELECT syntax is)")
    if "out_file" in node or node.get("is_into_outfile_with_stdout"):
        raise SqlRefusedError(
            "INTO OUTFILE is refused: /sql writes no files; save the output of `meterline sql` instead"
        )
    if "format_ast" in node or "format" in node:
        raise SqlRefusedError("drop the FORMAT clause and choose the output with --format table|csv|json")
    if kind == "ShowTablesQuery":
        _check_show_tables(node, database)
    elif kind == "Function":
        _check_function(node, role)
    elif kind == "ColumnsApplyTransformer":
        name = str(node.get("func_name", ""))
        if "lambda" in node or not function_allowed(name):
            raise SqlRefusedError(f"APPLY({name or 'lambda'}) is refused: write the function call in the select list")
    elif kind == "TableIdentifier":
        _check_table(_parts(node), database, ctes)
    elif kind == "Identifier" and role == "in_set":
        parts = _parts(node)
        if len(parts) > 1 or parts[0] not in aliases:
            _check_table(parts, database, ctes)
    elif kind in {"Identifier", "WithElement", "WindowListElement"}:
        for name in _parts(node) if kind == "Identifier" else [str(node.get("name", ""))]:
            if not name.isascii():
                raise SqlRefusedError(f"the name {name!r} is not ASCII: /sql accepts plain ASCII names only")


def _check_function(node: Mapping[str, Any], role: str) -> None:
    name = str(node.get("name", ""))
    if role == "table_function":
        if name not in TABLE_FUNCTIONS:
            raise SqlRefusedError(
                f"the table function {name}() is refused: /sql reads the cost database's tables and views only "
                f"(no files, URLs, other servers or databases); allowed: {', '.join(sorted(TABLE_FUNCTIONS))}"
            )
        return
    if node.get("kind") == "LAMBDA_FUNCTION" and name == "lambda":
        return
    if not function_allowed(name):
        raise SqlRefusedError(
            f"the function {name}() is refused: /sql allows computing functions only (aggregates, arithmetic, "
            "dates, strings, conditionals, conversions, arrays, maps, JSON...), nothing that reads files, the "
            "network, dictionaries, settings or the host"
        )


def _check_show_tables(node: Mapping[str, Any], database: CostDatabase) -> None:
    extra = (
        set(node)
        - _SHOW_TABLES_KEYS
        - {k for k in node if k.startswith("is_outfile_") or k == "is_into_outfile_with_stdout"}
    )
    if extra:
        raise SqlRefusedError("only SHOW TABLES is allowed among the SHOW statements")
    source = node.get("from")
    if isinstance(source, Mapping) and ".".join(_parts(source)) != database.name:
        raise SqlRefusedError(f"SHOW TABLES lists the cost database ({database.name}) only: drop the FROM clause")


def _check_table(parts: list[str], database: CostDatabase, ctes: set[str]) -> None:
    shown = ".".join(parts)
    if not all(part.isascii() for part in parts):
        raise SqlRefusedError(f"the table name {shown!r} is not ASCII: /sql accepts plain ASCII names only")
    if len(parts) == 1 and (parts[0] in ctes or parts[0] in database.tables):
        return
    if len(parts) == 2 and parts[0] == database.name and parts[1] in database.tables:
        return
    if len(parts) == 2 and parts[0] == "system":
        if parts[1] in SYSTEM_TABLES:
            return
        raise SqlRefusedError(
            f"{shown} is refused: of the system tables /sql reads {', '.join(sorted(SYSTEM_TABLES))} only"
        )
    if len(parts) > 1:
        raise SqlRefusedError(
            f"{shown} is refused: /sql reads the cost database ({database.name}) only, no other database"
        )
    raise SqlRefusedError(
        f"unknown table {shown}: /sql reads the cost database's tables and views (list them with SHOW TABLES; "
        "run `meterline migrate` if the schema was never created)"
    )


def _parts(node: Mapping[str, Any]) -> list[str]:
    parts = node.get("name_parts")
    if isinstance(parts, list) and parts:
        return [str(p) for p in parts]
    if "database" in node:
        return [str(node["database"]), str(node.get("table", node.get("name", "")))]
    return [str(node.get("name", ""))]
