"""The dashboard in a real browser: headless Chromium loads it from a running worker holding known
data, and every figure it renders is checked against SQL run through the same worker's /sql.

The page is fetched from the worker's own port; its data goes through the worker's proxy to the
sink process (stream.processes = 2). Screenshots land in the test's folder, and in
$METERLINE_SCREENSHOT_DIR when set (that is how docs/dashboard.png is made).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline.sinks.client import open_client
from meterline.sinks.migrations import apply_migrations
from tests.integration.stream.harness import WorkerProcess
from tests.support.browser import chromium_or_skip, parse_dom, rendered_dom, screenshot, table_cells
from tests.support.cost_data import LIMITS, write_cost_data

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAGE = "/?from=2026-11-01&to=2026-11-30&refresh=0"
NOVEMBER = "occurred_at >= '2026-11-01' AND occurred_at < '2026-12-01'"
BUDGETS = "".join(
    f'[[budgets]]\nteam = "{team}"\nname = "monthly"\nlimit_usd = "{limit}"\nthresholds = [50, 80, 100]\n\n'
    for team, limit in LIMITS.items()
)


def shown(value: str) -> str:
    return str(Decimal(value).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def sql(worker: WorkerProcess, query: str) -> list[dict[str, Any]]:
    status, body = worker.get("/sql?format=json&q=" + urllib.parse.quote(query))
    assert status == 200, body
    rows: list[dict[str, Any]] = json.loads(body)["rows"]
    return rows


def test_the_dashboard_renders_the_figures_sql_gives(
    start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    browser = chromium_or_skip()
    database = tmp_path / "data" / "clickhouse"
    database.mkdir(parents=True)
    client = open_client(f"chdb://{database}")
    apply_migrations(client)
    write_cost_data(client)
    client.close()
    worker = start_worker(BUDGETS, only=None)

    dom = parse_dom(rendered_dom(browser, worker.url(PAGE), tmp_path / "profile"))
    body = next(e for e in dom.all if e.tag == "body")
    assert body.attrs.get("data-loaded") == "1", body.attrs.get("data-error", "the page did not finish loading")

    (totals,) = sql(
        worker,
        f"SELECT count() AS requests, sum(cost_usd) AS cost_usd, sum(cache_saving_usd) AS cache_saving_usd, "
        f"sum(batch_saving_usd) AS batch_saving_usd, countIf(NOT priced) AS unpriced_requests "
        f"FROM usage_events FINAL WHERE {NOVEMBER}",
    )
    for name in ("cost_usd", "cache_saving_usd", "batch_saving_usd"):
        kpi = dom.by_id[f"kpi-{name}"]
        assert Decimal(kpi.attrs["data-value"]) == Decimal(totals[name]) and kpi.text == shown(totals[name]), name
    assert dom.by_id["kpi-requests"].text == f"{totals['requests']:,}"
    assert dom.by_id["kpi-unpriced_requests"].text == str(totals["unpriced_requests"])
    (dead,) = sql(
        worker,
        "SELECT count() AS n FROM dlq_events FINAL WHERE received_at >= '2026-11-01' AND received_at < '2026-12-01'",
    )
    assert dom.by_id["kpi-dead_letters"].text == str(dead["n"]) == "12"

    models = table_cells(dom, "table-top_models")
    expected = sql(worker, "SELECT provider, model, requests, cost_usd FROM spend_per_model WHERE month = '2026-11-01'")
    assert set(models) == {f"{r['provider']}/{r['model']}" for r in expected}
    for row in expected:
        cells = models[f"{row['provider']}/{row['model']}"]
        assert Decimal(cells["cost_usd"].attrs["data-value"]) == Decimal(row["cost_usd"])
        assert cells["cost_usd"].text == shown(row["cost_usd"]) and cells["requests"].text == f"{row['requests']:,}"

    budgets = table_cells(dom, "table-budgets")
    stored = sql(
        worker, "SELECT team, budget, period, spend_usd, limit_usd FROM spend_vs_budget WHERE period = '2026-11'"
    )
    assert set(budgets) == {f"{r['team']}/{r['budget']}/{r['period']}" for r in stored}
    for row in stored:
        cells = budgets[f"{row['team']}/{row['budget']}/{row['period']}"]
        assert cells["spend_usd"].text == shown(row["spend_usd"]) and cells["limit_usd"].text == shown(row["limit_usd"])
        assert cells["thresholds"].text.startswith("50 % (")

    over_time = table_cells(dom, "table-spend_over_time")
    days = sql(
        worker,
        "SELECT day, team, requests, cost_usd FROM spend_per_team_day WHERE day >= '2026-11-01' AND day < '2026-12-01'",
    )
    assert len(over_time) == len(days) == 14 * 4
    for row in days:
        cells = over_time[f"{row['day']} 00:00/{row['team']}"]
        assert Decimal(cells["cost_usd"].attrs["data-value"]) == Decimal(row["cost_usd"])
        assert cells["cost_usd"].text == shown(row["cost_usd"]) and cells["requests"].text == f"{row['requests']:,}"

    savings = table_cells(dom, "table-savings")
    for row in sql(
        worker, "SELECT team, cache_saving_usd, batch_saving_usd FROM cache_batch_savings WHERE month = '2026-11-01'"
    ):
        assert savings[row["team"]]["cache_saving_usd"].text == shown(row["cache_saving_usd"])
        assert savings[row["team"]]["batch_saving_usd"].text == shown(row["batch_saving_usd"])

    alerts = table_cells(dom, "table-alerts")
    assert sorted(cells["status"].text for cells in alerts.values()) == ["failed", "sending", "sent"]
    assert {cells["error_kind"].text for cells in table_cells(dom, "table-dlq").values()} == {"not_json", "schema"}

    for canvas in ("chart-spend", "chart-budgets", "chart-models", "chart-providers"):
        assert canvas in dom.by_id, canvas
    shot = screenshot(browser, worker.url(PAGE), tmp_path / "dashboard.png", tmp_path / "profile")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("METERLINE_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["METERLINE_SCREENSHOT_DIR"]) / "dashboard.png")

    # The report, while the worker holds the embedded database, reads through the worker too.
    env = {
        **os.environ,
        "METERLINE_DATA_DIR": str(tmp_path / "data"),
        "METERLINE_STREAM__WEB_PORT": str(worker.port),
        "METERLINE_CONFIG": str(tmp_path / "meterline.toml"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "meterline.cli", "report", "--period", "2026-11", "--format", "csv"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    total = next(csv.DictReader(io.StringIO(done.stdout.splitlines()[0] + "\n" + done.stdout.splitlines()[-1])))
    assert total["team"] == "TOTAL" and Decimal(total["cost_usd"]) == Decimal(totals["cost_usd"])
    assert worker.stop() == 0


def test_a_stream_only_worker_serves_the_page_says_where_the_data_is_and_guards_faust_views(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker(env={"METERLINE_STREAM__WEB_TOKEN": "t0ken"})  # --only stream

    def get(path: str, token: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(
            worker.url(path), headers={"Authorization": f"Bearer {token}"} if token else {}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    assert get("/")[0] == 200
    assert get("/api/dashboard/totals")[0] == 401
    status, body = get("/api/dashboard/totals", "t0ken")
    assert status == 503 and "--only sink" in body
    assert get("/table/")[0] == 401 and get("/router/")[0] == 401
    assert get("/table/", "t0ken")[0] == 200
    assert worker.stop() == 0
