"""Open a clickhouse-connect client for a DSN: embedded chDB or a ClickHouse server."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from meterline.errors import MeterlineError
from meterline.settings import is_embedded_dsn
from meterline.sinks.clickhouse_fence import ChdbClient


class ClickHouseUnavailableError(MeterlineError):
    """The ClickHouse engine named by the DSN could not be opened or did not answer."""

    def __init__(self, dsn: str, reason: str) -> None:
        super().__init__(
            f"cannot reach ClickHouse at {redact_dsn(dsn)}: {reason}. "
            "For the embedded engine, make sure no other process (a running `meterline worker`) "
            "holds the same chdb path; for a server, check host, port and credentials."
        )
        self.dsn = redact_dsn(dsn)


def redact_dsn(dsn: str) -> str:
    """The DSN with its password replaced by ***, safe to print."""
    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return dsn


def client_is_embedded(client: Client) -> bool:
    """True when `client` runs the embedded engine in this process (what its DSN said)."""
    return isinstance(client, ChdbClient)


def open_client(dsn: str, **settings: Any) -> Client:
    """A client for `dsn`; raises ClickHouseUnavailableError with a fix-it message.

    DateTime64('UTC') columns come back as timezone-aware datetimes (tz_mode="aware").
    """
    try:
        if is_embedded_dsn(dsn):
            path = urlsplit(dsn).path
            if path:
                Path(path).mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=dsn, settings=settings or None, tz_mode="aware")
    except (ClickHouseError, OSError) as exc:
        raise ClickHouseUnavailableError(dsn, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
