"""The worker's `/reprice` endpoint: `meterline reprice` while the worker holds the database.

A narrow door, not SQL: `POST /reprice` with JSON `{"since": ISO time, "until": ISO time or
null, "team", "model", "provider": text or null, "apply": bool, "budgets": bool}`, checked
field by field (nothing else is accepted). It always wants the worker's bearer token
(`stream.web_token`), on loopback too, since it writes: without a token configured it answers
403 saying how to set one. One run at a time (409 while one runs); the run is the CLI's own
(sinks/reprice_service.py) on a client of its own, beside the sink's inserts. Answers 200 with
the run (sinks.reprice.run_json), 400 with the reason for a bad request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Annotated, Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints, ValidationError

from meterline.errors import MeterlineError
from meterline.pricing.reprice import RepriceScope

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from meterline.settings import Settings

log = logging.getLogger(__name__)

Filter = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class RepriceRequest(BaseModel):
    """The body of POST /reprice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: AwareDatetime
    until: AwareDatetime | None = None
    team: Filter | None = None
    model: Filter | None = None
    provider: Filter | None = None
    apply: bool = False
    budgets: bool = True

    def scope(self) -> RepriceScope:
        return RepriceScope(
            since=self.since, until=self.until, team=self.team, model=self.model, provider=self.provider
        )


def request_json(scope: RepriceScope, *, apply: bool, budgets: bool) -> dict[str, Any]:
    """The body the CLI sends for a scope (the inverse of RepriceRequest.scope)."""
    return {
        "since": scope.since.isoformat(),
        "until": None if scope.until is None else scope.until.isoformat(),
        "team": scope.team,
        "model": scope.model,
        "provider": scope.provider,
        "apply": apply,
        "budgets": budgets,
    }


class RepriceService:
    """Runs one /reprice at a time on its own thread and client."""

    def __init__(self, settings: Settings, client_factory: Callable[[], Client]) -> None:
        self.settings = settings
        self._factory = client_factory
        self._running = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="meterline-reprice")

    def run(self, request: RepriceRequest) -> dict[str, Any]:
        from meterline.pricing.catalog import PriceCatalog
        from meterline.sinks.reprice import run_json
        from meterline.sinks.reprice_service import execute_reprice

        catalog = PriceCatalog.load(self.settings.pricing)
        client = self._factory()
        try:
            run = execute_reprice(
                self.settings, client, catalog, request.scope(), apply=request.apply, budgets=request.budgets
            )
        finally:
            client.close()
        log.info(
            "reprice run through the worker",
            extra={"run_id": run.run_id, "applied": run.applied, "changed": run.tally.total().changed},
        )
        return run_json(run)

    async def handle(self, request: web.Request) -> web.Response:
        token = self.settings.stream.web_token
        if token is None or not token.get_secret_value():
            return _text(
                403,
                "re-pricing through the worker writes, so it wants a token: set stream.web_token on the worker "
                "(METERLINE_STREAM__WEB_TOKEN) and the same variable for the CLI",
            )
        try:
            body = RepriceRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
            return _text(400, f"not a reprice request: {problems}")
        if not self._running.acquire(blocking=False):
            return _text(409, "a reprice is running in this worker already; try again when it has finished")
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._executor, self.run, body)
        except MeterlineError as exc:
            return _text(503, str(exc))
        finally:
            self._running.release()
        return web.json_response(result)

    async def on_shutdown(self, app: Any = None) -> None:
        await asyncio.get_running_loop().run_in_executor(None, lambda: self._executor.shutdown(wait=True))


def mount_reprice(app: web.Application, settings: Settings, client_factory: Callable[[], Client]) -> RepriceService:
    """Route POST /reprice on `app` (the bearer middleware guards it: stream.web_auth)."""
    service = RepriceService(settings, client_factory)
    app.router.add_post("/reprice", service.handle)
    app.on_shutdown.append(service.on_shutdown)
    return service


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")
