"""The worker's web routes for the dashboard (page, /api/dashboard/, /sql, bearer check) on loopback.

Serves them in a thread of the test process, as the worker's sink process does, on a chDB path
the test filled. `serve_dashboard(dsn, settings)` is a context manager yielding the base URL.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from aiohttp import web

from meterline.dashboard.page import mount_dashboard_page
from meterline.services.kafka_local import find_free_port
from meterline.settings import Settings
from meterline.sinks.client import open_client
from meterline.sinks.dashboard_api import mount_dashboard_api
from meterline.sinks.web import mount_sql
from meterline.stream.web_auth import bearer_middleware


@contextmanager
def serve_dashboard(dsn: str, settings: Settings, now: datetime) -> Iterator[str]:
    port = find_free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner_box: list[web.AppRunner] = []

    async def start() -> None:
        app = web.Application(middlewares=[bearer_middleware(settings.stream)])
        mount_dashboard_page(app)
        service = mount_sql(app, lambda: open_client(dsn), settings.sql)
        mount_dashboard_api(app, service, settings.budgets, lambda: now)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runner_box.append(runner)

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="dashboard-server", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the dashboard server did not start in 30 s")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
