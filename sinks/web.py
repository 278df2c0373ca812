"""The worker's `/sql` endpoint: read-only SQL over HTTP while the worker holds the database.

Mount it on the worker's aiohttp server: `app.router.add_route("*", "/sql", make_sql_handler(f))`.
Requests: `POST /sql` with JSON `{"sql": "...", "format": "table|csv|json"}`, or
`GET /sql?q=...&format=...`. Answers 200 with the rendered rows, 400 with the reason for a
refused or failing query, 503 when ClickHouse cannot be opened.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from meterline.sinks.errors import ReadOnlyQueryError
from meterline.sinks.query import run_readonly_query

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

SqlHandler = Callable[[web.Request], Awaitable[web.Response]]


def make_sql_handler(client_factory: Callable[[], Client]) -> SqlHandler:
    """An aiohttp handler running read-only queries on one lazily opened client."""
    lock = threading.Lock()
    holder: list[Client] = []

    def query(sql: str, fmt: str) -> tuple[str, bytes]:
        # One client, one query at a time: a chDB handle serves one call at a time anyway.
        with lock:
            if not holder:
                holder.append(client_factory())
            return run_readonly_query(holder[0], sql, fmt)

    async def handle(request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                payload = await request.json()
            except ValueError:
                return _error(400, 'send JSON: {"sql": "SELECT ...", "format": "table"}')
            sql, fmt = str(payload.get("sql", "")), str(payload.get("format", "table"))
        elif request.method == "GET":
            sql, fmt = request.query.get("q", ""), request.query.get("format", "table")
        else:
            return _error(405, "use GET /sql?q=... or POST /sql with JSON")
        try:
            content_type, body = await asyncio.to_thread(query, sql, fmt)
        except ReadOnlyQueryError as exc:
            return _error(400, str(exc))
        except Exception as exc:  # noqa: BLE001 - the engine could not be opened
            return _error(503, f"ClickHouse is not available to the worker: {exc}")
        return web.Response(body=body, headers={"Content-Type": content_type})

    return handle


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")
