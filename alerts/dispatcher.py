"""The alert dispatcher: consume `alerts`, deliver each (alert_id, channel, target) once.

Delivery semantics (also across restarts and crashes):

- Every delivery's state is stored in ClickHouse `alert_deliveries` before and after each send
  (see meterline.alerts.delivery for the order of steps). A Kafka offset is committed only when
  every delivery of the alerts before it is recorded `sent` or `failed`. An alert read again
  (a redelivery, a duplicate, a restart) whose delivery is recorded `sent` or `failed` is not
  sent again.
- The crash window is between a send and the record of its outcome. On restart, a delivery
  left `sending` is resolved before its destination gets anything else:
  - Slack with a bot token: the dispatcher searches the channel's history
    (`conversations.history`, metadata `event_type = meterline_alert`) for the alert id. Found:
    recorded `sent`, not re-sent. Not found: sent now. Exactly once, provided the token can read
    history (channels:history / groups:history, plus channels:read to map a #name to its id).
  - When the dispatcher knows the last attempt did not deliver (the server refused it: SMTP
    4xx, Slack 429, a refused connection), it sends again: nothing was delivered before.
  - Otherwise (SMTP, incoming webhooks, console, Slack without history access) the outcome
    cannot be confirmed. `alerts.resend_unconfirmed = false` (the default) is at-most-once: the
    delivery is recorded `failed` with reason "outcome unknown after a restart" and logged, so a
    person can look. `true` is at-least-once: it is sent again (email keeps its Message-ID, so
    many mail clients show the copies as one).
- Transient failures are retried with exponential backoff and jitter (Retry-After honoured) up
  to `alerts.retry_deadline_seconds`, then recorded `failed`; permanent failures are recorded
  `failed` at once with the reason.
- Each destination has its own queue and task: one slow channel never blocks another. Each is
  limited to `alerts.rate_limit_per_minute`; when `alerts.digest_after` or more alerts wait for
  a destination they go out as one digest (each alert's row then says "digest of N").
- PagerDuty incidents are resolved when their budget period has ended: every
  `alerts.pagerduty_resolve_interval_seconds` the dispatcher reads the PagerDuty triggers recorded
  `sent`, sends `resolve` (same dedup key) for those whose period is over, and records them
  `resolved`. A crash between the resolve and its record resends the resolve: PagerDuty ignores a
  second one. A failed resolve is logged and tried again at the next check.
- One dispatcher per consumer group should run: two dispatchers sharing a partition during a
  rebalance could both see a delivery as pending.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from pydantic import ValidationError

from meterline.alerts.channel import Channel
from meterline.alerts.delivery import DestinationWorker, Job
from meterline.alerts.delivery_offsets import DeliveryOffsets
from meterline.alerts.destinations import Destination, check_routes, destinations_for
from meterline.alerts.errors import AlertConfigError, DeliveryError
from meterline.alerts.retry import RetryPolicy
from meterline.alerts.secrets import with_secrets
from meterline.alerts.store import FINAL_STATUSES, AsyncDeliveryLog, DeliveryKey
from meterline.kafka_options import METADATA_MAX_AGE_MS
from meterline.messages import AlertEvent
from meterline.settings import Settings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

MAX_WAITING_MESSAGES = 10_000
"""Stop fetching while this many consumed alerts still wait for their deliveries."""
REMEMBERED_OUTCOMES = 100_000
STAT_NAMES = (
    "received",
    "invalid",
    "sent",
    "failed",
    "duplicates",
    "digests",
    "retries",
    "confirmed_after_restart",
    "commits",
    "resolved",
)


def default_channels(settings: Settings, now: Callable[[], datetime]) -> dict[str, Channel]:
    from meterline.alerts.console import ConsoleChannel
    from meterline.alerts.pagerduty import PagerDutyChannel
    from meterline.alerts.slack import SlackChannel
    from meterline.alerts.smtp import EmailChannel
    from meterline.alerts.webhook import WebhookChannel

    return {
        "slack": SlackChannel(settings.alerts),
        "email": EmailChannel(settings.alerts, now),
        "webhook": WebhookChannel(settings.alerts, now),
        "pagerduty": PagerDutyChannel(settings.alerts),
        "console": ConsoleChannel(),
    }


class AlertDispatcher:
    """Consume the `alerts` topic and deliver, on its own thread with its own event loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_factory: Callable[[], Client],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings.model_copy(update={"alerts": with_secrets(settings.alerts)})
        problems = check_routes(self.settings)
        if problems:
            raise AlertConfigError("alert routes cannot be delivered to:\n  " + "\n  ".join(problems))
        self.consumer_group = f"{settings.topic_prefix}alerts"
        self.stats: dict[str, int] = Counter({name: 0 for name in STAT_NAMES})
        self._client_factory = client_factory
        self._now = now
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._running = threading.Event()
        self._error: BaseException | None = None
        self._store: AsyncDeliveryLog | None = None
        self._tracker: DeliveryOffsets[TopicPartition] = DeliveryOffsets()
        self._workers: dict[Destination, DestinationWorker] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._active: dict[DeliveryKey, Job] = {}
        self._outcomes: OrderedDict[DeliveryKey, str] = OrderedDict()
        self._channels: dict[str, Channel] = {}

    # -- the worker process's view ------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher thread; network and ClickHouse clients are created there."""
        if self._thread is not None:
            raise RuntimeError("AlertDispatcher.start() was already called")
        self._thread = threading.Thread(target=self._thread_main, name="meterline-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop consuming, commit what is recorded, close clients; wait up to `timeout` seconds."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:
                pass  # the loop already finished
        if self._thread is not None:
            self._thread.join(timeout)

    def healthy(self) -> bool:
        """True while consuming, with no fatal error and ClickHouse answering."""
        alive = self._thread is not None and self._thread.is_alive() and self._running.is_set()
        store_ok = self._store is None or self._store.last_error is None
        return alive and self._error is None and store_ok

    def wait_running(self, timeout: float) -> bool:
        """Block until the consumer has started (or `timeout` passes); for tests and the CLI."""
        return self._running.wait(timeout)

    @property
    def error(self) -> BaseException | None:
        """The error that stopped the dispatcher, if any."""
        return self._error

    # -- inside the dispatcher thread ---------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported through healthy() and error
            self._error = exc
            log.exception("alert dispatcher stopped with an error")
        finally:
            self._running.clear()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._store = AsyncDeliveryLog(self._client_factory)
        consumer: AIOKafkaConsumer | None = None
        try:
            await self._store.check_table()
            self._channels = default_channels(self.settings, self._now)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                group_id=self.consumer_group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # Alerts come in the stream's transactions: never act on an aborted one.
                isolation_level="read_committed",
                metadata_max_age_ms=METADATA_MAX_AGE_MS,
                fetch_max_wait_ms=self.settings.stream.fetch_max_wait_ms,
                # Deliveries may wait for retries; polling goes on meanwhile, so the default is fine.
            )
            await consumer.start()
            consumer.subscribe([self.settings.topic("alerts")], listener=_Revocations(self, consumer))
            if self.settings.alerts.pagerduty_routing_key is not None:
                self._tasks.append(asyncio.create_task(self._resolve_periodically(), name="alerts pagerduty resolver"))
            self._running.set()
            await self._consume(consumer)
        finally:
            self._running.clear()
            # Let attempts under way finish and be recorded: a send cut off here would leave an
            # outcome nobody can confirm (SMTP). Then cancel what still waits (backoffs, limits).
            for worker in self._workers.values():
                worker.stop_soon()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self.settings.alerts.send_timeout_seconds + 5)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if consumer is not None:
                await consumer.stop()
            for channel in self._channels.values():
                await channel.aclose()
            await asyncio.to_thread(self._store.close)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        assert self._stopping is not None
        while not self._stopping.is_set():
            if self._tracker.waiting() >= MAX_WAITING_MESSAGES:
                await self._sleep_or_stop(0.2)
            else:
                batches = await consumer.getmany(timeout_ms=300, max_records=500)
                for partition, messages in batches.items():
                    await self._accept(partition, messages)
            await self.commit(consumer)
        await self.commit(consumer)

    async def _sleep_or_stop(self, seconds: float) -> None:
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def _resolve_periodically(self) -> None:
        assert self._stopping is not None
        while not self._stopping.is_set():
            await self.resolve_ended_periods()
            await self._sleep_or_stop(self.settings.alerts.pagerduty_resolve_interval_seconds)

    async def resolve_ended_periods(self) -> int:
        """Resolve the PagerDuty incidents whose budget period has ended; return how many were."""
        from meterline.alerts.pagerduty import PagerDutyChannel
        from meterline.alerts.pagerduty_render import due_resolves

        channel, store = self._channels.get("pagerduty"), self._store_or_fail()
        if not isinstance(channel, PagerDutyChannel):
            return 0
        resolved = 0
        for record in due_resolves(await store.sent_on("pagerduty"), self.settings.budgets, self._now()):
            try:
                await channel.resolve(Destination("pagerduty", record.target), record.alert_id)
            except DeliveryError as exc:
                log.warning("pagerduty: could not resolve %s (%s); trying again later", record.alert_id, exc.reason)
                continue
            reason = f"resolved: period {record.period} ended"
            await store.write([replace(record, status="resolved", reason=reason, recorded_at=self._now())])
            self.stats["resolved"] += 1
            resolved += 1
        return resolved

    async def commit(self, consumer: AIOKafkaConsumer) -> None:
        ready = self._tracker.ready()
        if not ready:
            return
        try:
            await consumer.commit(ready)
        except Exception as exc:  # noqa: BLE001 - a later commit covers these offsets
            log.warning("could not commit alert offsets (%s); will retry", exc)
            return
        self._tracker.committed(ready)
        self.stats["commits"] += 1

    async def _accept(self, partition: TopicPartition, messages: list[Any]) -> None:
        """Turn consumed messages into jobs; record nothing until a destination's task sends."""
        assert self._store is not None
        parsed: list[tuple[int, AlertEvent, list[Destination]]] = []
        for message in messages:
            self.stats["received"] += 1
            try:
                alert = AlertEvent.model_validate_json(message.value)
                destinations = destinations_for(alert, self.settings)
            except (ValidationError, AlertConfigError, ValueError, TypeError) as exc:
                self.stats["invalid"] += 1
                log.error(
                    "skipping alert at %s:%d offset %d: %s", partition.topic, partition.partition, message.offset, exc
                )
                self._tracker.track(partition, message.offset, 0)
                continue
            parsed.append((message.offset, alert, destinations))
        stored = await self._store.latest([alert.alert_id for _, alert, _ in parsed])
        for offset, alert, destinations in parsed:
            jobs: list[Job] = []
            for destination in destinations:
                key = (alert.alert_id, destination.channel, destination.target)
                record = stored.get(key)
                if key in self._outcomes or (record is not None and record.status in FINAL_STATUSES):
                    self.stats["duplicates"] += 1
                elif key in self._active:
                    self.stats["duplicates"] += 1  # in flight: its offset waits for that delivery
                    jobs.append(self._active[key])
                else:
                    job = Job(alert, destination, leftover=record if record is not None else None)
                    job.on_done.append(partial(self._finished, key))
                    self._active[key] = job
                    self._worker(destination).submit(job)
                    jobs.append(job)
            self._tracker.track(partition, offset, len(jobs))
            for job in jobs:
                job.on_done.append(partial(self._finish_offset, partition, offset))

    def forget(self, partition: TopicPartition) -> None:
        """Drop what is tracked of a partition this consumer no longer owns."""
        self._tracker.forget(partition)

    def _finish_offset(self, partition: TopicPartition, offset: int, _status: str) -> None:
        self._tracker.finish(partition, offset)

    def _finished(self, key: DeliveryKey, status: str) -> None:
        self._active.pop(key, None)
        self._outcomes[key] = status
        if len(self._outcomes) > REMEMBERED_OUTCOMES:
            self._outcomes.popitem(last=False)

    def _worker(self, destination: Destination) -> DestinationWorker:
        worker = self._workers.get(destination)
        if worker is None:
            loop = asyncio.get_running_loop()
            worker = DestinationWorker(
                destination,
                self._channels[destination.channel],
                self._store_or_fail(),
                self.settings.alerts,
                RetryPolicy.from_settings(self.settings.alerts),
                self._now,
                self.stats,
                loop.time,
            )
            self._workers[destination] = worker
            self._tasks.append(asyncio.create_task(worker.run(), name=f"alerts {destination.label}"))
        return worker

    def _store_or_fail(self) -> AsyncDeliveryLog:
        assert self._store is not None
        return self._store


class _Revocations(ConsumerRebalanceListener):
    """Commit what is recorded before partitions move to another consumer."""

    def __init__(self, dispatcher: AlertDispatcher, consumer: AIOKafkaConsumer) -> None:
        self._dispatcher = dispatcher
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._dispatcher.commit(self._consumer)
        for partition in revoked:
            self._dispatcher.forget(partition)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None
