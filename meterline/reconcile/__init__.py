"""Reconcile meterline's stored usage with the provider's own usage and cost reports.

`reports` reads the provider's documented exports (OpenAI organization Usage and Costs API,
Anthropic Admin API usage and cost reports, as JSON or flattened to CSV) into `ProviderLine`s;
`matching` compares them with meterline's totals per UTC day x model (x scope). Both are pure;
the ClickHouse side lives in `meterline.sinks.reconcile_store` and the command in
`meterline.sinks.reconcile_cli`.

May import: the standard library and the core (`meterline.errors`); no component, no I/O.
"""
