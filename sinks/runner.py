"""SinkRunner: consume priced events, DLQ and budget states; write batches; commit after.

The flush order is the contract (numbered in `_write` and `_commit`):
1. record the boundaries of new ranges in sink_batches (write-ahead);
2. write every table's rows, each insert with a token derived from its range and its place in
   the plan (chunk, partition piece, half of a refused insert, the dead letters of its rows
   ClickHouse can never write);
   2b. a range read back from sink_batches (a replay) is then checked for rows its first write
   recorded in ClickHouse's deduplication log and never stored, which are written again
   (sinks.replay_repair; embedded engine);
3. commit the Kafka offsets;
4. forget the committed ranges.
A process that dies between any two steps, or between two inserts of step 2, is replayed from
the committed offsets, re-cut into the same ranges (read back from sink_batches) and the same
inserts (the plan is pure; a refusal for the data is refused again and cut alike), and
ClickHouse drops the blocks it already has, in the raw tables and in the rollups alike.

Two kinds of failure (sinks.errors): ClickHouse refusing rows for their data
(PermanentWriteError) never stops the flush: the insert is written in pieces and a row that can
never be written goes to dlq_events (sinks.refusals). Any other failure (TransientWriteError:
the engine away, the network, merges behind) is retried with capped backoff while the offsets
stay uncommitted. Nothing is lost and nothing is counted twice.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from meterline.backoff import Backoff
from meterline.kafka_options import kafka_python_group_options
from meterline.settings import Settings
from meterline.sinks.buffer import BatchBuffer, TopicPartition
from meterline.sinks.client import client_is_embedded
from meterline.sinks.errors import SinkError, SinkWriteError, TransientWriteError
from meterline.sinks.insert_plan import (
    JsonInsert,
    OffsetRange,
    RangeBatch,
    SourceRecord,
    TopicKind,
    plan_batch_log,
    plan_writes,
    record_lines,
)
from meterline.sinks.migrations import apply_migrations
from meterline.sinks.replay_repair import repair_replayed
from meterline.sinks.stall import StallWatch
from meterline.sinks.writer import InsertPipeline, recorded_ranges, write_batch

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client
    from kafka import KafkaConsumer

log = logging.getLogger(__name__)

FlushStep = Literal["recorded", "inserted", "written", "committed"]
FlushObserver = Callable[[FlushStep, list[RangeBatch]], None]
"""Called after each flush step with the batches concerned (logging, metrics, fault tests);
"inserted" after each insert of step 2 landed, on the writer thread (an exception there fails
the write as a transient failure would: it is retried, i.e. replayed)."""

METADATA_WAIT_S = 15.0
STALL_S = 30.0
"""A consumer that took nothing it could take for this long is replaced (sinks/stall.py)."""
STALL_CHECK_S = 5.0


def await_topic_metadata(consumer: KafkaConsumer, topics: Any, timeout_s: float, stop: threading.Event) -> list[str]:
    """Wait (bounded) until the consumer's metadata lists partitions of every topic; return
    the topics still unknown. A consumer joining its group just after the worker created
    the topics was once assigned none of their partitions ("No partition metadata") and did
    not rebalance for minutes; a topic created later still comes in through metadata refresh."""
    deadline = time.monotonic() + timeout_s
    missing = list(topics)
    while True:
        missing = [topic for topic in missing if not consumer.partitions_for_topic(topic)]
        if not missing or time.monotonic() >= deadline or stop.wait(0.2):
            return missing


STAT_NAMES = (
    "records_consumed",
    "consumer_reopens",
    "rows_written",
    "batches_written",
    "inserts",
    "commits",
    "retries",
    "write_failures",
    "commit_failures",
    "json_fallbacks",
    "refused_inserts",
    "unwritable_rows",
    "dropped_rows",
    "usage_rows",
    "unpriced_rows",
    "budget_rows",
    "dlq_rows",
    "replay_checks",
    "repaired_rows",
)


class SinkRunner:
    """The ClickHouse sink as a worker component: a thread with its own consumer and client."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_factory: Callable[[], Client] | None = None,
        on_flush_step: FlushObserver | None = None,
        consumer_options: dict[str, Any] | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        """`consumer_options` are extra KafkaConsumer settings (e.g. `session_timeout_ms`)."""
        self.settings = settings
        self.consumer_group = f"{settings.topic_prefix}sink"
        self.topics: dict[str, TopicKind] = {
            settings.topic("usage.priced"): "priced",
            settings.topic("usage.dlq"): "dlq",
            settings.topic("budget.state"): "budget",
        }
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self._client_factory = client_factory or self._default_client_factory
        self._on_flush_step = on_flush_step
        self._consumer_options = dict(consumer_options or {})
        self._now = now
        self._buffer = BatchBuffer(settings.sink.batch_rows, settings.sink.batch_seconds, now)
        self._stop = threading.Event()
        self._owned: set[TopicPartition] = set()  # the consumer's assignment, set by its listener
        self._thread: threading.Thread | None = None
        self._stop_deadline = float("inf")
        self._client: Client | None = None
        self._consumer: KafkaConsumer | None = None
        self._recorded: set[OffsetRange] = set()
        """Ranges already in sink_batches and not committed yet (step 1 is skipped for them)."""
        self._replays: set[OffsetRange] = set()
        """Recorded ranges read back from sink_batches: once written again, they are checked for
        rows a killed writer's dedup log names but its parts lack (sinks.replay_repair)."""
        self._check_replays = False
        self._failing = False
        self._fatal: BaseException | None = None
        self.last_error: str | None = None
        self._stall = StallWatch(STALL_S)
        self._next_stall_check = 0.0

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the sink thread (it creates the consumer and the ClickHouse client)."""
        if self._thread is not None:
            raise SinkError("SinkRunner.start() was called twice; create a new SinkRunner instead")
        self._thread = threading.Thread(target=self._run, name="meterline-sink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Flush what is held, commit, close; give up retrying after `timeout` seconds."""
        self._stop_deadline = self._now() + timeout * 0.8
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def held_records(self) -> int:
        """Records consumed and not yet handed to a write."""
        return len(self._buffer)

    def healthy(self) -> bool:
        """True while the thread runs and its last write (if any) succeeded."""
        return self._thread is not None and self._thread.is_alive() and not self._failing and self._fatal is None

    # -- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._client = self._retry("open ClickHouse and migrate", self._open_client)
            if self._client is None:
                return
            # Only where this process is the database's one writer (sinks.replay_repair).
            self._check_replays = client_is_embedded(self._client)
            self._consumer = self._open_consumer()
            self._loop()
        except BaseException as exc:  # keep it for healthy() and the log
            self._fatal = exc
            self.last_error = str(exc)
            log.exception("the ClickHouse sink stopped on an unexpected error")
        finally:
            self._close()

    def _loop(self) -> None:
        idle_s = self.settings.sink.idle_flush_ms / 1000
        while not self._stop.is_set():
            consumer = self._consumer
            assert consumer is not None
            self._load_recorded_ranges()
            if len(self._buffer):
                wait = self._buffer.seconds_until_due()
                if idle_s:
                    wait = min(wait, idle_s)  # a poll that stays empty this long: the burst is in
            else:
                wait = self.settings.sink.batch_seconds
            polled = consumer.poll(
                timeout_ms=max(1, int(min(wait, 0.5) * 1000)), max_records=self.settings.sink.batch_rows
            )
            for records in polled.values():
                for record in records:
                    source = SourceRecord(
                        record.topic, record.partition, record.offset, record.key, record.value, record.timestamp
                    )
                    if self.topics[record.topic] == "priced":
                        for line in record_lines(source):
                            self._buffer.add(line)
                    else:
                        self._buffer.add(source)
                    self.stats["records_consumed"] += 1
            if self._buffer.due(self._positions(), idle=bool(idle_s) and not polled):
                self._flush()
            if not polled and self._stalled():
                self._reopen_consumer()
        self._flush()

    def _stalled(self) -> bool:
        """Every STALL_CHECK_S: whether the consumer took nothing it could take for STALL_S."""
        now = self._now()
        if now < self._next_stall_check:
            return False
        self._next_stall_check = now + STALL_CHECK_S
        consumer = self._consumer
        assert consumer is not None
        known = self._positions()
        # A partition whose position stays unknown cannot be fetched either: -1 is below any end.
        positions = {(tp.topic, tp.partition): known.get((tp.topic, tp.partition), -1) for tp in consumer.assignment()}
        if not positions:
            return False  # nothing assigned (more sinks than partitions, or a rebalance)
        try:
            from kafka.structs import TopicPartition as KafkaTopicPartition

            ends = consumer.end_offsets([KafkaTopicPartition(t, p) for t, p in positions], timeout_ms=5000)
        except Exception:  # noqa: BLE001 - no answer now: look again at the next check
            return False
        return self._stall.observe(now, positions, {(tp.topic, tp.partition): int(o) for tp, o in ends.items()})

    def _reopen_consumer(self) -> None:
        """Replace a stalled consumer by a new member of the group: what it held and did not
        write is read again from the committed offsets (and written with the same tokens)."""
        held = len(self._buffer)
        log.warning(
            "the sink's Kafka consumer took nothing for %.0f s while its partitions have records to read "
            "(kafka-python stopped fetching them); reopening it",
            STALL_S,
            extra={"held_records": held},
        )
        self.stats["consumer_reopens"] += 1
        self._buffer.reassign([], self._owned)
        self._owned = set()
        self._close_consumer()
        self._stall.reset()
        self._consumer = self._open_consumer()

    def _flush(self) -> None:
        """Write every batch that can be cut now, then commit its offsets."""
        self._load_recorded_ranges()
        batches = self._buffer.take(self._positions())
        if not batches:
            return
        if self._retry("write a batch to ClickHouse", lambda: self._write(batches)) is None:
            return  # stopping while ClickHouse fails: offsets stay uncommitted, replayed later
        self._commit(batches)

    def _write(self, batches: list[RangeBatch]) -> bool:
        client = self._client
        assert client is not None
        # 1. Record the boundaries of new ranges (write-ahead), so a replay re-cuts them alike.
        fresh = [b for b in batches if b.range not in self._recorded]
        if fresh:
            write_batch(client, plan_batch_log(self.consumer_group, fresh))
            self._recorded.update(b.range for b in fresh)
        self._notify("recorded", batches)
        # 2. Write every table's rows with tokens derived from the range's; decoding the next
        #    range overlaps ClickHouse ingesting the previous one. Rows refused for their data
        #    are written in pieces or dead-lettered inside the pipeline; a transient failure
        #    raises TransientWriteError and the caller retries this step (with step 1 done).
        counts: dict[str, int] = {}
        observer = None if self._on_flush_step is None else (lambda _write: self._notify("inserted", batches))
        with InsertPipeline(client, on_insert=observer) as pipeline:
            for batch in batches:
                for insert in plan_writes(self.topics[batch.range.topic], batch):
                    pipeline.submit(insert)
                    rows = len(insert.records) if isinstance(insert, JsonInsert) else len(insert.rows)
                    counts["inserts"] = counts.get("inserts", 0) + 1
                    counts["rows_written"] = counts.get("rows_written", 0) + rows
                    stat = _TABLE_STAT[insert.table]
                    counts[stat] = counts.get(stat, 0) + rows
        self._repair_replays(client, batches, counts)
        counts["batches_written"] = len(batches)
        counts["json_fallbacks"] = pipeline.json_fallbacks
        counts["refused_inserts"] = pipeline.refused_inserts
        counts["unwritable_rows"] = pipeline.unwritable_rows
        counts["dropped_rows"] = pipeline.dropped_rows
        for name, value in counts.items():
            self.stats[name] += value
        self._notify("written", batches)
        return True

    def _repair_replays(self, client: Client, batches: list[RangeBatch], counts: dict[str, int]) -> None:
        """2b. Replayed ranges: write what their first write recorded as written and did not store."""
        replayed = [b for b in batches if b.range in self._replays]
        if not replayed:
            return
        if self._check_replays:
            for kind in sorted({self.topics[b.range.topic] for b in replayed}):
                report = repair_replayed(client, kind, [b for b in replayed if self.topics[b.range.topic] == kind])
                counts["repaired_rows"] = (
                    counts.get("repaired_rows", 0) + sum(report.rows.values()) + report.rollup_rows
                )
            counts["replay_checks"] = len(replayed)
        self._replays.difference_update(b.range for b in replayed)

    def _commit(self, batches: list[RangeBatch]) -> None:
        from kafka.structs import OffsetAndMetadata
        from kafka.structs import TopicPartition as KafkaTopicPartition

        consumer = self._consumer
        assert consumer is not None
        offsets: dict[Any, Any] = {}
        for batch in batches:
            tp = KafkaTopicPartition(batch.range.topic, batch.range.partition)
            offsets[tp] = OffsetAndMetadata(
                max(batch.range.last + 1, offsets.get(tp, OffsetAndMetadata(0, "", -1)).offset), "", -1
            )
        # 3. Commit the offsets after the rows are in ClickHouse.
        try:
            consumer.commit(offsets)
            self.stats["commits"] += 1
        except Exception as exc:  # noqa: BLE001 - a rebalance: the new owner replays, deduplicated
            self.stats["commit_failures"] += 1
            log.warning("committing sink offsets failed (%s); the partition's next owner replays them", exc)
            return
        # 4. Forget the committed ranges.
        for batch in batches:
            self._recorded.discard(batch.range)
        self._notify("committed", batches)

    # -- helpers --------------------------------------------------------------------------
    def _retry(self, what: str, action: Callable[[], Any]) -> Any:
        """Run `action` until it succeeds; back off on SinkWriteError; None when told to stop.

        A TransientWriteError is what is expected here. A PermanentWriteError reaches this only
        for rows the sink made itself (sink_batches), which have no record to dead-letter: it
        is retried too, offsets held, rather than dropped."""
        attempt = 0
        while True:
            try:
                result = action()
            except SinkWriteError as exc:
                attempt += 1
                self._failing = True
                self.last_error = str(exc)
                self.stats["write_failures"] += 1
                delay = Backoff(0.2, self.settings.sink.retry_max_seconds).delay(attempt)
                log.warning("could not %s (attempt %d, next in %.1fs): %s", what, attempt, delay, exc)
                if self._stop.is_set():
                    remaining = self._stop_deadline - self._now()
                    if remaining <= 0:
                        return None
                    time.sleep(min(delay, remaining))
                else:
                    self._stop.wait(delay)  # wakes early on stop; the next failure checks the deadline
                self.stats["retries"] += 1
                continue
            self._failing = False
            return result

    def _open_client(self) -> Client:
        try:
            client = self._client_factory()
        except Exception as exc:  # engine/server unavailable: retry
            raise TransientWriteError(None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
        try:
            apply_migrations(
                client, ttl_days=self.settings.sink.ttl_days, cluster=self.settings.sink.clickhouse_cluster
            )
        except Exception as exc:
            client.close()
            raise TransientWriteError(None, f"migrations: {str(exc).splitlines()[0]}") from exc
        return client

    def _default_client_factory(self) -> Client:
        from meterline.sinks.client import open_client

        return open_client(self.settings.effective_clickhouse_dsn)

    def _open_consumer(self) -> KafkaConsumer:
        from kafka import KafkaConsumer
        from kafka.consumer.subscription_state import ConsumerRebalanceListener

        runner = self

        class _Listener(ConsumerRebalanceListener):
            # kafka-python 3 calls these on its IO thread, where the blocking calls of a flush
            # (committed(), commit()) raise; so nothing is written here. Records held for a
            # partition that moves elsewhere are dropped: uncommitted, they are read again by
            # the next owner and written with the same tokens.
            def on_partitions_revoked(self, revoked: Any) -> None:
                pass  # the new assignment (on_partitions_assigned) decides what to drop

            def on_partitions_lost(self, lost: Any) -> None:
                # The assignment is emptied: every fetch position restarts from the commit.
                runner._buffer.reassign([], runner._owned)
                runner._owned = set()

            def on_partitions_assigned(self, assigned: Any) -> None:
                owned = {(tp.topic, tp.partition) for tp in assigned}
                runner._buffer.reassign(owned, runner._owned)
                runner._owned = owned

        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap.split(","),
            group_id=self.consumer_group,
            client_id=f"{self.consumer_group}-{id(self):x}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.sink.batch_rows,
            # The stream writes in Kafka transactions: a killed worker's aborted batch is
            # replayed with new offsets, so reading it too would count its events twice.
            isolation_level="read_committed",
            # Holding offsets through a long ClickHouse outage must not cost the assignment.
            max_poll_interval_ms=max(300_000, int(self.settings.sink.retry_max_seconds * 4000)),
            **{
                **kafka_python_group_options(self.settings.stream.fetch_max_wait_ms),
                **self._consumer_options,
            },
        )
        missing = await_topic_metadata(consumer, self.topics, METADATA_WAIT_S, self._stop)
        if missing:
            log.info("topics %s do not exist yet; the sink reads them once they are created", missing)
        consumer.subscribe(list(self.topics), listener=_Listener())
        return consumer

    def _load_recorded_ranges(self) -> None:
        """Read sink_batches for newly assigned partitions (retried while ClickHouse fails)."""
        consumer, client = self._consumer, self._client
        if consumer is None or client is None:
            return
        from kafka.structs import TopicPartition as KafkaTopicPartition

        for topic, partition in sorted(self._buffer.unknown()):
            committed = consumer.committed(KafkaTopicPartition(topic, partition))
            ranges = self._retry(
                "read recorded batch ranges",
                lambda: recorded_ranges(client, self.consumer_group, topic, partition, committed or 0),  # noqa: B023 - called here, in this iteration
            )
            if ranges is None:
                return
            self._buffer.set_recorded((topic, partition), ranges)
            self._recorded.update(ranges)
            self._replays.update(ranges)

    def _positions(self) -> dict[TopicPartition, int]:
        consumer = self._consumer
        if consumer is None:
            return {}
        positions = {}
        for tp in consumer.assignment():
            try:
                positions[(tp.topic, tp.partition)] = consumer.position(tp, timeout_ms=1000)
            except Exception:  # noqa: BLE001 - unknown yet: wait for records instead
                continue
        return positions

    def _notify(self, step: FlushStep, batches: list[RangeBatch]) -> None:
        if self._on_flush_step is not None:
            self._on_flush_step(step, batches)

    def _close(self) -> None:
        self._close_consumer()
        if self._client is not None:
            self._client.close()

    def _close_consumer(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except Exception:
                log.debug("closing the sink consumer failed", exc_info=True)
            self._consumer = None


_TABLE_STAT = {
    "usage_events": "usage_rows",
    "unpriced_events": "unpriced_rows",
    "budget_snapshots": "budget_rows",
    "dlq_events": "dlq_rows",
}
