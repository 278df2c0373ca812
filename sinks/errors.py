"""Errors of meterline.sinks; each message says what to do."""

from __future__ import annotations

from meterline.errors import MeterlineError


class SinkError(MeterlineError):
    """Root of the ClickHouse sink's errors."""


class MigrationError(SinkError):
    """A schema migration could not be applied, or a shipped migration was edited."""


class SinkWriteError(SinkError):
    """A batch could not be written to ClickHouse; retryable: offsets stay uncommitted."""

    def __init__(self, table: str | None, reason: str) -> None:
        what = f"writing to ClickHouse table {table}" if table else "opening ClickHouse"
        super().__init__(
            f"{what} failed: {reason}. The sink holds its Kafka "
            "offsets and retries with backoff; check that the ClickHouse server answers (or "
            "that the table exists: run `meterline migrate`)."
        )
        self.table = table
        self.reason = reason


class ReadOnlyQueryError(SinkError):
    """A query given to `meterline sql` would write or change the schema, or it failed."""
