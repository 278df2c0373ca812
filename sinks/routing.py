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
from typing import Literal
from urllib.parse import urlsplit

from meterline.settings import Settings, is_embedded_dsn
from meterline.sinks.client import open_client
from meterline.sinks.errors import ReadOnlyQueryError, SinkError
from meterline.sinks.query import limits_of, run_readonly_query

Via = Literal["direct", "worker"]


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


def worker_sql_url(settings: Settings) -> str:
    host = settings.stream.web_host
    if host in {"0.0.0.0", "::", ""}:  # listening everywhere: this machine answers on loopback
        host = "127.0.0.1"
    return f"http://{host}:{settings.stream.web_port}/sql"


def query_via_worker(settings: Settings, sql: str, fmt: str, timeout: float = 60.0) -> tuple[str, bytes]:
    """POST the query to the worker's /sql endpoint; ReadOnlyQueryError for a refused query."""
    url = worker_sql_url(settings)
    headers = {"Content-Type": "application/json"}
    token = settings.stream.web_token
    if token is not None and token.get_secret_value():
        headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    request = urllib.request.Request(url, data=json.dumps({"sql": sql, "format": fmt}).encode(), headers=headers)  # noqa: S310 - our own http:// URL
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
        raise WorkerUnreachableError(f"the worker at {url} answered {exc.code}: {message}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise WorkerUnreachableError(
            f"the embedded database {settings.effective_clickhouse_dsn} is held by another process, "
            f"and no worker answered at {url} ({getattr(exc, 'reason', exc)}). Stop the process holding it, "
            "or start `meterline worker` (its web endpoint serves /sql), or set stream.web_host/web_port."
        ) from exc


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
