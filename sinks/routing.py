"""Where a read-only query runs: on the DSN directly, or through the worker holding it.

chDB lets one process open a path. When a worker holds the embedded database, the query is
sent to the worker's `/sql` endpoint instead (loopback by default).
"""

from __future__ import annotations

import errno
import fcntl
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode, urlsplit

from meterline.settings import Settings, is_embedded_dsn
from meterline.sinks.client import open_client
from meterline.sinks.errors import ReadOnlyQueryError, SinkError
from meterline.sinks.named_queries import DashboardFilter
from meterline.sinks.query import json_value, limits_of, run_named_query, run_readonly_query

if TYPE_CHECKING:
    from meterline.pricing.reprice import RepriceScope
    from meterline.sinks.reprice import RepriceRun

Via = Literal["direct", "worker"]
REPRICE_TIMEOUT_S = 3600.0
"""How long the CLI waits for a reprice the worker runs (one answer at the end)."""


class WorkerUnreachableError(SinkError):
    """The embedded database is held by another process whose /sql endpoint did not answer."""


def embedded_path(dsn: str) -> Path:
    return Path(urlsplit(dsn).path)


def embedded_path_is_held(path: Path) -> bool:
    """True when another process holds the chDB path (ClickHouse's lock on `<path>/status`)."""
    status = path / "status"
    if not status.exists():
        return False
    with status.open("rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return True
            raise
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def refuse_when_held(dsn: str, command: str) -> None:
    """Raise SinkError saying what to do when a worker (or another process) holds the embedded `dsn`:
    `command` writes, and only read-only SQL goes through the worker."""
    if is_embedded_dsn(dsn) and embedded_path_is_held(embedded_path(dsn)):
        raise SinkError(
            f"a running `meterline worker` (or another process) holds the embedded database {dsn}: "
            f"stop it, run `meterline {command}` again, then start the worker"
        )


def worker_url(settings: Settings, path: str = "/sql") -> str:
    host = settings.stream.web_host
    if host in {"0.0.0.0", "::", ""}:  # listening everywhere: this machine answers on loopback
        host = "127.0.0.1"
    return f"http://{host}:{settings.stream.web_port}{path}"


def post_to_worker(settings: Settings, path: str, payload: dict[str, Any], timeout: float) -> tuple[str, bytes]:
    """POST JSON to one of the worker's endpoints; (content type, body), or the SinkError saying why not.

    A 400 is the worker refusing the request itself (ReadOnlyQueryError carries its reason)."""
    return _ask_worker(settings, worker_url(settings, path), json.dumps(payload).encode(), timeout)


def _ask_worker(settings: Settings, url: str, body: bytes | None, timeout: float) -> tuple[str, bytes]:
    """POST `body` (GET when None) to the worker at `url`, with its token."""
    headers = {"Content-Type": "application/json"}
    token = settings.stream.web_token
    if token is not None and token.get_secret_value():
        headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 - our own http:// URL
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - our own http:// URL
            return response.headers.get("Content-Type", "text/plain"), response.read()
    except urllib.error.HTTPError as exc:
        message = exc.read().decode("utf-8", "replace").strip()
        if exc.code == 400:
            raise ReadOnlyQueryError(message) from exc
        if exc.code == 401:
            raise WorkerUnreachableError(
                f"the worker at {url} wants its token: set METERLINE_STREAM__WEB_TOKEN to the worker's stream.web_token"
            ) from exc
        if exc.code == 429:
            raise WorkerUnreachableError(f"the worker at {url} is busy: {message}") from exc
        if exc.code in (403, 409):
            raise WorkerUnreachableError(f"the worker at {url} refused: {message}") from exc
        raise WorkerUnreachableError(f"the worker at {url} answered {exc.code}: {message}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise WorkerUnreachableError(
            f"the embedded database {settings.effective_clickhouse_dsn} is held by another process, "
            f"and no worker answered at {url} ({getattr(exc, 'reason', exc)}). Stop the process holding it, "
            "or start `meterline worker` (its web endpoint serves /sql and /reprice), or set stream.web_host/web_port."
        ) from exc


def query_via_worker(settings: Settings, sql: str, fmt: str, timeout: float = 60.0) -> tuple[str, bytes]:
    """POST the query to the worker's /sql endpoint; ReadOnlyQueryError for a refused query."""
    return post_to_worker(settings, "/sql", {"sql": sql, "format": fmt}, timeout)


def reprice_via_worker(settings: Settings, scope: RepriceScope, *, apply: bool, budgets: bool) -> RepriceRun:
    """Run `meterline reprice` in the worker holding the embedded database (its /reprice endpoint)."""
    from meterline.sinks.reprice import run_from_json
    from meterline.sinks.reprice_web import request_json

    payload = request_json(scope, apply=apply, budgets=budgets)
    try:
        _, body = post_to_worker(settings, "/reprice", payload, timeout=REPRICE_TIMEOUT_S)
    except ReadOnlyQueryError as exc:  # the worker's 400: the request itself was wrong
        raise SinkError(f"the worker refused the reprice: {exc}") from exc
    return run_from_json(json.loads(body))


def run_named(settings: Settings, name: str, flt: DashboardFilter) -> list[dict[str, Any]]:
    """One named query's rows where it can run, as JSON values (money as exact strings): on the
    DSN directly, or through the worker's /api/dashboard/ while it holds the embedded database."""
    dsn = settings.effective_clickhouse_dsn
    if is_embedded_dsn(dsn) and embedded_path_is_held(embedded_path(dsn)):
        url = worker_url(settings, f"/api/dashboard/{name}?{urlencode(flt.query())}")
        _, body = _ask_worker(settings, url, None, 60.0)
        rows: list[dict[str, Any]] = json.loads(body)["rows"]
        return rows
    client = open_client(dsn)
    try:
        result = run_named_query(client, name, flt.parameters(), limits_of(settings.sql))
    finally:
        client.close()
    return [
        {column: json_value(value) for column, value in zip(result.columns, row, strict=True)} for row in result.rows
    ]


def run_sql(settings: Settings, sql: str, fmt: str) -> tuple[str, bytes, Via]:
    """Run a read-only query where it can run; return (content type, body, how it ran)."""
    dsn = settings.effective_clickhouse_dsn
    if is_embedded_dsn(dsn) and embedded_path_is_held(embedded_path(dsn)):
        content_type, body = query_via_worker(settings, sql, fmt)
        return content_type, body, "worker"
    client = open_client(dsn)
    try:
        content_type, body = run_readonly_query(client, sql, fmt, limits_of(settings.sql))
    finally:
        client.close()
    return content_type, body, "direct"
