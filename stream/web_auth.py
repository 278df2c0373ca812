"""Who may use the worker's web endpoint: a bearer token for /sql, /metrics and /reprice.

/healthz stays open (orchestrators probe it), and so do the dashboard's page and scripts (`/`,
`/dashboard/...`), which hold no data. With `stream.web_token` set, /sql, /metrics, the
dashboard's data (`/api/...`) and faust's table views (`/table`, `/router`) require
`Authorization: Bearer <token>` (compared in constant time); /reprice, which writes, is refused
outright while no token is set (sinks/reprice_web.py). Without a token the
endpoint may bind loopback only: `check_web_binding` refuses any other address at start.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

from meterline.errors import ConfigError
from meterline.settings import StreamSettings

PROTECTED_PATHS = ("/sql", "/metrics", "/reprice")
# faust's own /table and /router views read table contents and the cluster's layout: data too.
PROTECTED_PREFIXES = ("/api/", "/table", "/router")


def is_protected(path: str) -> bool:
    """True for the paths that answer with data or write: /sql, /metrics, /reprice, /api/...,
    faust's /table and /router."""
    return path.rstrip("/") in PROTECTED_PATHS or path.startswith(PROTECTED_PREFIXES)


def is_loopback(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1; False for 0.0.0.0, `::`, names, other addresses."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_web_binding(stream: StreamSettings) -> None:
    """ConfigError when the web endpoint would listen beyond loopback without a token."""
    if is_loopback(stream.web_host) or stream.web_token is not None and stream.web_token.get_secret_value():
        return
    raise ConfigError(
        f"stream.web_host is {stream.web_host}, beyond loopback, and no token protects /sql and /metrics. "
        "Set one, e.g. `export METERLINE_STREAM__WEB_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')` "
        "(the CLI sends it too), or listen on 127.0.0.1."
    )


def token_matches(header: str | None, token: str) -> bool:
    """True when the Authorization header carries the bearer token (constant-time compare)."""
    expected = f"Bearer {token}".encode()
    return hmac.compare_digest((header or "").encode(), expected)


def bearer_middleware(stream: StreamSettings) -> Any:
    """An aiohttp middleware requiring the token on PROTECTED_PATHS when one is configured."""
    from aiohttp import web

    secret = stream.web_token.get_secret_value() if stream.web_token is not None else ""

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        if secret and is_protected(request.path) and not token_matches(request.headers.get("Authorization"), secret):
            return web.Response(
                status=401,
                text="send the worker's token: Authorization: Bearer <stream.web_token> (METERLINE_STREAM__WEB_TOKEN)\n",
                content_type="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="meterline"'},
            )
        return await handler(request)

    return middleware
