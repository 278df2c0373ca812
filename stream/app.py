"""The faust app: topics, changelog-backed tables, the batch agent, /healthz and /metrics.

Exactly-once: the app runs with `processing_guarantee="exactly_once"`. faust keeps one
transactional producer per source partition; the agent sends every effect of partition p
(outputs, table changelogs) with that partition's transactional id, acks the batch and
commits, which sends the offsets to the same transaction and commits it. Readers of the
output topics must use `isolation_level="read_committed"`.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterline.backoff import Backoff
from meterline.faults import FaultPlan
from meterline.kafka_options import faust_consumer_options
from meterline.settings import Settings
from meterline.stream import faust_fence
from meterline.stream.changelog import read_changelogs
from meterline.stream.offsets import OffsetTracker, judge_hole, resume_offsets
from meterline.stream.processor import Pricer, Record, StreamProcessor, TableName, record_headers
from meterline.stream.source_check import committed_offset, log_start_offsets, records_in_hole
from meterline.stream.spans import message_events, transaction_spans

if TYPE_CHECKING:
    import faust
    from faust.types import EventT

log = logging.getLogger(__name__)
_BATCH_RETRY = Backoff(0.1, 5.0)
"""Pause before a failed batch is read again: short, since the cause may be gone already."""

TABLES: tuple[TableName, ...] = ("cells", "fired", "dedup")
HealthCheck = Callable[[], tuple[str, bool]]
"""A component's name and whether it is healthy (for /healthz)."""


def app_id(settings: Settings) -> str:
    """The faust app id (consumer group, transactional id prefix): `<prefix>stream`."""
    return f"{settings.topic_prefix}stream"


def broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")]


class StreamApp:
    """The stream worker's faust app and the processor it drives."""

    def __init__(
        self,
        settings: Settings,
        pricer: Pricer | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        import faust

        if pricer is None:
            from meterline.pricing import PriceCatalog

            pricer = PriceCatalog.load(settings.pricing)
        self.settings = settings
        self.processor = StreamProcessor(settings, pricer, now=now)
        stream = settings.stream
        partitions = settings.topic_partitions
        datadir = settings.data_dir / "stream"
        datadir.mkdir(parents=True, exist_ok=True)
        faust_fence.install_fetch_max_wait(stream.fetch_max_wait_ms)
        self.faults = FaultPlan.parse(stream.inject_faults)
        self.app: faust.App = faust.App(
            app_id(settings),
            broker=broker_urls(settings),
            processing_guarantee="exactly_once",
            store=stream.store,
            datadir=str(datadir),
            topic_partitions=partitions,
            topic_replication_factor=1,
            # The agent commits after each batch; faust's own timer would cut a batch in two.
            broker_commit_every=10**9,
            broker_commit_interval=10**6,
            # Messages buffered ahead of the agent: two batches (fewer pages touched than more).
            stream_buffer_maxsize=max(1024, stream.take_max * 2),
            producer_linger_ms=5,
            producer_max_batch_size=512 * 1024,
            broker_max_poll_records=max(500, stream.take_max),
            web_enabled=True,
            web_host=stream.web_host,
            web_bind=stream.web_host,
            web_port=stream.web_port,
            table_standby_replicas=0,
            **faust_consumer_options(),
            # The worker rebuilds its state from the changelogs itself (stream/changelog.py),
            # waiting for open transactions to end. faust's check compares against an end read
            # while a dead worker's transaction is still open (measured -1) and crashed the
            # worker taking over its partitions (ConsistencyError "9 > -1").
            recovery_consistency_check=False,
            logging_config=None,
        )
        if stream.store.startswith("rocksdb"):
            self._discard_local_tables()
        self.source = self.app.topic(
            settings.topic("usage"),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
        )
        # bytes in, bytes out: the changelog carries exactly what the processor wrote.
        self.tables = {
            name: self.app.Table(name, key_type=bytes, value_type=bytes, partitions=partitions) for name in TABLES
        }
        self.health_checks: list[HealthCheck] = []
        self.started_at = time.monotonic()
        self.batches_failed = 0
        """Batches that failed and were aborted since the start (meterline_stream_batches_failed_total)."""
        self.failing_batches = 0
        """Failures in a row of the batch being retried (0 when the last batch committed)."""
        self.fatal: BaseException | None = None
        self._restored = False
        self._assigned = True
        self.offsets = OffsetTracker()
        self.app.agent(self.source, name=f"{app_id(settings)}-process", concurrency=1)(self._agent)
        self.app.on_partitions_assigned.connect(self._on_assigned)
        self.app.page("/healthz")(self._healthz_view())
        self.app.page("/metrics")(self._metrics_view())

    def _discard_local_tables(self) -> None:
        """Start RocksDB tables empty: they refill from the changelogs (read_committed).

        The processor writes a table before its transaction commits; after a crash the local
        files could hold writes of an aborted batch (ids marked seen without their effects).
        """
        tabledir = Path(self.app.conf.tabledir)
        if tabledir.exists():
            shutil.rmtree(tabledir)
            log.info(
                "local RocksDB tables discarded; recovering them from the changelogs", extra={"path": str(tabledir)}
            )

    # -- the agent ---------------------------------------------------------------------------
    async def _agent(self, stream: Any) -> None:
        """Process batches, each taken batch in spans of at most `stream.batch_events` events
        (stream/spans.py), one transaction each; the commit contract of one is `_process_batch`'s.
        A span that fails is aborted and read again with every span after it."""
        take_max, within = self.settings.stream.take_max, self.settings.stream.take_within
        most_events = self.settings.stream.batch_events
        async for taken in stream.take_events(take_max, within=within):
            sizes = [message_events(event.message.value) for event in taken]
            for span in transaction_spans(sizes, most_events):
                events, rest = taken[span.start : span.stop], taken[span.start :]
                try:
                    if not self._restored:
                        await self._restore()
                    records = await self._process_batch(stream, events)
                except Exception as exc:  # noqa: BLE001 - whatever failed aborts the batch; it is read again
                    await self._batch_failed(rest, exc)
                    break
                except BaseException:
                    faust_fence.disarm(rest)  # cancelled (stopping): commit nothing of it
                    raise
                self.failing_batches = 0
                if records:
                    self._update_lag(records)

    async def _batch_failed(self, events: Sequence[EventT], exc: Exception) -> None:
        """Abort the batch, then read it again from its partitions' committed offsets with a
        state rebuilt from the changelogs; after `stream.batch_attempts` failures in a row,
        stop the worker (exit code 1) so a supervisor restarts it.

        Nothing of the batch may commit: faust acks it in take_events' finally: and commits
        acked offsets on the way down; disarmed, those acks record nothing.
        """
        faust_fence.disarm(events)
        self.batches_failed += 1
        self.processor.metrics.counts["batches_failed"] += 1
        self.failing_batches += 1
        not_aborted = await faust_fence.abort(self.app, self._transactional_ids(events))
        attempts = self.settings.stream.batch_attempts
        where = {
            "events": len(events),
            "not_aborted": not_aborted,
            "failure": self.failing_batches,
            "attempts": attempts,
        }
        if self.failing_batches >= attempts:
            log.critical(
                "a batch failed %d times in a row; stopping the worker (nothing of it committed)",
                attempts,
                exc_info=exc,
                extra=where,
            )
            self.fatal = exc
            await self.app.crash(exc)
            os.kill(os.getpid(), signal.SIGTERM)  # faust's worker stops on it; the exit code is 1
            return
        log.error(
            "a batch failed and was aborted; reading it again from the committed offsets", exc_info=exc, extra=where
        )
        # The book and dedup index may hold the batch's effects: rebuild them before the retry.
        self._restored = False
        committed = faust_fence.committed_offsets(self.app)
        try:
            for tp in sorted({event.message.tp for event in events}):
                # The later of faust's book (a commit that succeeded before the failure moved
                # it) and ours; neither known yet: the batch's first offset.
                known = [o for o in (committed.get(tp), self.offsets.next_offset(tp.partition)) if o is not None]
                resume = max(known) if known else min(e.message.offset for e in events if e.message.tp == tp)
                self.offsets.rewind(tp.partition, resume)
                await self._seek_back(tp.partition, resume)
        except Exception:  # e.g. the partition was revoked meanwhile
            # Start over as after an assignment: the offset book comes from faust's committed
            # offsets, and a hole against them is read back and sought (_continuous).
            log.warning("seeking back after a failed batch failed; resuming from the committed offsets", exc_info=True)
            self._assigned = True
        await asyncio.sleep(_BATCH_RETRY.delay(self.failing_batches))

    async def _process_batch(self, stream: Any, events: Sequence[EventT]) -> list[Record]:
        """One batch, committed whole or not at all. The order is the contract:

        1. leave out what was processed already, and what follows a hole the consumer skipped
           (the partition is sought back to the hole; those events come again);
        2. process: every effect is buffered, then appended to its partition's transaction;
        3. await every send: each record is acknowledged by the broker, or the batch fails;
        4. commit each partition's transaction with exactly the batch's source offsets;
        5. only then ack the events (faust's book already says committed: nothing pending).

        An exception anywhere before 4 has finished leaves the offsets uncommitted; the
        caller aborts the open transactions and stops the worker. The in-memory book may be
        ahead of Kafka then, so the restart rebuilds it from the changelogs.
        """
        events = await self._continuous(stream, events)
        if not events:
            return []
        records = [
            Record(
                e.message.topic,
                e.message.partition,
                e.message.offset,
                e.message.timestamp,
                e.message.key,
                e.message.value,
                record_headers(e.message.headers),
            )
            for e in events
        ]
        effects = _TransactionalEffects(self, events)
        await self.processor.process(records, effects)
        await effects.sent()
        await self._commit(events)
        for event in events:
            await stream.ack(event)
        self.offsets.advance((record.partition, record.offset) for record in records)
        return records

    def _transactional_ids(self, events: Sequence[EventT]) -> list[str]:
        return sorted({self.transactional_id(event.message.partition) for event in events})

    async def _continuous(self, stream: Any, events: Sequence[EventT]) -> list[EventT]:
        """The batch's events not processed yet, once sure no offset before them went missing.

        Events below a partition's next offset were processed already (re-delivered after a
        seek): acknowledged and left out. A hole before an event is read back from the topic:
        empty (transaction markers) it is fine; holding records the group has committed past
        since the assignment, a previous owner processed them; otherwise faust's consumer
        skipped them (its fetch loop marks a message read even when a rebalance cancels its
        delivery, and a fetch started before a seek goes on delivering past it): the
        partition is sought back to the hole, and its events after the hole are left out
        (disarmed, never acked) until the hole's own records arrive.
        """
        fresh: list[EventT] = []
        again: dict[int, int] = {}
        for event in events:
            partition, offset = event.message.partition, event.message.offset
            if self.offsets.stale(partition, offset):
                self.processor.metrics.counts["redelivered"] += 1
                await stream.ack(event)
            elif self.offsets.ahead_of_rewind(partition, offset):
                # Fetched before the seek back: it comes again after the offsets before it.
                # Seek once more: faust's fetch loop may have delivered it after the seek and
                # moved its read offset past the records the seek asked for.
                faust_fence.disarm([event])
                again[partition] = self.offsets.next_offset(partition) or 0
            else:
                fresh.append(event)
        for partition, resume in sorted(again.items()):
            await self._seek_back(partition, resume)
        holes = self.offsets.holes((e.message.partition, e.message.offset) for e in fresh)
        if not holes:
            return fresh
        topic = self.source.get_topic_name()
        bootstrap = self.settings.kafka_bootstrap
        sought: set[int] = set()
        for hole in holes:
            found = await records_in_hole(bootstrap, topic, hole)
            committed = await committed_offset(bootstrap, self.app.conf.id, topic, hole.partition) if found else None
            verdict = judge_hole(hole, found, committed)
            where = {"partition": hole.partition, "first": hole.first, "last": hole.last, "records": found}
            if verdict == "skipped":
                self.processor.metrics.counts["holes_sought"] += 1
                log.warning("the consumer skipped records; seeking back to them", extra=where)
                if hole.partition not in sought:
                    # Every event of the partition in this batch is left out: resume where
                    # the last committed batch ended.
                    committed_end = self.offsets.next_offset(hole.partition)
                    await self._seek_back(hole.partition, hole.first if committed_end is None else committed_end)
                    sought.add(hole.partition)
            elif verdict == "committed":
                self.processor.metrics.counts["holes_committed"] += 1
                log.info(
                    "offsets committed by the partition's previous owner skipped",
                    extra={**where, "committed": committed},
                )
            else:
                self.processor.metrics.counts["offset_holes"] += 1
                log.info("offsets without records skipped", extra=where)
        if sought:
            left_out = [e for e in fresh if e.message.partition in sought]
            faust_fence.disarm(left_out)
            fresh = [e for e in fresh if e.message.partition not in sought]
        return fresh

    async def _seek_back(self, partition: int, offset: int) -> None:
        from faust.types import TP

        await faust_fence.seek(self.app, TP(self.source.get_topic_name(), partition), offset)

    async def _commit(self, events: Sequence[EventT]) -> None:
        """Commit the batch's transactions with exactly its source offsets.

        faust's own commit() derives the offsets from its acknowledgement book, which it
        starts from the committed offsets read at assignment. After a restart that read can
        be older than where the consumer resumes (the dead worker's last transaction
        committed meanwhile), and faust then refuses to commit that partition ("gap at the
        head") while our records sit in its open transaction until the broker aborts it:
        priced events lost (measured with three partitions). The offsets come from the
        records this batch processed instead.
        """
        self.faults.reach("before_commit")
        by_tid: dict[str, dict[Any, int]] = {}
        for event in events:
            tp = event.message.tp  # the consumer's own TopicPartition: the key its book uses
            offsets = by_tid.setdefault(self.transactional_id(tp.partition), {})
            offsets[tp] = max(event.message.offset + 1, offsets.get(tp, 0))
        await faust_fence.commit_batch(self.app, by_tid)
        self.faults.reach("after_commit")
        self.app.tables.on_commit({tp: offset for offsets in by_tid.values() for tp, offset in offsets.items()})

    def _on_assigned(self, *args: Any, **kwargs: Any) -> None:
        self._restored = False
        self._assigned = True

    async def _restore(self) -> None:
        """Rebuild the processor's state from the changelogs of the assigned partitions."""
        source = self.source.get_topic_name()
        partitions = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == source}
        topics = {name: table.changelog_topic.get_topic_name() for name, table in self.tables.items()}
        contents = await read_changelogs(self.settings.kafka_bootstrap, topics, partitions)
        self.processor.restore(contents)
        if self._assigned:
            # faust sought every assigned partition to its committed offset before the flow
            # resumed. (A retry after a failed batch keeps the book: it holds the rewinds.)
            book = faust_fence.committed_offsets(self.app)
            committed = {tp.partition: book.get(tp) for tp in self.app.consumer.assignment() if tp.topic == source}
            unknown = [partition for partition, offset in committed.items() if offset is None]
            log_start = await log_start_offsets(self.settings.kafka_bootstrap, source, unknown)
            start = resume_offsets(committed, log_start)
            self.offsets.reset(start)
            log.info("partitions assigned; each batch must continue from here", extra={"start": start})
            self._assigned = False
        self._restored = True

    def _update_lag(self, records: Sequence[Record]) -> None:
        from faust.types import TP

        last: dict[int, int] = {}
        for record in records:
            last[record.partition] = max(record.offset, last.get(record.partition, -1))
        for partition, offset in last.items():
            highwater = self.app.consumer.highwater(TP(self.source.get_topic_name(), partition))
            if highwater is not None:
                self.processor.metrics.lag[partition] = max(0, highwater - offset - 1)

    # -- transactional ids -------------------------------------------------------------------
    def transactional_id(self, partition: int) -> str:
        """The id faust's TransactionManager uses for the source partition (same as its commit)."""
        group = self.app.assignor.group_for_topic(self.source.get_topic_name())
        return f"{self.app.conf.id}-{group}-{partition}"

    # -- web ----------------------------------------------------------------------------------
    def healthy(self) -> tuple[bool, dict[str, bool]]:
        parts = {"stream": self.failing_batches == 0 and self.fatal is None and not self.app.should_stop}
        for check in self.health_checks:
            name, ok = check()
            parts[name] = ok
        return all(parts.values()), parts

    def _healthz_view(self) -> Any:
        import faust

        owner = self

        class Healthz(faust.web.View):
            async def get(self, request: Any) -> Any:
                ok, parts = owner.healthy()
                return self.json({"ok": ok, "components": parts}, status=200 if ok else 503)

        return Healthz

    def _metrics_view(self) -> Any:
        import faust

        owner = self

        class Metrics(faust.web.View):
            async def get(self, request: Any) -> Any:
                extra = {"meterline_stream_uptime_seconds": round(time.monotonic() - owner.started_at, 3)}
                body = owner.processor.metrics.render(extra)
                return self.text(body, content_type="text/plain; version=0.0.4")

        return Metrics


class _TransactionalEffects:
    """Buffers a partition's effects, then appends them to its transaction as whole batches.

    Per-message `send()` costs more than pricing an event; aiokafka's BatchBuilder appends
    thousands of records per call. The batches go to faust's transactional producer of the
    partition (under faust's per-transaction lock); `sent()` awaits every one of them, so a
    record the broker refused fails the batch before its commit.
    """

    def __init__(self, owner: StreamApp, events: Sequence[EventT]) -> None:
        self.owner = owner
        self.event_of: dict[int, EventT] = {}
        for event in events:
            self.event_of.setdefault(event.message.partition, event)
        self.pending: dict[tuple[str, int], list[tuple[bytes, bytes | None]]] = {}
        self.in_flight: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        self.pending.setdefault((topic, partition), []).append((key, value))

    async def write_table(self, table: TableName, key: bytes, value: bytes | None, partition: int) -> None:
        collection = self.owner.tables[table]
        with faust_fence.current_event(self.event_of[partition]):
            if value is None:
                collection.data.pop(key, None)
            else:
                collection.data[key] = value
        topic = collection.changelog_topic.get_topic_name()
        self.pending.setdefault((topic, partition), []).append((key, value))

    async def flush(self, partition: int) -> None:
        """Append the partition's buffered records to its transaction, in the order they came."""
        faults = self.owner.faults
        faults.reach("before_flush")
        producer, lock = faust_fence.transaction_producer(self.owner.app, self.owner.transactional_id(partition))
        async with lock:
            for (topic, p), records in list(self.pending.items()):
                if p != partition:
                    continue
                del self.pending[(topic, p)]
                batch = producer.create_batch()
                for key, value in records:
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        await self._send(producer, batch, topic, partition)
                        batch = producer.create_batch()
                        if batch.append(key=key, value=value, timestamp=None) is None:
                            raise RuntimeError(f"a {len(value or b'')}-byte record does not fit in a producer batch")
                if batch.record_count():
                    await self._send(producer, batch, topic, partition)
        faults.reach("after_flush")

    async def _send(self, producer: Any, batch: Any, topic: str, partition: int) -> None:
        self.owner.faults.reach("before_send")
        self.in_flight.append(await producer.send_batch(batch, topic, partition=partition))
        self.owner.faults.reach("after_send")

    async def sent(self) -> None:
        """Wait until the broker acknowledged every record; raise the first refusal."""
        outcomes = await asyncio.gather(*self.in_flight, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
