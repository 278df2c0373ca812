"""Serve the dashboard's page and its static files (package data, no CDN: works offline).

Only the files named in `STATIC_FILES` are served, never a path taken from the request. The
page holds no data: it fetches `/api/dashboard/<query>`, which wants the worker's bearer token
off loopback. A strict Content-Security-Policy allows scripts, styles and requests to this
origin only.
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

STATIC_FILES = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "chart.umd.min.js": "text/javascript",
}
CHART_JS_VERSION = "4.5.1"
"""The Chart.js build shipped in static/vendor (npm chart.js, MIT license beside it)."""
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def static_bytes(name: str) -> bytes:
    """One file of the page: index.html, a name of STATIC_FILES (vendor files included)."""
    root = files("meterline.dashboard") / "static"
    path = root / "vendor" / name if name == "chart.umd.min.js" else root / name
    return path.read_bytes()


def mount_dashboard_page(app: web.Application) -> None:
    """Route `/` (the page) and `/dashboard/{file}` (its scripts and style) on `app`."""
    index = static_bytes("index.html")
    assets = {name: static_bytes(name) for name in STATIC_FILES}

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=index, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if name not in assets:
            raise web.HTTPNotFound(text=f"no dashboard file {name[:40]!r}\n")
        return web.Response(body=assets[name], content_type=STATIC_FILES[name], headers=SECURITY_HEADERS)

    app.router.add_get("/", page)
    app.router.add_get("/dashboard/{file}", asset)
