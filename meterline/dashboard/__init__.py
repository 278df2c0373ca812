"""The read-only dashboard the worker serves at `/`: a static page (package data, Chart.js
vendored, no CDN) whose data comes from `/api/dashboard/<query>` (sinks/dashboard_api.py).

Modules: `page` (serves the page and its files). `static/` holds index.html, dashboard.js,
dashboard.css and `vendor/` (Chart.js and its license).

May import: the core and aiohttp; no component (the page holds no data).
"""
