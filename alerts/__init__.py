"""meterline.alerts: deliver AlertEvents from the `alerts` topic to Slack, email, a signed
webhook, PagerDuty and the console.

Pure logic: `destinations` (alert -> destinations), `view` + `slack_render` + `email_render` +
`webhook_render` + `pagerduty_render` (what a message says and how it is laid out; when a
PagerDuty incident is resolved), `retry`, `classify`, `ratelimit`, `delivery_offsets`. I/O at the
edges: `slack`, `smtp`, `webhook`, `pagerduty` (over `http_post`), `console` (channels), `store` (ClickHouse
alert_deliveries), `delivery` (one task per destination), `dispatcher` (`AlertDispatcher`, for
`meterline worker`).

May import: the core, slack-sdk, aiosmtplib, aiohttp, kafka-python, and sinks (the delivery log lives in
ClickHouse); never the stream or producers.
"""
