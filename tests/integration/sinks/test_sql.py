"""`meterline sql` and `meterline db info`: directly, and through a worker holding the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.services.kafka_local import find_free_port
from meterline.sinks.errors import ReadOnlyQueryError
from meterline.sinks.migrations import apply_migrations
from meterline.sinks.query import run_readonly_query
from meterline.sinks.samples import sample_priced_events

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
MEMBER = [sys.executable, "-m", "meterline.cli"]
REFUSED = [
    ("INSERT INTO usage_events (event_id) VALUES ('x')", "`INSERT` is refused"),
    ("CREATE TABLE t (x Int8) ENGINE = Memory", "`CREATE` is refused"),
    ("DROP TABLE usage_events", "`DROP` is refused"),
    ("SYSTEM STOP MERGES", "`SYSTEM` is refused"),
    ("SELECT 1; DROP TABLE usage_events", "one statement at a time"),
    ("SELECT * FROM file('/etc/hostname', 'LineAsString')", "readonly mode"),
    ("SELECT 1 SETTINGS readonly = 0", "readonly"),
    ("SELECT 1 FORMAT CSV", "--format"),
]


def meterline(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEMBER, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("sql", "reason"), REFUSED)
def test_run_readonly_query_refuses_writes_ddl_and_state_changes(chdb_client, sql: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    apply_migrations(chdb_client)
    with pytest.raises(ReadOnlyQueryError, match=reason):
        run_readonly_query(chdb_client, sql, "table")
    assert chdb_client.query("SELECT count() FROM system.tables WHERE name = 'usage_events'").result_rows == [(1,)]


def test_run_readonly_query_renders_table_csv_and_json(chdb_client) -> None:  # type: ignore[no-untyped-def]
    sql = "SELECT 'search' AS team, toDecimal128('1234.5', 12) AS cost_usd, CAST(NULL, 'Nullable(String)') AS project"
    assert run_readonly_query(chdb_client, sql, "table") == (
        "text/plain; charset=utf-8",
        b"team             cost_usd  project\n------  -----------------  -------\nsearch  1234.500000000000  NULL\n(1 row)\n",
    )
    assert run_readonly_query(chdb_client, sql, "csv")[1] == b"team,cost_usd,project\nsearch,1234.500000000000,\n"
    body = json.loads(run_readonly_query(chdb_client, sql, "json")[1])
    assert body["rows"] == [{"team": "search", "cost_usd": "1234.500000000000", "project": None}]
    assert body["columns"][1] == {"name": "cost_usd", "type": "Decimal(38, 12)"}


@pytest.fixture
def worker_holding(chdb_dsn: str) -> Iterator[tuple[dict[str, str], subprocess.Popen[str]]]:
    """A separate process holding the chDB path and serving /sql on a free loopback port."""
    port = find_free_port()
    worker = subprocess.Popen(
        [sys.executable, str(HERE / "sql_worker.py"), chdb_dsn, str(port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "READY", f"worker exited {worker.poll()}"
        yield {"METERLINE_CLICKHOUSE_DSN": chdb_dsn, "METERLINE_STREAM__WEB_PORT": str(port)}, worker
    finally:
        assert worker.stdin is not None
        worker.stdin.close()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


def test_meterline_sql_goes_through_the_worker_holding_the_embedded_database(worker_holding) -> None:  # type: ignore[no-untyped-def]
    env, worker = worker_holding
    expected = sum((e.cost_usd for e in sample_priced_events(200, seed=9)), Decimal(0))
    done = meterline(["sql", "SELECT count() AS n, sum(cost_usd) AS cost FROM usage_events", "--format", "json"], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == [{"n": 200, "cost": format(expected.quantize(Decimal("1e-12")), "f")}]

    csv_out = meterline(["sql", "SELECT sum(requests) FROM spend_per_team_month", "-f", "csv"], env)
    assert csv_out.returncode == 0 and csv_out.stdout.splitlines()[1] == "200"

    for sql, reason in (("DROP TABLE usage_events", "`DROP` is refused"), ("INSERT INTO usage_events (event_id) VALUES ('x')", "`INSERT` is refused")):
        refused = meterline(["sql", sql], env)
        assert refused.returncode == 1 and reason in " ".join(refused.stderr.split()), refused.stderr

    info = meterline(["db", "info", "--json"], env)
    assert info.returncode == 0, info.stderr
    facts = json.loads(info.stdout)
    assert facts["via"] == "worker" and facts["engine"] == "embedded (chDB)"
    assert {t["name"]: t["rows"] for t in facts["tables"]}["usage_events"] == 200
    assert worker.poll() is None, "the worker still holds the database"


def test_meterline_sql_says_what_to_do_when_the_holder_has_no_endpoint(worker_holding) -> None:  # type: ignore[no-untyped-def]
    env, _ = worker_holding
    done = meterline(["sql", "SELECT 1"], {**env, "METERLINE_STREAM__WEB_PORT": str(find_free_port())})
    assert done.returncode == 1
    assert "held by another process" in " ".join(done.stderr.split())


def test_meterline_sql_and_db_info_open_a_free_embedded_database_directly(chdb_dsn: str) -> None:
    env = {"METERLINE_CLICKHOUSE_DSN": chdb_dsn, "METERLINE_STREAM__WEB_PORT": str(find_free_port())}
    assert meterline(["migrate"], env).returncode == 0
    done = meterline(["sql", "SELECT count() FROM usage_events", "-f", "csv"], env)
    assert done.returncode == 0 and done.stdout == "count()\n0\n"
    info = json.loads(meterline(["db", "info", "--json"], env).stdout)
    assert info["via"] == "direct" and info["version"].startswith("26.")
