"""meterline.sinks: the ClickHouse schema (migrations), the batched idempotent sink, read-only SQL."""

from meterline.sinks.migrations import Migration, apply_migrations

__all__ = ["Migration", "apply_migrations"]
