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
from tests.support.samples import sample_priced_events

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parents[2]
"""The checkout: sql_worker runs as a module from there (it imports tests.support)."""
MEMBER = [sys.executable, "-m", "meterline.cli"]
REFUSED = [
    ("INSERT INTO usage_events (event_id) VALUES ('x')", "`INSERT` is refused"),
    ("CREATE TABLE t (x Int8) ENGINE = Memory", "`CREATE` is refused"),
    ("DROP TABLE usage_events", "`DROP` is refused"),
    ("SYSTEM STOP MERGES", "`SYSTEM` is refused"),
    ("SELECT 1; DROP TABLE usage_events", "one statement at a time"),
    ("SELECT * FROM file('/etc/hostname', 'LineAsString')", "table function file"),
    ("SELECT 1 SETTINGS readonly = 0", "readonly"),
    ("SELECT 1 FORMAT CSV", "--format"),
]


def meterline(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEMBER, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("sql", "reason"), REFUSED)
def test_run_readonly_query_refuses_writes_ddl_and_state_changes(chdb_client, sql: str, reason: str) -> None:
    apply_migrations(chdb_client)
    with pytest.raises(ReadOnlyQueryError, match=reason):
        run_readonly_query(chdb_client, sql, "table")
    assert chdb_client.query("SELECT count() FROM system.tables WHERE name = 'usage_events'").result_rows == [(1,)]


def test_run_readonly_query_renders_table_csv_and_json(chdb_client) -> None:
    sql = "SELECT 'search' AS team, toDecimal128('1234.5', 12) AS cost_usd, CAST(NULL, 'Nullable(String)') AS project"
    assert run_readonly_query(chdb_client, sql, "table") == (
        "text/plain; charset=utf-8",
        b"team             cost_usd  project\n------  -----------------  -------\nsearch  1234.500000000000  NULL\n(1 row)\n",
    )
    assert run_readonly_query(chdb_client, sql, "csv")[1] == b"team,cost_usd,project\nsearch,1234.500000000000,\n"
    body = json.loads(run_readonly_query(chdb_client, sql, "json")[1])
    assert body["rows"] == [{"team": "search", "cost_usd": "1234.500000000000", "project": None}]
    assert body["columns"][1] == {"name": "cost_usd", "type": "Decimal(38, 12)"}


def test_an_empty_result_still_names_its_columns(chdb_client) -> None:
    apply_migrations(chdb_client)
    query = "SELECT team, sum(cost_usd) AS usd FROM usage_events GROUP BY team"
    assert run_readonly_query(chdb_client, query, "csv")[1] == b"team,usd\n"
    body = json.loads(run_readonly_query(chdb_client, query, "json")[1])
    assert body["columns"] == [
        {"name": "team", "type": "LowCardinality(String)"},
        {"name": "usd", "type": "Decimal(38, 12)"},
    ]
    assert run_readonly_query(chdb_client, query, "table")[1].decode().splitlines()[0].split() == ["team", "usd"]


@pytest.fixture
def worker_holding(chdb_dsn: str) -> Iterator[tuple[dict[str, str], subprocess.Popen[str]]]:
    """A separate process holding the chDB path and serving /sql on a free loopback port."""
    port = find_free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.sinks.sql_worker", chdb_dsn, str(port)],
        cwd=REPOSITORY,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
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


def test_meterline_sql_goes_through_the_worker_holding_the_embedded_database(worker_holding) -> None:
    env, worker = worker_holding
    expected = sum((e.cost_usd for e in sample_priced_events(200, seed=9)), Decimal(0))
    done = meterline(["sql", "SELECT count() AS n, sum(cost_usd) AS cost FROM usage_events", "--format", "json"], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == [{"n": 200, "cost": format(expected.quantize(Decimal("1e-12")), "f")}]

    csv_out = meterline(["sql", "SELECT sum(requests) FROM spend_per_team_month", "-f", "csv"], env)
    assert csv_out.returncode == 0 and csv_out.stdout.splitlines()[1] == "200"

    for sql, reason in (
        ("DROP TABLE usage_events", "`DROP` is refused"),
        ("INSERT INTO usage_events (event_id) VALUES ('x')", "`INSERT` is refused"),
    ):
        refused = meterline(["sql", sql], env)
        assert refused.returncode == 1 and reason in " ".join(refused.stderr.split()), refused.stderr

    info = meterline(["db", "info", "--json"], env)
    assert info.returncode == 0, info.stderr
    facts = json.loads(info.stdout)
    assert facts["via"] == "worker" and facts["engine"] == "embedded (chDB)"
    assert {t["name"]: t["rows"] for t in facts["tables"]}["usage_events"] == 200
    assert worker.poll() is None, "the worker still holds the database"


def test_meterline_sql_says_what_to_do_when_the_holder_has_no_endpoint(worker_holding) -> None:
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


def _post(port: int, sql: str, token: str | None = None, timeout: float = 120) -> tuple[int, dict[str, str], str]:
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/sql", data=json.dumps({"sql": sql, "format": "csv"}).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def _start_worker(chdb_dsn: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    port = find_free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.sinks.sql_worker", chdb_dsn, str(port)],
        cwd=REPOSITORY,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "READY", f"worker exited {worker.poll()}"
    return worker, port


def _stop(worker: subprocess.Popen[str]) -> int:
    assert worker.stdin is not None
    worker.stdin.close()
    try:
        return worker.wait(60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


def test_sql_endpoint_wants_the_token_and_the_cli_sends_it(chdb_dsn: str) -> None:
    worker, port = _start_worker(chdb_dsn, {"METERLINE_STREAM__WEB_TOKEN": "s3cret-token"})
    try:
        assert _post(port, "SELECT 1")[0] == 401
        assert _post(port, "SELECT 1", token="wrong")[0] == 401
        status, _, body = _post(port, "SELECT count() AS n FROM usage_events", token="s3cret-token")
        assert (status, body) == (200, "n\n200\n")
        env = {"METERLINE_CLICKHOUSE_DSN": chdb_dsn, "METERLINE_STREAM__WEB_PORT": str(port)}
        refused = meterline(["sql", "SELECT 1"], env)
        assert refused.returncode == 1 and "METERLINE_STREAM__WEB_TOKEN" in refused.stderr
        done = meterline(
            ["sql", "SELECT count() AS n FROM usage_events", "-f", "csv"],
            {**env, "METERLINE_STREAM__WEB_TOKEN": "s3cret-token"},
        )
        assert done.returncode == 0 and done.stdout == "n\n200\n", done.stderr
        doctor = meterline(["doctor"], {**env, "METERLINE_STREAM__WEB_TOKEN": "s3cret-token"})
        assert "held by the running worker" in doctor.stdout, doctor.stdout
        listed = meterline(["alerts", "list"], {**env, "METERLINE_STREAM__WEB_TOKEN": "s3cret-token"})
        assert listed.returncode == 0 and "no alert deliveries" in listed.stdout, listed.stderr
    finally:
        _stop(worker)


def test_a_post_whose_body_is_not_an_object_is_answered_400(worker_holding) -> None:
    import urllib.error
    import urllib.request

    env, _ = worker_holding
    port = int(env["METERLINE_STREAM__WEB_PORT"])
    for body in (b"[1, 2]", b'"SELECT 1"', b"null", b"not json"):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/sql", data=body, headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=30)
        assert answer.value.code == 400


def test_heavy_queries_are_bounded_and_block_nothing(chdb_dsn: str) -> None:
    import threading
    import urllib.request

    worker, port = _start_worker(
        chdb_dsn, {"METERLINE_SQL__MAX_CONCURRENT": "1", "METERLINE_SQL__MAX_EXECUTION_TIME": "3"}
    )
    try:
        heavy: list[tuple[int, dict[str, str], str]] = []

        def ask() -> None:
            answer = _post(port, "SELECT count() FROM numbers(1e12)")
            while answer[0] == 429:  # a probe below held the slot: ask again
                answer = _post(port, "SELECT count() FROM numbers(1e12)")
            heavy.append(answer)

        thread = threading.Thread(target=ask)
        thread.start()
        busy = None
        while thread.is_alive() and busy is None:  # until the heavy query holds the only slot
            status, headers, _ = _post(port, "SELECT 1")
            if status == 429:
                busy = headers
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as health:
            assert health.status == 200
        thread.join(120)
        status, _, body = heavy[0]
        assert status == 400 and "TIMEOUT_EXCEEDED" in body and "sql.max_execution_time" in body
        assert busy is not None and busy["Retry-After"] == "1", "a second query was answered 429 meanwhile"
        assert _post(port, "SELECT 1 AS n")[2] == "n\n1\n"
    finally:
        _stop(worker)


def test_a_stop_mid_query_cancels_the_query(chdb_dsn: str) -> None:
    import threading

    worker, port = _start_worker(
        chdb_dsn, {"METERLINE_SQL__MAX_EXECUTION_TIME": "3600", "METERLINE_SQL__MAX_CONCURRENT": "1"}
    )
    try:
        heavy: list[object] = []

        def ask() -> None:
            try:
                answer = _post(port, "SELECT count() FROM numbers(1e13)")
                while answer[0] == 429:  # a probe below held the slot: ask again
                    answer = _post(port, "SELECT count() FROM numbers(1e13)")
                heavy.append(answer)
            except OSError as exc:  # the server closed the connection on its way down
                heavy.append(exc)

        thread = threading.Thread(target=ask)
        thread.start()
        while thread.is_alive() and _post(port, "SELECT 1")[0] != 429:
            pass  # until the heavy query holds the only slot
    finally:
        code = _stop(worker)  # waits at most 60 s; the query alone would run for an hour
    thread.join(60)
    assert code == 0
    assert len(heavy) == 1 and isinstance(heavy[0], tuple), heavy
    status, _, body = heavy[0]
    assert status == 400 and ("QUERY_WAS_CANCELLED" in body or "the worker is stopping" in body), body


def test_the_worker_refuses_to_listen_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    done = meterline(["worker"], {"METERLINE_STREAM__WEB_HOST": "0.0.0.0", "METERLINE_DATA_DIR": str(tmp_path)})
    assert done.returncode == 1
    assert "METERLINE_STREAM__WEB_TOKEN" in " ".join(done.stderr.split())
