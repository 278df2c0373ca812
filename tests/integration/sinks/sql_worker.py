"""Stands in for a worker: holds a chDB path and serves make_sql_handler on loopback.

Run by test_sql from the repository root: `python -m tests.integration.sinks.sql_worker DSN PORT`. Writes 200 sample events, prints READY,
and serves until stdin closes (then stops as the worker does: running queries are killed).
/sql has the worker's bearer check and `sql` limits, read from METERLINE_* variables; /healthz
answers while queries run.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from meterline.settings import load_settings
from meterline.sinks.client import open_client
from meterline.sinks.insert_plan import OffsetRange, RangeBatch, SourceRecord, plan_inserts
from meterline.sinks.migrations import apply_migrations
from meterline.sinks.web import mount_sql
from meterline.sinks.writer import write_batch
from meterline.stream.web_auth import bearer_middleware
from tests.support.samples import sample_priced_events


async def main(dsn: str, port: int) -> None:
    client = open_client(dsn)
    apply_migrations(client)
    events = sample_priced_events(200, seed=9)
    records = [
        SourceRecord("w.usage.priced", 0, i, None, e.model_dump_json().encode(), 0) for i, e in enumerate(events)
    ]
    for insert in plan_inserts("priced", RangeBatch(OffsetRange("w.usage.priced", 0, 0, 199), records)):
        write_batch(client, insert)
    settings = load_settings()
    app = web.Application(middlewares=[bearer_middleware(settings.stream)])
    mount_sql(app, lambda: open_client(dsn), settings.sql)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()
    client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
