"""The delivery log in ClickHouse `alert_deliveries` (created by `meterline migrate`).

One row per state change of an (alert_id, channel, target); ReplacingMergeTree(recorded_at)
keeps the latest, read with FINAL. Statuses: `sending` (an attempt may be under way, or, with
reason starting "not sent: ", the last attempt was refused and another is due), `sent`, `failed`,
and `resolved` (a PagerDuty trigger, sent and later resolved because its period ended).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from meterline.alerts.destinations import Destination
from meterline.alerts.errors import AlertConfigError
from meterline.messages import AlertEvent

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

TABLE = "alert_deliveries"
COLUMNS = (
    "alert_id",
    "channel",
    "target",
    "status",
    "attempts",
    "reason",
    "external_id",
    "team",
    "budget",
    "kind",
    "period",
    "recorded_at",
)
NOT_SENT_PREFIX = "not sent: "
# Synchronous inserts: a 'sending' row must be on disk before the send starts.
WRITE_SETTINGS = {"async_insert": 0}

DeliveryStatus = Literal["sending", "sent", "failed", "resolved"]
DeliveryKey = tuple[str, str, str]
FINAL_STATUSES = frozenset({"sent", "failed", "resolved"})
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryRecord:
    """One state of one delivery, as stored."""

    alert_id: str
    channel: str
    target: str
    status: str
    attempts: int
    reason: str
    external_id: str
    team: str
    budget: str
    kind: str
    period: str
    recorded_at: datetime

    @property
    def key(self) -> DeliveryKey:
        return (self.alert_id, self.channel, self.target)

    @property
    def known_not_sent(self) -> bool:
        """A 'sending' row written after a refused attempt: nothing reached the destination."""
        return self.status == "sending" and self.reason.startswith(NOT_SENT_PREFIX)


def delivery_record(
    alert: AlertEvent,
    destination: Destination,
    status: DeliveryStatus,
    recorded_at: datetime,
    *,
    attempts: int = 0,
    reason: str = "",
    external_id: str = "",
) -> DeliveryRecord:
    return DeliveryRecord(
        alert.alert_id,
        destination.channel,
        destination.target,
        status,
        attempts,
        reason[:2000],
        external_id,
        alert.team,
        alert.budget,
        alert.kind,
        alert.period,
        recorded_at,
    )


class DeliveryLog:
    """Read and write `alert_deliveries` through one clickhouse-connect client (not thread-safe)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._last_stamp: datetime | None = None

    def stamp(self, now: datetime) -> datetime:
        """`now`, moved 1 ms past the previous stamp when needed: the latest row must win."""
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return now

    def write(self, records: list[DeliveryRecord]) -> None:
        if records:
            rows = [list(astuple(record)) for record in records]
            self._client.insert(TABLE, rows, column_names=list(COLUMNS), settings=WRITE_SETTINGS)

    def latest(self, alert_ids: list[str]) -> dict[DeliveryKey, DeliveryRecord]:
        """The latest record of every delivery of these alerts."""
        if not alert_ids:
            return {}
        result = self._client.query(
            f"SELECT {', '.join(COLUMNS)} FROM {TABLE} FINAL WHERE alert_id IN {{ids:Array(String)}}",
            parameters={"ids": sorted(set(alert_ids))},
        )
        records = [_record(row) for row in result.result_rows]
        for record in records:
            # Later rows must outrank these even if the clock went back (or is fixed in tests).
            if self._last_stamp is None or record.recorded_at > self._last_stamp:
                self._last_stamp = record.recorded_at
        return {record.key: record for record in records}

    def sent_on(self, channel: str) -> list[DeliveryRecord]:
        """Deliveries on `channel` whose latest state is `sent` (PagerDuty triggers not yet resolved)."""
        result = self._client.query(
            f"SELECT {', '.join(COLUMNS)} FROM {TABLE} FINAL WHERE channel = {{channel:String}} AND status = 'sent'",
            parameters={"channel": channel},
        )
        return [_record(row) for row in result.result_rows]

    def recent(self, since: datetime, limit: int = 500) -> list[DeliveryRecord]:
        """Deliveries whose latest state was recorded at or after `since`, newest first."""
        result = self._client.query(
            f"SELECT {', '.join(COLUMNS)} FROM {TABLE} FINAL WHERE recorded_at >= {{since:DateTime64(3, 'UTC')}} "
            "ORDER BY recorded_at DESC LIMIT {limit:UInt32}",
            parameters={"since": since, "limit": limit},
        )
        return [_record(row) for row in result.result_rows]


def _record(row: Sequence[Any]) -> DeliveryRecord:
    values = list(row)
    values[4] = int(values[4])
    recorded_at = values[11]
    if isinstance(recorded_at, datetime) and recorded_at.tzinfo is None:
        values[11] = recorded_at.replace(tzinfo=UTC)  # a client without tz_mode="aware"
    return DeliveryRecord(*values)


class AsyncDeliveryLog:
    """DeliveryLog for the event loop: every call runs on one dedicated thread, in order.

    The client is created on that thread by `client_factory`. A failed ClickHouse call is
    retried (capped backoff) until it succeeds or `close` is called: a delivery is never
    reported done before its state is stored.
    """

    def __init__(self, client_factory: Callable[[], Client], *, retry_max_seconds: float = 5.0) -> None:
        self._factory = client_factory
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meterline-alert-log")
        self._log: DeliveryLog | None = None
        self._client: Client | None = None
        self._retry_max = retry_max_seconds
        self._closing = False
        self._pending: list[tuple[list[DeliveryRecord], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.inserts = 0
        """Inserts written: concurrent writes share one (see `write`)."""
        self.last_error: str | None = None

    def _open(self) -> DeliveryLog:
        if self._log is None:
            self._client = self._factory()
            self._log = DeliveryLog(self._client)
        return self._log

    async def _call(self, what: str, fn: Callable[[DeliveryLog], T]) -> T:
        loop = asyncio.get_running_loop()
        delay = 0.1
        while True:
            try:
                result = await loop.run_in_executor(self._executor, lambda: fn(self._open()))
            except Exception as exc:  # any failure: not stored, try again
                self.last_error = (
                    f"{what}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                )
                if self._closing:
                    raise
                log.warning("alert delivery log %s; retrying in %.1fs", self.last_error, delay)
                await asyncio.sleep(delay)
                delay = min(self._retry_max, delay * 2)
                continue
            self.last_error = None
            return result

    async def write(self, records: list[DeliveryRecord]) -> None:
        """Store `records`; return once they are written.

        Writes made while an insert is under way go together in the next one: when many
        destinations record `sending` at once (budgets crossing together), they wait for one
        insert instead of queueing one each behind the sink's inserts on the same engine.
        """
        if not records:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((records, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_pending())
        await done

    async def _flush_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            records = [record for waiting, _ in batch for record in waiting]
            try:
                await self._call(
                    "write",
                    lambda store: store.write([replace(r, recorded_at=store.stamp(r.recorded_at)) for r in records]),  # noqa: B023 - awaited here, in this iteration
                )
            except asyncio.CancelledError:
                for _, done in batch + self._pending:
                    done.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - closing: each writer gets the failure
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            self.inserts += 1
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def latest(self, alert_ids: list[str]) -> dict[DeliveryKey, DeliveryRecord]:
        return await self._call("read", lambda store: store.latest(alert_ids))

    async def sent_on(self, channel: str) -> list[DeliveryRecord]:
        return await self._call("read", lambda store: store.sent_on(channel))

    async def check_table(self) -> None:
        """Raise AlertConfigError when `alert_deliveries` does not exist yet."""

        def exists(store: DeliveryLog) -> bool:
            assert self._client is not None
            return bool(self._client.command(f"EXISTS TABLE {TABLE}"))

        if not await self._call("check table", exists):
            raise AlertConfigError(f"ClickHouse has no {TABLE} table: run `meterline migrate` first")

    def close(self) -> None:
        self._closing = True

        def _close() -> None:
            if self._client is not None:
                self._client.close()

        self._executor.submit(_close).result(timeout=30)
        self._executor.shutdown(wait=True)
