"""meterline.alerts: deliver AlertEvents from the `alerts` topic to Slack, email and the console.

Pure logic: `routing` (alert -> destinations), `view` + `slack_render` + `email_render`
(what a message says and how it is laid out), `retry`, `classify`, `ratelimit`, `offsets`.
I/O at the edges: `slack`, `smtp`, `console` (channels), `store` (ClickHouse alert_deliveries),
`delivery` (one task per destination), `dispatcher` (`AlertDispatcher`, for `meterline worker`).
"""
