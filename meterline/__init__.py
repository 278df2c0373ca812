"""meterline: turn every LLM call into a priced, queryable fact within seconds."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("meterline")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
