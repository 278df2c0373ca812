"""What meterline takes from clickhouse-connect beyond its public API, in one place.

The embedded engine's client class lives in a private module. The writer asks "is this client
the embedded engine?" to insert from a file in shared memory instead of through the client's
own temporary file (sinks/writer.py). tests/unit/sinks/test_clickhouse_fence.py checks that the
installed clickhouse-connect still has it; pyproject.toml pins the range that was tested.
"""

from __future__ import annotations

from clickhouse_connect.driver._chdbclient import ChdbClient

__all__ = ["ChdbClient"]
