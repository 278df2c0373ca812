"""`meterline demo`: the whole pipeline on one machine, in one command.

The demo writes a `meterline.toml` (five teams, daily and monthly budgets), starts (or reuses)
the local Kafka, a local SMTP capture and `meterline worker` on the embedded ClickHouse, drives
seeded traffic with a live display, and ends with a cost report read from ClickHouse by SQL.

Modules: `config` (the demo's meterline.toml, pure), `plan` (what the traffic will cost),
`mailcapture` (the SMTP capture process), `processes` (starting and stopping what runs),
`queries` (the SQL the display and the report read), `display` and `report` (rendering),
`run` (the orchestrator), `cli` (the commands).

May import: anything: the demo sits on top, beside the CLI.
"""
