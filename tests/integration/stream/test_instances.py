"""Several instances of `meterline worker --only sink|alerts` on one embedded chDB database.

chDB is the engine inside the process that opens its path, and one process at a time can: a
second sink or dispatcher on the same path must stop at once with an error that says why and
what to do, and leave the first one running and its database whole. (With a ClickHouse server
several sinks are safe, see the README's scale-out section; that path needs Docker here.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from meterline.services.kafka_local import find_free_port
from meterline.sinks.client import open_client
from tests.integration.stream.harness import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def second_instance(bootstrap: str, prefix: str, folder: Path, dsn: str, only: str) -> subprocess.CompletedProcess[str]:
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "METERLINE_KAFKA_BOOTSTRAP": bootstrap,
        "METERLINE_TOPIC_PREFIX": prefix,
        "METERLINE_DATA_DIR": str(folder / "data"),
        "METERLINE_CLICKHOUSE_DSN": dsn,
        "METERLINE_STREAM__WEB_PORT": str(find_free_port()),
    }
    return subprocess.run(
        [sys.executable, "-m", "meterline.cli", "worker", "--only", only],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("only", ["sink", "alerts"])
def test_a_second_instance_on_the_same_chdb_path_stops_with_a_clear_error(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, only: str
) -> None:
    dsn = f"chdb://{(tmp_path / 'shared' / 'clickhouse').resolve()}"
    first = WorkerProcess(
        kafka_bootstrap, topic_prefix, tmp_path / "first", only=only, env={"METERLINE_CLICKHOUSE_DSN": dsn}
    )
    (tmp_path / "first").mkdir()
    first.start()
    try:
        second = second_instance(kafka_bootstrap, topic_prefix, tmp_path / "second", dsn, only)
        output = second.stdout + second.stderr
        assert second.returncode != 0, output
        assert "holds the same chdb path" in output, output
        assert "Traceback" not in output, output
        status, body = first.get("/healthz")
        assert status == 200, body
        assert first.proc is not None and first.proc.poll() is None
    finally:
        assert first.stop() == 0, first.log()
    client = open_client(dsn)
    try:
        tables = {
            row[0]
            for row in client.query("SELECT name FROM system.tables WHERE database = currentDatabase()").result_rows
        }
        assert {"usage_events", "alert_deliveries", "schema_migrations"} <= tables, tables
    finally:
        client.close()
