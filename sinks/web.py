"""The worker's `/sql` endpoint: read-only SQL over HTTP while the worker holds the database.

Mount it on the worker's aiohttp app: `mount_sql(app, client_factory, settings.sql)`.
Requests: `POST /sql` with JSON `{"sql": "...", "format": "table|csv|json"}`, or
`GET /sql?q=...&format=...`. Answers 200 with the rendered rows, 400 with the reason for a
refused or failing query, 429 (with Retry-After) when `sql.max_concurrent` queries are running,
503 when ClickHouse cannot be opened or the worker is stopping. Authentication is the web
server's (stream/web_auth.py).

Each running query has a client of its own (chDB handles run queries side by side, measured:
`SELECT 1` answered in 1-4 ms while another handle ran `count()` over numbers(1e12), and the
sink's inserts went on), on threads of its own, so a heavy query blocks neither /healthz, the
sink nor other queries. Stopping kills the running queries (`KILL QUERY`, 0.1 s measured), so a
graceful stop does not wait for max_execution_time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from meterline.sinks.errors import ReadOnlyQueryError
from meterline.sinks.query import QUERY_TAG, QueryRows, limits_of, run_named_query, run_readonly_query

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from meterline.settings import SqlSettings

log = logging.getLogger(__name__)

SqlHandler = Callable[[web.Request], Awaitable[web.Response]]
T = TypeVar("T")
RETRY_AFTER_S = 1
CANCEL_ROUNDS = 50
CANCEL_PAUSE_S = 0.1


class SqlService:
    """Runs /sql queries: at most `max_concurrent` at once, each on its own client and thread."""

    def __init__(self, client_factory: Callable[[], Client], settings: SqlSettings | None = None) -> None:
        self._factory = client_factory
        self.limits = limits_of(settings)
        self.max_concurrent = settings.max_concurrent if settings is not None else 2
        self._lock = threading.Lock()
        self._idle: list[Client] = []
        self._running: set[str] = set()
        self._busy = 0
        self._closing = False
        self._control: Client | None = None
        self._executor = ThreadPoolExecutor(self.max_concurrent, thread_name_prefix="meterline-sql")

    def try_acquire(self) -> bool:
        """Take a slot for one query; False when all are taken or the service is stopping."""
        with self._lock:
            if self._closing or self._busy >= self.max_concurrent:
                return False
            self._busy += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._busy -= 1

    @property
    def closing(self) -> bool:
        return self._closing

    def query(self, sql: str, fmt: str) -> tuple[str, bytes]:
        """Run one /sql query in this thread, on an idle client (opened when there is none)."""
        return self.call(lambda client, query_id: run_readonly_query(client, sql, fmt, self.limits, query_id=query_id))

    def named(self, name: str, parameters: dict[str, object]) -> QueryRows:
        """Run one of the named queries (sinks/named_queries.py) in this thread."""
        return self.call(
            lambda client, query_id: run_named_query(client, name, parameters, self.limits, query_id=query_id)
        )

    def call(self, work: Callable[[Client, str], T]) -> T:
        """Run `work(client, query_id)` on an idle client; its query can be cancelled by id."""
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            client = self._factory()
        query_id = uuid.uuid4().hex
        with self._lock:
            if self._closing:
                self._idle.append(client)
                raise ReadOnlyQueryError("the worker is stopping; try again once it is back")
            self._running.add(query_id)
        try:
            return work(client, query_id)
        finally:
            with self._lock:
                self._running.discard(query_id)
                if self._closing:
                    _close_quietly(client)
                else:
                    self._idle.append(client)

    async def run(self, sql: str, fmt: str) -> tuple[str, bytes]:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.query, sql, fmt)

    async def run_named(self, name: str, parameters: dict[str, object]) -> QueryRows:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.named, name, parameters)

    def cancel_running(self) -> int:
        """KILL every query this service is running; return how many were asked to stop."""
        with self._lock:
            running = sorted(self._running)
        if not running:
            return 0
        if self._control is None:
            self._control = self._factory()
        for query_id in running:  # a hex uuid: safe in the pattern
            try:
                self._control.command(
                    f"KILL QUERY WHERE query LIKE '%{QUERY_TAG} {query_id}%' AND query NOT LIKE 'KILL%' ASYNC"
                )
            except Exception:  # it ends at max_execution_time anyway
                log.warning("could not cancel a running /sql query", exc_info=True)
        return len(running)

    def close(self) -> None:
        """Refuse new queries, kill the running ones, wait for their threads, close the clients."""
        with self._lock:
            self._closing = True
        cancelled = 0
        for _ in range(CANCEL_ROUNDS):  # a query may reach the engine just after a KILL went by
            if not self.cancel_running():
                break
            cancelled += 1
            time.sleep(CANCEL_PAUSE_S)
        if cancelled:
            log.info("cancelled the running /sql queries on stop")
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle + ([self._control] if self._control is not None else []):
            _close_quietly(client)
        self._control = None

    async def on_shutdown(self, app: Any = None) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)


def make_sql_handler(client_factory: Callable[[], Client], settings: SqlSettings | None = None) -> SqlHandler:
    """An aiohttp handler for /sql; its SqlService is `handler.service` (close it on shutdown)."""
    service = SqlService(client_factory, settings)

    async def handle(request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                payload = await request.json()
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                return error_response(400, 'send a JSON object: {"sql": "SELECT ...", "format": "table"}')
            sql, fmt = str(payload.get("sql", "")), str(payload.get("format", "table"))
        elif request.method == "GET":
            sql, fmt = request.query.get("q", ""), request.query.get("format", "table")
        else:
            return error_response(405, "use GET /sql?q=... or POST /sql with JSON")

        async def answer() -> web.Response:
            content_type, body = await service.run(sql, fmt)
            return web.Response(body=body, headers={"Content-Type": content_type})

        return await answer_in_slot(service, answer)

    handle.service = service  # type: ignore[attr-defined]  # the service rides on the handler: mount_sql stops it on shutdown
    return handle


async def answer_in_slot(service: SqlService, answer: Callable[[], Awaitable[web.Response]]) -> web.Response:
    """Run `answer` in one of the service's query slots: 429 when all are taken, 503 while
    stopping or when ClickHouse cannot be opened, 400 with the reason for a refused query."""
    if not service.try_acquire():
        if service.closing:
            return error_response(503, "the worker is stopping; try again once it is back")
        return error_response(
            429,
            f"{service.max_concurrent} queries are running already (sql.max_concurrent); try again shortly",
            {"Retry-After": str(RETRY_AFTER_S)},
        )
    try:
        return await answer()
    except ReadOnlyQueryError as exc:
        return error_response(400, str(exc))
    except Exception as exc:  # noqa: BLE001 - the engine could not be opened
        return error_response(503, f"ClickHouse is not available to the worker: {exc}")
    finally:
        service.release()


def mount_sql(
    app: web.Application, client_factory: Callable[[], Client], settings: SqlSettings | None = None
) -> SqlService:
    """Route /sql on `app`, and cancel its running queries when the app shuts down."""
    handler = make_sql_handler(client_factory, settings)
    app.router.add_route("*", "/sql", handler)
    service: SqlService = handler.service  # type: ignore[attr-defined]  # set by make_sql_handler above
    app.on_shutdown.append(service.on_shutdown)
    return service


def _close_quietly(client: Any) -> None:
    try:
        client.close()
    except Exception:  # closing on the way down
        log.debug("closing a /sql client failed", exc_info=True)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain", headers=headers)
