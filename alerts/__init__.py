"""meterline.alerts: deliver AlertEvents from the `alerts` topic to Slack, email and the console.

Pure logic: `destinations` (alert -> destinations), `view` + `slack_render` + `email_render`
(what a message says and how it is laid out), `retry`, `classify`, `ratelimit`,
`delivery_offsets`. I/O at the edges: `slack`, `smtp`, `console` (channels), `store` (ClickHouse
alert_deliveries), `delivery` (one task per destination), `dispatcher` (`AlertDispatcher`, for
`meterline worker`).

May import: the core, slack-sdk, aiosmtplib, kafka-python, and sinks (the delivery log lives in
ClickHouse); never the stream or producers.
"""
