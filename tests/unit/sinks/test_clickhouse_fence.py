"""The installed clickhouse-connect still has what sinks/clickhouse_fence.py takes from it."""

from __future__ import annotations

from pathlib import Path

from clickhouse_connect.driver.httpclient import HttpClient

from meterline.sinks.client import client_is_embedded, open_client


def test_an_embedded_client_is_the_fenced_class_and_a_server_client_is_not(tmp_path: Path) -> None:
    client = open_client(f"chdb://{tmp_path / 'db'}")
    try:
        assert client_is_embedded(client)
    finally:
        client.close()
    # A server's client, made without __init__ (which would connect to a server).
    server = HttpClient.__new__(HttpClient)
    assert not client_is_embedded(server)
