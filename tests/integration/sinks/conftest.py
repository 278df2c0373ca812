"""`sink_dsn`: the sink suite runs on the embedded engine and on a ClickHouse server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.docker)])
def sink_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database: a chDB path, or a new database on the testcontainers server."""
    if request.param == "embedded":
        yield request.getfixturevalue("chdb_dsn")
        return
    server_dsn: str = request.getfixturevalue("clickhouse_server_dsn")
    from meterline.sinks.client import open_client

    database = f"t_{uuid.uuid4().hex[:12]}"
    admin = open_client(server_dsn)
    admin.command(f"CREATE DATABASE {database}")
    try:
        yield urlsplit(server_dsn)._replace(path=f"/{database}").geturl()
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        admin.close()


@pytest.fixture
def sink_client(sink_dsn: str):
    """A client on `sink_dsn` with the schema applied; closed after the test."""
    from meterline.sinks.client import open_client
    from meterline.sinks.migrations import apply_migrations

    client = open_client(sink_dsn)
    apply_migrations(client)
    try:
        yield client
    finally:
        client.close()
