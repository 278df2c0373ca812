"""sql_guard on syntax trees captured from the engine (`parseQueryToJSON`, chDB 26.9): no services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meterline.sinks.sql_guard import CostDatabase, SqlRefusedError, check_tree, function_allowed

TREES: dict[str, dict[str, Any]] = {
    entry["sql"]: entry["tree"] for entry in json.loads((Path(__file__).parent / "sql_trees.json").read_text())
}
COST_DB = CostDatabase("default", frozenset({"usage_events", "usage_hourly", "spend_per_team_day"}))

READS = [
    "SELECT team, sum(cost_usd) AS cost FROM usage_events FINAL WHERE team = 'a--b' GROUP BY team",
    "WITH t AS (SELECT team FROM usage_events) SELECT count() FROM t",
    "SELECT quantile(0.5)(latency_ms), countIf(status = 'error'), SUM(1), tags['feature'] FROM usage_events",
    "SELECT x -> x + 1, arrayMap(y -> y * 2, [1, 2])",
    "SELECT * FROM numbers(10)",
    "SHOW TABLES",
    "EXPLAIN SELECT 1",
    "SELECT 1 AS `x\n    Function count`",
]
REFUSED = [
    ("SELECT file('/proc/self/environ')", "function file() is refused"),
    ("SELECT FiLe('/etc/passwd')", "function FiLe() is refused"),
    ("SELECT `fіle`('/etc/passwd')", "is refused"),
    ("SELECT 'x' INTO OUTFILE '/tmp/x' APPEND", "INTO OUTFILE is refused"),
    ("SELECT 1 FORMAT CSV", "--format"),
    ("SELECT 1 SETTINGS readonly = 0", "settings inside the query"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table function file() is refused"),
    ("SELECT * FROM url('http://127.0.0.1/', CSV, 'a String')", "table function url() is refused"),
    ("SELECT * FROM view(SELECT file('/etc/passwd'))", "function file() is refused"),
    ("WITH x AS (SELECT file('/etc/passwd') AS f) SELECT f FROM x", "function file() is refused"),
    ("SELECT team FROM usage_events WHERE team IN (SELECT name FROM system.users)", "system.users is refused"),
    ("SELECT team FROM usage_events WHERE team IN system.users", "system.users is refused"),
    ("SELECT * FROM system.processes", "system.processes is refused"),
    ("SELECT * FROM other_db.secrets", "no other database"),
    ("SELECT * FROM usage_events AS u JOIN url('http://x/', CSV, 'team String') AS r USING team", "url() is refused"),
    ("SELECT * APPLY(file) FROM usage_events", "APPLY(file) is refused"),
    ("SELECT {p:String}", "query parameters"),
    ("SHOW DATABASES", "only SHOW TABLES"),
    ("SHOW TABLES FROM system", "cost database"),
    ("EXPLAIN AST SELECT file('/x')", "function file() is refused"),
    ("EXPLAIN PLAN actions = 1 SELECT 1", "settings inside the query"),
    ("SELECT dictGet('d', 'x', toUInt64(1))", "function dictGet() is refused"),
    ("SELECT * FROM secret_table", "unknown table secret_table"),
]


@pytest.mark.parametrize("sql", READS)
def test_reads_of_the_cost_database_pass(sql: str) -> None:
    check_tree(TREES[sql], COST_DB)


@pytest.mark.parametrize(("sql", "reason"), REFUSED)
def test_everything_else_is_refused_with_its_reason(sql: str, reason: str) -> None:
    with pytest.raises(SqlRefusedError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_tree(TREES[sql], COST_DB)


def test_the_captured_trees_are_all_tested() -> None:
    assert set(TREES) == set(READS) | {sql for sql, _ in REFUSED}


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("sum", True),
        ("SUM", True),
        ("sumIf", True),
        ("uniqMergeState", True),
        ("toStartOfMonth", True),
        ("file", False),
        ("FILE", False),
        ("fileIf", False),
        ("dictGetOrNull", False),
        ("joinGet", False),
        ("getSetting", False),
        ("hostName", False),
        ("currentUser", False),
        ("sleepEachRow", False),
        ("aiGenerate", False),
        ("fіle", False),
        ("", False),
    ],
)
def test_function_allowlist(name: str, allowed: bool) -> None:
    assert function_allowed(name) is allowed


def test_a_made_up_node_type_is_refused() -> None:
    tree = {
        "type": "SelectWithUnionQuery",
        "list_of_selects": {"type": "ExpressionList", "children": [{"type": "FancyNewNode"}]},
    }
    with pytest.raises(SqlRefusedError, match="FancyNewNode"):
        check_tree(tree, COST_DB)
