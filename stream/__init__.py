"""meterline.stream: the faust worker that validates, de-duplicates, prices and budgets events.

Pure logic: `validate` (dead letters), `dedup`, `offsets` (batch continuity), `processor` (one
batch in, every effect out, in order). I/O: `app` (the faust app and the batch contract),
`faust_fence` (every faust internal the worker touches), `topics`, `changelog`, `source_check`,
`worker` + `sidecar` (`meterline worker` and its sink-and-alerts child), `web_auth`, `logs`,
`metrics`.

May import: the core, faust, and the sinks and alerts packages (the worker hosts the sink and
the dispatcher); never producers.
"""
