"""Structured logs for the worker: one line per record, `key=value` fields after the message."""

from __future__ import annotations

import logging
import sys

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
QUIET_LOGGERS = ("faust", "mode", "aiokafka", "kafka", "aiohttp", "asyncio")


class KeyValueFormatter(logging.Formatter):
    """`2026-11-28T03:00:00 INFO meterline.stream.processor alert fired alert_id=ml/daily/...`."""

    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname} {record.name} {record.getMessage()}"
        fields = " ".join(f"{k}={_quote(v)}" for k, v in record.__dict__.items() if k not in _STANDARD)
        text = f"{base} {fields}" if fields else base
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _quote(value: object) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


def configure_logging(level: str = "info", library_level: str = "warning") -> logging.Handler:
    """meterline's loggers at `level`, faust/aiokafka and friends at `library_level` (to stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(library_level.upper())
    logging.getLogger("meterline").setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(library_level.upper())
    return handler
