"""meterline: turn every LLM call into a priced, queryable fact within seconds.

This folder is the shared core: the event schema (`events`) and its byte checks (`event_check`),
the wire messages between components (`messages`, `priced_json`), settings, money, the price
catalog and its re-pricing rules (`pricing/`), budget rules and price corrections (`budgets/`),
reading and matching providers' usage and cost reports (`reconcile/`), backoff, fault points, the CLI (`cli`,
`core_cli`, `cli_support`), the local Kafka (`services/`), the demo (`demo/`), the dashboard's
page (`dashboard/`) and the chargeback report (`report/`).

May import: the standard library and the libraries in pyproject.toml. The core modules import no
component (producers, stream, sinks, alerts); only the CLI, `services`, `demo`, `dashboard` and
`report` sit above them.
pyproject.toml's [tool.importlinter] contracts check this in scripts/test.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("meterline")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
