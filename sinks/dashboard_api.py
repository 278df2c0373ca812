"""`GET /api/dashboard/<name>`: the dashboard's data, from the named queries only.

The page names a query of `NAMED_QUERIES` and gives its filters in the query string
(`from`, `to`, `bucket`, `team`, `project`, `model`); `DashboardFilter.from_query` checks them
and ClickHouse binds them. No SQL comes from the page. Answers JSON with money as exact
strings: `{"query", "filter", "columns", "rows"}`; 400 says which parameter is wrong, 404 names
the queries there are. Runs in the /sql service's slots, bounded by the same `sql.*` limits, and
is protected by the same bearer token off loopback (stream/web_auth.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from meterline.budgets.outlook import BudgetThresholds, budget_outlook
from meterline.settings import BudgetConfig
from meterline.sinks.errors import QueryParameterError
from meterline.sinks.named_queries import NAMED_QUERIES, DashboardFilter
from meterline.sinks.query import QueryRows, json_value
from meterline.sinks.web import SqlService, answer_in_slot, error_response

API_PREFIX = "/api/dashboard/"
Clock = Callable[[], datetime]


def budget_thresholds(budgets: Sequence[BudgetConfig]) -> list[BudgetThresholds]:
    return [BudgetThresholds(b.key, tuple(b.thresholds)) for b in budgets]


def dashboard_body(
    name: str, flt: DashboardFilter, result: QueryRows, thresholds: Sequence[BudgetThresholds], now: datetime
) -> bytes:
    """The JSON answer for one named query's result (the budgets get their outlook)."""
    rows: list[dict[str, Any]] = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    if name == "budgets":
        rows = budget_outlook(rows, thresholds, now)
    body = {
        "query": name,
        "filter": {key: json_value(value) for key, value in flt.parameters().items()},
        "columns": result.columns,
        "rows": [{key: json_value(value) for key, value in row.items()} for row in rows],
    }
    return orjson.dumps(body)


def mount_dashboard_api(app: web.Application, service: SqlService, budgets: Sequence[BudgetConfig], now: Clock) -> None:
    """Route `/api/dashboard/{name}` on `app`, running queries in `service`'s slots."""
    thresholds = budget_thresholds(budgets)

    async def handle(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in NAMED_QUERIES:
            return error_response(
                404, f"no dashboard query {name[:40]!r}: use one of {', '.join(sorted(NAMED_QUERIES))}"
            )
        if len(request.query) != len(set(request.query)):
            return error_response(400, "give each parameter once")
        moment = now()
        try:
            flt = DashboardFilter.from_query(dict(request.query), today=moment.date())
        except QueryParameterError as exc:
            return error_response(400, str(exc))

        async def answer() -> web.Response:
            result = await service.run_named(name, flt.parameters())
            body = dashboard_body(name, flt, result, thresholds, moment)
            return web.Response(body=body, content_type="application/json", headers={"Cache-Control": "no-store"})

        return await answer_in_slot(service, answer)

    app.router.add_get(API_PREFIX + "{name}", handle)


def mount_dashboard_elsewhere(app: web.Application) -> None:
    """For a worker without the database (`--only stream`): say where the dashboard's data is."""

    async def handle(request: web.Request) -> web.Response:
        return error_response(
            503,
            "this worker runs only the stream and holds no database: open the dashboard on the worker "
            "that runs the sink (`meterline worker` or `meterline worker --only sink`)",
        )

    app.router.add_get(API_PREFIX + "{name}", handle)
