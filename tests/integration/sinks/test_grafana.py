"""Grafana's dashboard (sinks/grafana) cannot drift from the schema: every panel's and variable's
SQL, macros filled in as the ClickHouse plugin fills them, runs on the embedded engine with the
known sample data and answers rows; the spend panels equal the views."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline.sinks.client import open_client
from meterline.sinks.migrations import apply_migrations
from tests.conftest import REPO_ROOT
from tests.support.cost_data import write_cost_data

pytestmark = pytest.mark.integration

GRAFANA = REPO_ROOT / "sinks" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "meterline.json"
FROM, TO = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
INTERVAL_SECONDS = 86_400


def fill_macros(sql: str, variables: dict[str, str]) -> str:
    """The grafana-clickhouse-datasource macros and `${var}` template variables, filled in."""
    start, end = int(FROM.timestamp()), int(TO.timestamp())
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime({start}) AND \1 <= toDateTime({end})", sql)
    sql = re.sub(
        r"\$__timeInterval\((\w+)\)", rf"toStartOfInterval(toDateTime(\1), INTERVAL {INTERVAL_SECONDS} second)", sql
    )
    sql = sql.replace("$__fromTime", f"toDateTime({start})").replace("$__toTime", f"toDateTime({end})")
    for name, value in variables.items():
        sql = sql.replace("${" + name + "}", value)
    assert "$" not in sql, f"a macro or variable left unfilled in: {sql}"
    return sql


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = tmp_path_factory.mktemp("grafana") / "clickhouse"
    path.mkdir()
    opened = open_client(f"chdb://{path}")
    apply_migrations(opened)
    write_cost_data(opened)
    yield opened
    opened.close()


ALL = {"team": "__all", "project": "__all", "model": "__all"}
ONE = {"team": "search", "project": "ranker", "model": "gpt-4o"}


@pytest.mark.parametrize("variables", [ALL, ONE], ids=["all", "one-team-project-model"])
@pytest.mark.parametrize("panel", dashboard()["panels"], ids=lambda p: p["title"])
def test_every_panel_runs_and_answers_rows(client: Any, panel: dict[str, Any], variables: dict[str, str]) -> None:
    for target in panel["targets"]:
        assert target["datasource"]["uid"] == "meterline-clickhouse"
        rows = client.query(fill_macros(target["rawSql"], variables)).result_rows
        assert rows, panel["title"]


@pytest.mark.parametrize("variable", dashboard()["templating"]["list"], ids=lambda v: v["name"])
def test_every_variable_lists_what_the_data_holds(client: Any, variable: dict[str, Any]) -> None:
    values = [row[0] for row in client.query(fill_macros(variable["query"], {})).result_rows]
    assert values and all(values)
    assert variable["allValue"] == "__all"


def test_the_spend_panels_equal_the_views(client: Any) -> None:
    panels = {p["title"]: p["targets"][0]["rawSql"] for p in dashboard()["panels"]}
    (total,) = client.query(fill_macros(panels["Spend USD"], ALL)).result_rows[0]
    (view,) = client.query("SELECT sum(cost_usd) FROM spend_per_team_month WHERE month = '2026-11-01'").result_rows[0]
    assert total == view and total > 0
    series = client.query(fill_macros(panels["Spend per team"], ALL)).result_rows
    per_day = client.query(
        "SELECT day, team, cost_usd FROM spend_per_team_day WHERE day >= '2026-11-01' ORDER BY day, team"
    ).result_rows
    assert [(t.date(), team, cost) for t, team, cost in series] == [tuple(r) for r in per_day]
    assert sum((cost for *_, cost in series), Decimal(0)) == total


def test_the_provisioning_names_the_datasource_the_panels_use() -> None:
    datasource = (GRAFANA / "provisioning" / "datasources" / "clickhouse.yml").read_text()
    assert "uid: meterline-clickhouse" in datasource and "type: grafana-clickhouse-datasource" in datasource
    assert "password: ${METERLINE_CLICKHOUSE_PASSWORD}" in datasource  # from the environment, never in the repo
    provider = (GRAFANA / "provisioning" / "dashboards" / "meterline.yml").read_text()
    assert "path: /var/lib/grafana/dashboards" in provider
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    assert "./sinks/grafana/dashboards:/var/lib/grafana/dashboards:ro" in compose
    assert Path(GRAFANA / "dashboards").is_dir()
