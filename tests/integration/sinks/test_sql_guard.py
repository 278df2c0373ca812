"""The /sql check against the real engine: an attack table, and every query of docs/queries.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meterline.sinks.errors import ReadOnlyQueryError
from meterline.sinks.migrations import apply_migrations
from meterline.sinks.query import QueryLimits, run_readonly_query
from meterline.sinks.sql_allowlist import FUNCTIONS
from meterline.sinks.sql_guard import SqlRefusedError, function_allowed

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[3] / "docs" / "queries.md"
CANARY = "/tmp/meterline-sql-canary"
ATTACKS = [
    # files, scalar and table functions, in every hiding place
    ("SELECT file('/proc/self/environ')", "function file() is refused"),
    ("SELECT substring(file('/etc/passwd'), 1, 10)", "function file() is refused"),
    ("SELECT FILE('/etc/passwd')", "function FILE() is refused"),
    ("SELECT `file`('/etc/passwd')", "function file() is refused"),
    ("SELECT `fіle`('/etc/passwd')", "is refused"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table function file() is refused"),
    ("SELECT * FROM fileCluster('c', '/etc/passwd')", "table function fileCluster() is refused"),
    ("WITH x AS (SELECT file('/etc/passwd') AS f) SELECT f FROM x", "function file() is refused"),
    ("WITH file('/etc/passwd') AS f SELECT f", "function file() is refused"),
    ("SELECT (SELECT file('/etc/passwd'))", "function file() is refused"),
    ("SELECT * FROM (SELECT file('/etc/passwd'))", "function file() is refused"),
    ("SELECT * FROM view(SELECT file('/etc/passwd'))", "function file() is refused"),
    ("SELECT 1 WHERE file('/etc/passwd') != ''", "function file() is refused"),
    ("SELECT arrayMap(x -> file(x), ['/etc/passwd'])", "function file() is refused"),
    ("SELECT * APPLY(file) FROM usage_events", "APPLY(file) is refused"),
    ("SELECT 1 UNION ALL SELECT file('/etc/passwd')", "function file() is refused"),
    # writing files
    (f"SELECT 'x' INTO OUTFILE '{CANARY}'", "INTO OUTFILE is refused"),
    (f"SELECT 'x' INTO OUTFILE '{CANARY}' APPEND", "INTO OUTFILE is refused"),
    (f"SELECT 'x' INTO OUTFILE '{CANARY}' TRUNCATE FORMAT CSV", "INTO OUTFILE is refused"),
    (f"SELECT 'x' INTO OUTFILE '{CANARY}' AND STDOUT", "INTO OUTFILE is refused"),
    (f"EXPLAIN AST SELECT 1 INTO OUTFILE '{CANARY}'", "INTO OUTFILE is refused"),
    # network, processes, other servers
    ("SELECT * FROM url('http://127.0.0.1:1/', CSV, 'a String')", "table function url() is refused"),
    ("SELECT * FROM s3('http://127.0.0.1:1/b/k', CSV, 'a String')", "table function s3() is refused"),
    ("SELECT * FROM hdfs('hdfs://127.0.0.1:1/x', CSV, 'a String')", "table function hdfs() is refused"),
    ("SELECT * FROM remote('127.0.0.1', system.one)", "table function remote() is refused"),
    ("SELECT * FROM remoteSecure('127.0.0.1', system.one)", "table function remoteSecure() is refused"),
    ("SELECT * FROM cluster('default', system.one)", "table function cluster() is refused"),
    ("SELECT * FROM mysql('127.0.0.1:1', 'd', 't', 'u', 'p')", "table function mysql() is refused"),
    ("SELECT * FROM postgresql('127.0.0.1:1', 'd', 't', 'u', 'p')", "table function postgresql() is refused"),
    ("SELECT * FROM jdbc('x', 'y')", "table function jdbc() is refused"),
    ("SELECT * FROM odbc('x', 'y')", "table function odbc() is refused"),
    ("SELECT * FROM executable('id', CSV, 'a String')", "table function executable() is refused"),
    ("SELECT * FROM python('x')", "table function python() is refused"),
    ("SELECT * FROM input('a String')", "table function input() is refused"),
    ("SELECT * FROM format(CSV, 'a\\n1')", "table function format() is refused"),
    ("SELECT * FROM merge(system, '.*')", "table function merge() is refused"),
    ("SELECT * FROM dictionary('d')", "table function dictionary() is refused"),
    (
        "SELECT * FROM usage_events AS u JOIN url('http://127.0.0.1:1/', CSV, 'team String') AS r USING team",
        "url() is refused",
    ),
    (
        "SELECT * FROM usage_events WHERE team IN (SELECT * FROM file('/etc/passwd', 'LineAsString'))",
        "file() is refused",
    ),
    ("SELECT aiGenerate('hi')", "function aiGenerate() is refused"),
    # dictionaries, settings, the host
    ("SELECT dictGet('d', 'x', toUInt64(1))", "function dictGet() is refused"),
    ("SELECT joinGet('t', 'x', 1)", "function joinGet() is refused"),
    ("SELECT getSetting('max_memory_usage')", "function getSetting() is refused"),
    ("SELECT getServerSetting('user_files_path')", "function getServerSetting() is refused"),
    ("SELECT hostName(), currentUser()", "is refused"),
    ("SELECT sleepEachRow(1) FROM numbers(100)", "function sleepEachRow() is refused"),
    # system tables and other databases
    ("SELECT * FROM system.processes", "system.processes is refused"),
    ("SELECT * FROM system.users", "system.users is refused"),
    ("SELECT * FROM system.settings", "system.settings is refused"),
    ("SELECT * FROM system.query_log", "system.query_log is refused"),
    ("SELECT * FROM information_schema.tables", "no other database"),
    ("SELECT * FROM INFORMATION_SCHEMA.COLUMNS", "no other database"),
    ("SELECT * FROM other_db.secrets", "no other database"),
    ("SELECT team FROM usage_events WHERE team IN system.users", "system.users is refused"),
    ("SELECT team FROM usage_events WHERE team GLOBAL NOT IN system.users", "system.users is refused"),
    ("SELECT * FROM not_a_table", "unknown table not_a_table"),
    ("SHOW TABLES FROM system", "cost database"),
    ("SHOW DATABASES", "only SHOW TABLES"),
    ("SHOW PROCESSLIST", "`SHOW PROCESSLIST` is refused"),
    ("SHOW CREATE TABLE usage_events", "is refused"),
    # statements that change something, and ways to smuggle them
    ("INSERT INTO usage_events (event_id) VALUES ('x')", "`INSERT` is refused"),
    ("ALTER TABLE usage_events DELETE WHERE 1", "`ALTER` is refused"),
    ("DROP TABLE usage_events", "`DROP` is refused"),
    ("TRUNCATE TABLE usage_events", "is refused"),
    ("CREATE VIEW v AS SELECT file('/etc/passwd')", "`CREATE` is refused"),
    ("SYSTEM STOP MERGES", "`SYSTEM` is refused"),
    ("KILL QUERY WHERE 1", "`KILL` is refused"),
    ("OPTIMIZE TABLE usage_events FINAL", "`OPTIMIZE` is refused"),
    ("SET readonly = 0", "`SET` is refused"),
    ("DELETE FROM usage_events WHERE 1", "`DELETE` is refused"),
    ("GRANT ALL ON *.* TO default", "is refused"),
    ("RENAME TABLE usage_events TO x", "`RENAME` is refused"),
    ("DETACH TABLE usage_events", "is refused"),
    ("SELECT 1; DROP TABLE usage_events", "one statement at a time"),
    ("SELECT 1 -- x\n; DROP TABLE usage_events", "one statement at a time"),
    ("/* SELECT */ DROP TABLE usage_events", "`DROP` is refused"),
    ("SELECT 1 /* ; DROP TABLE usage_events */; DROP TABLE usage_events", "one statement at a time"),
    ("SELECT '; DROP TABLE usage_events'; DROP TABLE usage_events", "one statement at a time"),
    ("sElEcT 1; dRoP tAbLe usage_events", "one statement at a time"),
    ("SELECT 1 /* unterminated", "Multiline comment is not closed"),
    ("DESCRIBE TABLE file('/etc/passwd')", "`DESCRIBE` is refused"),
    ("EXISTS TABLE system.users", "is refused"),
    # settings, formats and parameters inside the query
    ("SELECT 1 SETTINGS readonly = 0", "settings inside the query"),
    ("SELECT 1 SETTINGS max_execution_time = 0", "settings inside the query"),
    ("SELECT * FROM usage_events SETTINGS max_memory_usage = 0", "settings inside the query"),
    ("WITH x AS (SELECT 1 SETTINGS readonly = 0) SELECT * FROM x", "settings inside the query"),
    ("SELECT 1 FORMAT CSV", "--format"),
    ("SELECT {p:String}", "query parameters"),
    ("EXPLAIN PLAN actions = 1 SELECT 1", "settings inside the query"),
    ("EXPLAIN AST SELECT file('/x')", "function file() is refused"),
    ("EXPLAIN AST INSERT INTO usage_events (event_id) VALUES ('x')", "EXPLAIN is allowed for a SELECT only"),
    ("EXPLAIN TABLE OVERRIDE mysql('x', 'd', 't', 'u', 'p') PARTITION BY x", "is refused"),
    # size
    ("SELECT 1 WHERE 1 IN (" + ", ".join(str(i) for i in range(20_000)) + ")", "more than sql.max_query_bytes"),
    ("", "the query is empty"),
]
PASSES = [
    ("SELECT 'a--b' AS s", b"s\na--b\n"),
    ("SELECT 'x /* y */ z' AS s -- a comment", b"s\nx /* y */ z\n"),
    ("SELECT 1 AS n;", b"n\n1\n"),
    ("WITH t AS (SELECT team FROM usage_events) SELECT count() AS n FROM t", b"n\n0\n"),
    ("SELECT sum(number) AS s FROM numbers(10)", b"s\n45\n"),
    ("SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = 'usage_events'", b"n\n1\n"),
    ("SELECT format('{}-{}', 'a', 'b') AS s", b"s\na-b\n"),
    ("SELECT SUM(1) AS s, countIf(1 = 1) AS c, toStartOfMonth(toDate('2026-11-15')) AS m", b"s,c,m\n1,1,2026-11-01\n"),
    ("SELECT count() AS n FROM usage_events AS u JOIN usage_hourly AS h ON u.team = h.team", b"n\n0\n"),
]


@pytest.fixture
def cost_db(chdb_client):
    apply_migrations(chdb_client)
    return chdb_client


@pytest.mark.parametrize(("sql", "reason"), ATTACKS, ids=[f"{i:02d}" for i in range(len(ATTACKS))])
def test_attacks_are_refused_with_a_clear_message(cost_db, sql: str, reason: str) -> None:
    with pytest.raises(ReadOnlyQueryError) as refused:
        run_readonly_query(cost_db, sql, "csv")
    assert reason in str(refused.value)
    assert not Path(CANARY).exists()
    tables = cost_db.query("SELECT count() FROM system.tables WHERE database = currentDatabase()").result_rows
    assert tables[0][0] >= 13, "the schema is intact"


@pytest.mark.parametrize(("sql", "expected"), PASSES)
def test_reading_queries_are_answered(cost_db, sql: str, expected: bytes) -> None:
    assert run_readonly_query(cost_db, sql, "csv")[1] == expected


def test_every_query_of_docs_queries_md_is_answered(cost_db) -> None:
    queries = re.findall(r"```sql\n(.*?)\n```", DOCS.read_text(), re.DOTALL)
    assert len(queries) >= 13
    for sql in queries:
        _, body = run_readonly_query(cost_db, sql, "json")
        assert body.startswith(b"{"), sql


def test_limits_stop_heavy_and_large_queries(cost_db) -> None:
    limits = QueryLimits(max_execution_time=1, max_result_rows=10, max_memory_usage=50 << 20)
    with pytest.raises(ReadOnlyQueryError, match="TIMEOUT_EXCEEDED"):
        run_readonly_query(cost_db, "SELECT count() FROM numbers(1e12)", "csv", limits)
    with pytest.raises(ReadOnlyQueryError, match="max rows"):
        run_readonly_query(cost_db, "SELECT number FROM numbers(100)", "csv", limits)
    with pytest.raises(ReadOnlyQueryError, match="MEMORY_LIMIT_EXCEEDED"):
        run_readonly_query(cost_db, "SELECT groupArray(number) FROM numbers(1e8)", "csv", limits)


def test_the_allowlist_names_real_functions_in_reviewed_categories(cost_db) -> None:
    rows = cost_db.query("SELECT name, alias_to, categories FROM system.functions").result_rows
    category = {name: cats for name, _, cats in rows}
    base = {name: alias or name for name, alias, _ in rows}
    missing = sorted(FUNCTIONS - set(category))
    assert not missing, f"allowlisted functions the engine no longer has: {missing}"
    risky = {"Dictionary", "Embedded Dictionary", "Introspection", "AI", "Internal", "Machine Learning", "Encryption"}
    for name, cats in category.items():
        if function_allowed(name):
            assert category.get(base[name], cats) not in risky, name
    for name in (
        "file",
        "url",
        "s3",
        "dictGet",
        "joinGet",
        "getSetting",
        "getServerSetting",
        "hostName",
        "currentUser",
        "filesystemAvailable",
        "sleep",
        "sleepEachRow",
        "throwIf",
        "aiGenerate",
        "hasColumnInTable",
    ):
        if name == "throwIf":
            continue
        assert not function_allowed(name), name


def test_a_refusal_is_a_sql_refused_error_before_the_engine_runs_anything(cost_db) -> None:
    with pytest.raises(SqlRefusedError):
        run_readonly_query(cost_db, "SELECT file('/etc/hostname')", "table")
