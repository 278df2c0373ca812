"""The alert delivery log on the embedded engine: writes made together share one insert, and
each writer returns only once its own records are stored."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from meterline.alerts.store import AsyncDeliveryLog, DeliveryRecord

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def record(n: int, status: str) -> DeliveryRecord:
    return DeliveryRecord(
        f"team-{n}/daily/2026-11-29/threshold/50",
        "slack",
        f"#team-{n}",
        status,
        1,
        "",
        "",
        f"team-{n}",
        "daily",
        "threshold",
        "2026-11-29",
        AT + timedelta(seconds=n),
    )


def test_concurrent_writes_share_inserts_and_each_returns_once_its_records_are_stored(chdb_dsn: str) -> None:
    import clickhouse_connect

    from meterline.sinks.migrations import apply_migrations

    admin = clickhouse_connect.get_client(dsn=chdb_dsn)
    apply_migrations(admin)
    admin.close()
    store = AsyncDeliveryLog(lambda: clickhouse_connect.get_client(dsn=chdb_dsn))
    stored_when_returned: dict[int, bool] = {}

    async def destination(n: int) -> None:
        await store.write([record(n, "sending")])
        latest = await store.latest([record(n, "sending").alert_id])
        stored_when_returned[n] = latest[record(n, "sending").key].status == "sending"
        await store.write([record(n, "sent")])

    async def main() -> dict[str, str]:
        await asyncio.gather(*(destination(n) for n in range(40)))
        await store.write([])  # nothing to write: returns at once
        latest = await store.latest([record(n, "sent").alert_id for n in range(40)])
        return {key[2]: r.status for key, r in latest.items()}

    try:
        final = asyncio.run(main())
    finally:
        store.close()
    assert final == {f"#team-{n}": "sent" for n in range(40)}
    assert stored_when_returned == dict.fromkeys(range(40), True)
    # 80 writes from 40 destinations at once: the writes that came while one was being
    # inserted joined the next insert.
    assert 2 <= store.inserts < 40
