"""`meterline reprice` while a whole worker (stream, sink, alerts) holds the embedded database:
the CLI goes through the worker's token-guarded /reprice endpoint, the worker's ClickHouse
process re-prices with the price file as it is now, the budgets follow through the stream, and
spend_vs_budget, the rollups and the alert log agree."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meterline.cli import app
from meterline.settings import Settings, StreamSettings
from meterline.sinks.routing import query_via_worker
from tests.integration.stream.harness import WorkerProcess, make_producer, produce_events
from tests.integration.stream.reprice_support import BUDGET, acme_calls
from tests.support.prices import ACME_PRICES_BEFORE, ACME_PRICES_NOW

pytestmark = pytest.mark.integration

TOKEN = "reprice-test-token"


def rows(settings: Settings, sql: str) -> list[dict[str, Any]]:
    _, body = query_via_worker(settings, sql, "json")
    return list(json.loads(body)["rows"])


def wait_for(
    settings: Settings,
    sql: str,
    expected: list[dict[str, Any]],
    what: str,
    log: Callable[[], str],
    limit: float = 120.0,
) -> None:
    deadline = time.monotonic() + limit
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            found = rows(settings, sql)
        except Exception:  # noqa: BLE001 - the worker's database process may still be starting
            found = []
        if found == expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"gave up waiting for {what}: {found} != {expected}\n{log()}")


def test_reprice_through_the_worker_holding_the_database(
    start_worker: Callable[..., WorkerProcess], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, chdb_dsn: str
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(ACME_PRICES_BEFORE, encoding="utf-8")
    env = {"METERLINE_CLICKHOUSE_DSN": chdb_dsn, "METERLINE_STREAM__WEB_TOKEN": TOKEN}
    worker = start_worker(f'{BUDGET}\n[pricing]\noverride_files = ["{prices}"]\n', only=None, env=env)
    settings = Settings(clickhouse_dsn=chdb_dsn, stream=StreamSettings(web_port=worker.port, web_token=TOKEN))
    start = datetime.now(UTC) - timedelta(minutes=30)
    events = acme_calls(start)
    producer = make_producer(kafka_bootstrap)
    produce_events(producer, f"{topic_prefix}usage", events)
    producer.close()
    wait_for(
        settings,
        "SELECT count() AS n, sum(cost_usd) AS usd FROM usage_events FINAL",
        [{"n": 11, "usd": "3.400000000000"}],
        "the events stored",
        worker.log,
    )
    wait_for(
        settings,
        "SELECT budget, spend_usd FROM spend_vs_budget ORDER BY budget",
        [{"budget": "hourly", "spend_usd": "3.400000000000"}, {"budget": "monthly", "spend_usd": "3.400000000000"}],
        "the budgets at old prices",
        worker.log,
    )

    # The price file as it is now; the stream keeps its loaded catalog, the re-price reads the file.
    prices.write_text(ACME_PRICES_NOW, encoding="utf-8")
    cli_env = {
        **env,
        "METERLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "METERLINE_TOPIC_PREFIX": topic_prefix,
        "METERLINE_STREAM__WEB_PORT": str(worker.port),
        "COLUMNS": "200",
    }
    config = tmp_path / "meterline.toml"

    def meterline(*args: str) -> tuple[int, str]:
        result = CliRunner(env=cli_env).invoke(app, ["--config", str(config), "reprice", *args])
        return result.exit_code, result.output

    code, output = meterline("--since", (start - timedelta(hours=1)).isoformat())
    assert code == 0, output + worker.log()
    assert "11 budget corrections sent to the stream" in output and "applied" in output

    wait_for(
        settings,
        "SELECT sum(cost_usd) AS usd FROM usage_events FINAL",
        [{"usd": "9.260000000000"}],
        "usage_events",
        worker.log,
    )
    assert rows(settings, "SELECT sum(cost_usd) AS usd, sum(requests) AS n FROM usage_hourly") == [
        {"usd": "9.260000000000", "n": 11}
    ]
    wait_for(
        settings,
        "SELECT budget, spend_usd, unpriced_events FROM spend_vs_budget ORDER BY budget",
        [
            {"budget": "hourly", "spend_usd": "9.260000000000", "unpriced_events": 0},
            {"budget": "monthly", "spend_usd": "9.260000000000", "unpriced_events": 0},
        ],
        "spend_vs_budget after the correction",
        worker.log,
    )
    wait_for(
        settings,
        # A rolling alert's id names the minute it crossed at (…/rolling:1h@<minute>/…): its arm is the id without it.
        "SELECT replaceRegexpOne(alert_id, '@[^/]*', '') AS arm, uniqExact(alert_id) AS alerts FROM alert_deliveries"
        " WHERE kind = 'threshold' GROUP BY arm ORDER BY arm",
        [
            {"arm": "search/hourly/rolling:1h/threshold/50", "alerts": 1},
            {"arm": "search/hourly/rolling:1h/threshold/80", "alerts": 1},
            {"arm": f"search/monthly/{start:%Y-%m}/threshold/50", "alerts": 1},
            {"arm": f"search/monthly/{start:%Y-%m}/threshold/80", "alerts": 1},
        ],
        "one alert per crossed threshold",
        worker.log,
    )
    assert rows(settings, "SELECT events_changed, corrections_sent FROM reprice_runs") == [
        {"events_changed": 11, "corrections_sent": 11}
    ]

    code, output = meterline("--since", (start - timedelta(hours=1)).isoformat())
    assert code == 0 and "nothing changed" in output, output

    # The door wants the token, and takes nothing but a reprice request.
    request = urllib.request.Request(worker.url("/reprice"), data=b'{"since": "2026-01-01T00:00:00Z"}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401
    bad = urllib.request.Request(
        worker.url("/reprice"),
        data=b'{"since": "2026-01-01T00:00:00Z", "sql": "DROP TABLE usage_events"}',
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as wrong:
        urllib.request.urlopen(bad, timeout=30)
    assert wrong.value.code == 400 and "sql" in wrong.value.read().decode()
    assert Decimal(rows(settings, "SELECT sum(cost_usd) AS usd FROM usage_events FINAL")[0]["usd"]) == Decimal("9.26")
