"""Errors of meterline.sinks; each message says what to do."""

from __future__ import annotations

from meterline.errors import MeterlineError


class SinkError(MeterlineError):
    """Root of the ClickHouse sink's errors."""


class MigrationError(SinkError):
    """A schema migration could not be applied, or a shipped migration was edited."""


class SinkWriteError(SinkError):
    """A write did not land in ClickHouse; the subclass says whether to retry it or split it."""

    def __init__(self, table: str | None, reason: str, code: int | None = None, *, message: str | None = None) -> None:
        super().__init__(message or f"{_what(table)} failed: {reason}")
        self.table = table
        self.reason = reason
        self.code = code
        """ClickHouse's error code, when the engine gave one."""


class TransientWriteError(SinkWriteError):
    """ClickHouse did not take a write for a cause of its own (away, overloaded, a table
    missing): retried with backoff while the offsets stay uncommitted."""

    def __init__(self, table: str | None, reason: str, code: int | None = None) -> None:
        super().__init__(
            table,
            reason,
            code,
            message=f"{_what(table)} failed{_code(code)}: {reason}. The sink holds its Kafka offsets and "
            "retries with backoff; check that the ClickHouse server answers (or that the table exists: run "
            "`meterline migrate`).",
        )


class PermanentWriteError(SinkWriteError):
    """ClickHouse refused a write for its data (its shape or a value): the same rows would be
    refused again, so the sink splits them and dead-letters a row that can never be written."""

    def __init__(self, table: str | None, reason: str, code: int | None = None) -> None:
        super().__init__(
            table,
            reason,
            code,
            message=f"ClickHouse refused the rows for table {table}{_code(code)}: {reason}. The sink splits the "
            "insert and sends a row it can never write to dlq_events (error_kind 'unwritable').",
        )


def _what(table: str | None) -> str:
    return f"writing to ClickHouse table {table}" if table else "opening ClickHouse"


def _code(code: int | None) -> str:
    return "" if code is None else f" (code {code})"


class ReadOnlyQueryError(SinkError):
    """A query given to `meterline sql` would write or change the schema, or it failed."""


class QueryParameterError(ReadOnlyQueryError):
    """A named query was asked for by a name that does not exist, or with a value it cannot take."""
