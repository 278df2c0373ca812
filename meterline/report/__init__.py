"""`meterline report`: a chargeback/showback report of one month, from the named queries.

Pure logic: `model` (the figures, exact Decimals), `render` (CSV, Markdown, self-contained
HTML). I/O: `cli` (reads through sinks.routing: the database directly, or the worker).

May import: the core, sinks (its named queries and routing) and the dashboard's vendored
Chart.js; never the stream, alerts or producers.
"""
