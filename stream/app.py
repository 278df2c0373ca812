"""The faust app: topics, changelog-backed tables, the batch agent, /healthz and /metrics.

Exactly-once: the app runs with `processing_guarantee="exactly_once"`. faust keeps one
transactional producer per source partition; the agent sends every effect of partition p
(outputs, table changelogs) with that partition's transactional id, acks the batch and
commits, which sends the offsets to the same transaction and commits it. Readers of the
output topics must use `isolation_level="read_committed"`.
"""

from __future__ import annotations

import logging
import time
import weakref
from pathlib import Path
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from meterline.settings import Settings
from meterline.stream import fetch_wait
from meterline.stream.offsets import OffsetTracker, judge_hole
from meterline.stream.processor import Pricer, Record, StreamProcessor, TableName

if TYPE_CHECKING:
    import faust
    from faust.types import EventT

log = logging.getLogger(__name__)

TABLES: tuple[TableName, ...] = ("cells", "fired", "dedup")
HealthCheck = Callable[[], tuple[str, bool]]
"""A component's name and whether it is healthy (for /healthz)."""


def app_id(settings: Settings) -> str:
    """The faust app id (consumer group, transactional id prefix): `<prefix>stream`."""
    return f"{settings.topic_prefix}stream"


def broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")]


class SkippedRecordsError(RuntimeError):
    """The consumer never delivered records the worker was about to commit past."""


class StreamApp:
    """The stream worker's faust app and the processor it drives."""

    def __init__(self, settings: Settings, pricer: Pricer | None = None, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
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
        fetch_wait.install(stream.fetch_max_wait_ms)
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
            consumer_max_fetch_size=8 * 1024 * 1024,
            broker_max_poll_records=max(500, stream.take_max),
            web_enabled=True,
            web_host=stream.web_host,
            web_bind=stream.web_host,
            web_port=stream.web_port,
            table_standby_replicas=0,
            # A crashed worker's partitions move on after this long (faust's default is 60 s).
            broker_session_timeout=10,
            broker_heartbeat_interval=1,
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
        self.tables = {name: self.app.Table(name, key_type=bytes, value_type=bytes, partitions=partitions) for name in TABLES}
        self.health_checks: list[HealthCheck] = []
        self.started_at = time.monotonic()
        self.batches_failed = 0
        self._restored = False
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
        import shutil

        tabledir = Path(self.app.conf.tabledir)
        if tabledir.exists():
            shutil.rmtree(tabledir)
            log.info("local RocksDB tables discarded; recovering them from the changelogs", extra={"path": str(tabledir)})

    # -- the agent ---------------------------------------------------------------------------
    async def _agent(self, stream: Any) -> None:
        take_max, within = self.settings.stream.take_max, self.settings.stream.take_within
        async for events in stream.take_events(take_max, within=within):
            if not self._restored:
                try:
                    await self._restore()
                except Exception as exc:
                    # Processing on a partial state would count spend again: stop instead.
                    self.batches_failed += 1
                    log.exception("restoring the stream state from the changelogs failed; stopping the worker")
                    await self.app.crash(exc)
                    raise
            try:
                events = await self._continuous(stream, events)
                if not events:
                    continue
                records = [
                    Record(e.message.topic, e.message.partition, e.message.offset, e.message.timestamp, e.message.key, e.message.value)
                    for e in events
                ]
                await self.processor.process(records, _TransactionalEffects(self, events))
                for event in events:
                    await stream.ack(event)
                await self._commit(events)
                self.offsets.advance((record.partition, record.offset) for record in records)
            except BaseException as exc:
                # The in-memory book may now be ahead of Kafka: stop so a restart rebuilds it.
                self.batches_failed += 1
                log.exception("a batch failed; stopping the worker so it restarts from committed state")
                await self.app.crash(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
                raise
            self._update_lag(records)

    async def _continuous(self, stream: Any, events: Sequence[EventT]) -> list[EventT]:
        """The batch's events not processed yet, once sure no offset before them went missing.

        Events below a partition's next offset were processed already (re-delivered after a
        seek): acknowledged and left out. A hole before an event is read back from the topic:
        empty (transaction markers) it is fine; holding records the group has committed past
        since the assignment, a previous owner processed them; otherwise faust's consumer
        skipped them, and the worker stops before committing past them (a restart re-reads
        them).
        """
        fresh: list[EventT] = []
        for event in events:
            if self.offsets.stale(event.message.partition, event.message.offset):
                self.processor.metrics.counts["redelivered"] += 1
                await stream.ack(event)
            else:
                fresh.append(event)
        holes = self.offsets.holes((e.message.partition, e.message.offset) for e in fresh)
        if holes:
            from meterline.stream.source_check import committed_offset, records_in_hole

            topic = self.source.get_topic_name()
            bootstrap = self.settings.kafka_bootstrap
            for hole in holes:
                found = await records_in_hole(bootstrap, topic, hole)
                committed = await committed_offset(bootstrap, self.app.conf.id, topic, hole.partition) if found else None
                verdict = judge_hole(hole, found, committed)
                where = {"partition": hole.partition, "first": hole.first, "last": hole.last, "records": found}
                if verdict == "skipped":
                    raise SkippedRecordsError(
                        f"the consumer skipped {found} record(s) of {topic}[{hole.partition}] at offsets "
                        f"{hole.first}..{hole.last}; stopping before committing past them (a restart reads "
                        "them again from the committed offset)"
                    )
                if verdict == "committed":
                    self.processor.metrics.counts["holes_committed"] += 1
                    log.info("offsets committed by the partition's previous owner skipped", extra={**where, "committed": committed})
                else:
                    self.processor.metrics.counts["offset_holes"] += 1
                    log.info("offsets without records skipped", extra=where)
        return fresh

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
        consumer = self.app.consumer
        offsets: dict[Any, int] = {}
        for event in events:
            tp = event.message.tp  # the consumer's own TopicPartition: the key its book uses
            offsets[tp] = max(event.message.offset + 1, offsets.get(tp, 0))
        await consumer.transactions.commit(offsets, start_new_transaction=True)
        # Keep faust's book in step, so its own commits (on rebalance) find nothing pending.
        consumer._committed_offset.update(offsets)
        for tp, next_offset in offsets.items():
            acked = consumer._acked[tp]
            acked[:] = [offset for offset in acked if offset >= next_offset]
            consumer._acked_index[tp] = set(acked)
            consumer._gap.pop(tp, None)
        self.app.tables.on_commit(offsets)

    def _on_assigned(self, *args: Any, **kwargs: Any) -> None:
        self._restored = False

    async def _restore(self) -> None:
        """Rebuild the processor's state from the changelogs of the assigned partitions."""
        from meterline.stream.changelog import read_changelogs

        source = self.source.get_topic_name()
        partitions = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == source}
        topics = {name: table.changelog_topic.get_topic_name() for name, table in self.tables.items()}
        contents = await read_changelogs(self.settings.kafka_bootstrap, topics, partitions)
        self.processor.restore(contents)
        # faust sought every assigned partition to its committed offset before the flow resumed.
        committed = self.app.consumer._committed_offset
        self.offsets.reset({tp.partition: committed.get(tp) for tp in self.app.consumer.assignment() if tp.topic == source})
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
        parts = {"stream": self.batches_failed == 0 and not self.app.should_stop}
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
    partition (under faust's per-transaction lock), so the next commit includes them.
    """

    def __init__(self, owner: StreamApp, events: Sequence[EventT]) -> None:
        self.owner = owner
        self.event_of: dict[int, EventT] = {}
        for event in events:
            self.event_of.setdefault(event.message.partition, event)
        self.pending: dict[tuple[str, int], list[tuple[bytes, bytes | None]]] = {}

    async def send(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        self.pending.setdefault((topic, partition), []).append((key, value))

    async def write_table(self, table: TableName, key: bytes, value: bytes | None, partition: int) -> None:
        from faust.streams import _current_event

        collection = self.owner.tables[table]
        # Stores (rocksdb) pick their partition from the current event: make it one of p's.
        token = _current_event.set(weakref.ref(self.event_of[partition]))
        try:
            if value is None:
                collection.data.pop(key, None)
            else:
                collection.data[key] = value
        finally:
            _current_event.reset(token)
        topic = collection.changelog_topic.get_topic_name()
        self.pending.setdefault((topic, partition), []).append((key, value))

    async def flush(self, partition: int) -> None:
        """Append the partition's buffered records to its transaction, in the order they came."""
        faust_producer = self.owner.app.producer
        tid = self.owner.transactional_id(partition)
        producer = faust_producer._transaction_producers.get(tid)
        if producer is None:
            raise RuntimeError(f"no transactional producer for {tid}: the partition was revoked mid-batch")
        async with faust_producer._trn_locks[tid]:
            for (topic, p), records in list(self.pending.items()):
                if p != partition:
                    continue
                del self.pending[(topic, p)]
                batch = producer.create_batch()
                for key, value in records:
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        await producer.send_batch(batch, topic, partition=partition)
                        batch = producer.create_batch()
                        if batch.append(key=key, value=value, timestamp=None) is None:
                            raise RuntimeError(f"a {len(value or b'')}-byte record does not fit in a producer batch")
                if batch.record_count():
                    await producer.send_batch(batch, topic, partition=partition)
