"""`meterline worker`: the stream agents, the ClickHouse sink and the alert dispatcher.

By default all three run under one command: the stream in this process, the sink and the
dispatcher in a child process that owns the ClickHouse connection (the embedded chDB database
can be opened by one process only; see sidecar.py), or all in one process with
`stream.processes = 1`. `only` picks one part, to scale out with a ClickHouse server.
The stream part runs on faust's worker (its event loop and web server, which also serves
/healthz, /metrics and /sql); the sink and the dispatcher run on their own threads.
SIGTERM/SIGINT stop everything cleanly.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from meterline.gc_control import tune_for_service
from meterline.settings import Settings
from meterline.stream.logs import configure_logging
from meterline.stream.sidecar import REPRICE_PROXY_TIMEOUT_S, Sidecar, make_child_proxy
from meterline.stream.topics import ensure_topics

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

Part = Literal["stream", "sink", "alerts"]
PARTS: tuple[Part, ...] = ("stream", "sink", "alerts")


class Component:
    """A thread-based part of the worker (SinkRunner, AlertDispatcher) with its health check."""

    def __init__(self, name: str, service: Any) -> None:
        self.name = name
        self.service = service

    def check(self) -> tuple[str, bool]:
        return self.name, bool(self.service.healthy())


def _client_factory(settings: Settings) -> Callable[[], Client]:
    def factory() -> Client:
        from meterline.sinks.client import open_client

        return open_client(settings.effective_clickhouse_dsn)

    return factory


def _migrate(settings: Settings) -> None:
    from meterline.sinks import apply_migrations

    client = _client_factory(settings)()
    try:
        apply_migrations(client, ttl_days=settings.sink.ttl_days)
    finally:
        client.close()


def _start_components(settings: Settings, parts: set[Part]) -> list[Component]:
    components: list[Component] = []
    if "sink" in parts:
        from meterline.sinks.runner import SinkRunner

        sink = SinkRunner(settings, client_factory=_client_factory(settings))
        sink.start()
        components.append(Component("sink", sink))
    if "alerts" in parts:
        from meterline.alerts.dispatcher import AlertDispatcher

        dispatcher = AlertDispatcher(settings, client_factory=_client_factory(settings))
        dispatcher.start()
        components.append(Component("alerts", dispatcher))
    return components


def _stop_components(components: list[Component]) -> None:
    for component in reversed(components):
        try:
            component.service.stop()
        except Exception:  # stop the others anyway
            log.exception("stopping %s failed", component.name)


def run_worker(
    settings: Settings, only: Part | None = None, *, parts: set[Part] | None = None, log_level: str = "info"
) -> int:
    """Run the worker until SIGTERM/SIGINT; return the exit code.

    `only` runs one part; `parts` (internal) a set of them. With all three and
    `stream.processes` = 2 (the default), the sink and the dispatcher run in a child process
    (see sidecar.py) and this one runs the stream.
    """
    configure_logging(log_level)
    from meterline.stream.web_auth import check_web_binding

    check_web_binding(settings.stream)
    if parts is None:
        parts = {only} if only else set(PARTS)
    ensure_topics(settings)
    split = parts == set(PARTS) and settings.stream.processes == 2
    local: set[Part] = {"stream"} if split else parts
    if local & {"sink", "alerts"}:
        _migrate(settings)
    components = _start_components(settings, local)
    sidecar = None
    if split:
        sidecar = Sidecar(settings, log_level, run_child_parts).start()
    log.info(
        "worker starting",
        extra={"parts": ",".join(sorted(parts)), "prefix": settings.topic_prefix, "processes": 2 if split else 1},
    )
    try:
        if "stream" in local:
            return _run_stream(settings, components, log_level, sidecar)
        return _run_web_only(settings, components)
    finally:
        if sidecar is not None:
            sidecar.stop()
        _stop_components(components)
        log.info("worker stopped")


def run_child_parts(settings: Settings, parts: set[str], log_level: str) -> int:
    """The sidecar's child process: the named parts (the sink and the dispatcher)."""
    return run_worker(settings, parts={part for part in PARTS if part in parts}, log_level=log_level)


def _mount_sql(app: Any, settings: Settings) -> None:
    """/sql, /reprice and the dashboard's data: what the process holding the database serves."""
    from meterline.sinks.dashboard_api import mount_dashboard_api
    from meterline.sinks.reprice_web import mount_reprice
    from meterline.sinks.web import mount_sql

    service = mount_sql(app, _client_factory(settings), settings.sql)
    mount_reprice(app, settings, _client_factory(settings))
    mount_dashboard_api(app, service, settings.budgets, lambda: datetime.now(UTC))


def _mount_page(app: Any) -> None:
    from meterline.dashboard.page import mount_dashboard_page

    mount_dashboard_page(app)


def _protect(app: Any, settings: Settings) -> None:
    from meterline.stream.web_auth import bearer_middleware

    app.middlewares.append(bearer_middleware(settings.stream))


def _run_stream(settings: Settings, components: list[Component], log_level: str, sidecar: Sidecar | None) -> int:
    from faust import Worker

    from meterline.stream.app import StreamApp

    stream = StreamApp(settings)
    stream.health_checks.extend(c.check for c in components)
    web_app = stream.app.web.web_app  # type: ignore[attr-defined]  # faust's aiohttp driver has it, its base Web does not say so
    router = web_app.router
    _protect(web_app, settings)
    _mount_page(web_app)
    if any(c.name == "sink" for c in components):
        _mount_sql(web_app, settings)
    if sidecar is not None:
        from meterline.sinks.dashboard_api import API_PREFIX

        stream.health_checks.extend(sidecar.checks())
        proxy = make_child_proxy(sidecar)
        router.add_route("*", "/sql", proxy)
        router.add_get(API_PREFIX + "{name}", proxy)
        router.add_route("POST", "/reprice", make_child_proxy(sidecar, REPRICE_PROXY_TIMEOUT_S))
    elif not any(c.name == "sink" for c in components):
        from meterline.sinks.dashboard_api import mount_dashboard_elsewhere

        mount_dashboard_elsewhere(web_app)
    worker = Worker(stream.app, quiet=True, loglevel="warning", logging_config=None, redirect_stdouts=False)

    # faust's own logging setup replaced our handler: put ours back on top.
    def on_setup_root_logger(*_args: Any, **_kwargs: Any) -> None:
        configure_logging(log_level)

    worker.on_setup_root_logger = on_setup_root_logger  # type: ignore[method-assign]  # faust's hook, meant to be replaced
    tune_for_service()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return 1 if stream.fatal is not None else int(exc.code or 0)
    return 1 if stream.fatal is not None else 0


def _run_web_only(settings: Settings, components: list[Component]) -> int:
    """The sink or the dispatcher alone: a small aiohttp server for /healthz, /metrics, /sql."""
    from aiohttp import web

    async def healthz(request: web.Request) -> web.Response:
        parts = dict(c.check() for c in components)
        ok = all(parts.values())
        return web.json_response({"ok": ok, "components": parts}, status=200 if ok else 503)

    async def metrics(request: web.Request) -> web.Response:
        lines = []
        for component in components:
            for name, value in getattr(component.service, "stats", {}).items():
                metric = f"meterline_{component.name}_{name}_total"
                lines += [f"# TYPE {metric} counter", f"{metric} {value}"]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def main() -> None:
        app = web.Application()
        _protect(app, settings)
        _mount_page(app)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/metrics", metrics)
        if any(c.name == "sink" for c in components):
            _mount_sql(app, settings)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, settings.stream.web_host, settings.stream.web_port)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    tune_for_service()
    asyncio.run(main())
    return 0
