"""Every faust internal the stream touches, and nowhere else (faust-streaming 0.15.3, pinned).

faust acks and commits on its own in three places that break "a failed batch is never
committed": `Stream.take_events` acks every event of a batch in its `finally:` (also when
the agent raised), `Consumer.wait_empty`/`on_stop` commits the acked offsets as the worker
goes down, and `TransactionManager.commit` swallows a fenced producer. The stream therefore
commits through `commit_batch` here, and `disarm` makes faust's own acks of a failed batch
no-ops, so nothing it does on the way down commits that batch.

`missing_internals()` names what the installed faust lacks; a unit test runs it, so an
upgrade that moves one of these fails there and not in production.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import faust
    from faust.types import TP, EventT

log = logging.getLogger(__name__)

TESTED_FAUST_VERSION = "0.15.3"


def missing_internals() -> list[str]:
    """The faust internals this module relies on that the installed version does not have."""
    import faust.streams
    from faust.transport.consumer import Consumer, TransactionManager
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Producer

    wanted: list[tuple[str, object, str]] = [
        ("faust.streams._current_event", faust.streams, "_current_event"),
        ("AIOKafkaConsumerThread._create_worker_consumer", AIOKafkaConsumerThread, "_create_worker_consumer"),
        ("Consumer.wait_empty", Consumer, "wait_empty"),
        ("Consumer.seek_wait", Consumer, "seek_wait"),
        ("TransactionManager.commit", TransactionManager, "commit"),
        ("Producer.abort_transaction", Producer, "abort_transaction"),
        ("Producer.begin_transaction", Producer, "begin_transaction"),
    ]
    missing = [name for name, owner, attribute in wanted if not hasattr(owner, attribute)]
    # Instance attributes, checked on the source of the methods that set them.
    consumer_source = inspect.getsource(Consumer)
    for attribute in ("_committed_offset", "_acked", "_acked_index", "_gap", "_unacked_messages"):
        if f"self.{attribute}" not in consumer_source:
            missing.append(f"Consumer.{attribute}")
    producer_source = inspect.getsource(Producer)
    for attribute in ("_transaction_producers", "_trn_locks"):
        if f"self.{attribute}" not in producer_source:
            missing.append(f"Producer.{attribute}")
    return missing


# -- the consumer's fetch ------------------------------------------------------------------------
def install_fetch_max_wait(fetch_max_wait_ms: int) -> None:
    """Make faust's worker consumers use `fetch_max_wait_ms` (process-wide; idempotent, the
    last value wins).

    faust's aiokafka driver creates the worker's consumer with `fetch_max_wait_ms=1500`,
    hard-coded. Under a steady 10,000 events/s the agent then got its messages in bursts (emit
    -> batch start p50 1,376 ms, p99 1,812 ms); with 50 ms: p50 227 ms, p99 490 ms.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = AIOKafkaConsumerThread._create_worker_consumer
    original = getattr(create, "__wrapped__", create)

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        # Read by AIOKafkaConsumer.start() when it builds its Fetcher.
        consumer._fetch_max_wait_ms = fetch_max_wait_ms
        return consumer

    create_worker_consumer.__wrapped__ = original  # type: ignore[attr-defined]  # functools' marker for the wrapped original
    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]  # faust's private method, replaced here (this module's job)


# -- acks and offsets ---------------------------------------------------------------------------
def disarm(events: Sequence[EventT]) -> None:
    """Make faust's later acks of `events` no-ops, so nothing it commits includes them.

    `Consumer.ack` records an offset as safe to commit only for a message not yet marked
    acked; marking them here (without the book) keeps `take_events`' `finally:` and
    `wait_empty` from committing a failed batch. A restart reads them from the committed offset.
    """
    for event in events:
        event.message.acked = True


def committed_offsets(app: faust.App) -> Mapping[TP, int | None]:
    """faust's book of committed offsets, read from the group at the last assignment."""
    return app.consumer._committed_offset  # type: ignore[attr-defined]  # faust's private state (this module's job)


def _record_commit(app: faust.App, offsets: Mapping[TP, int]) -> None:
    """Keep faust's book in step with a commit made here, so its own commits (on rebalance,
    on stop) find nothing pending."""
    consumer = app.consumer
    consumer._committed_offset.update(offsets)  # type: ignore[attr-defined]  # faust's private state (this module's job)
    for tp, next_offset in offsets.items():
        acked = consumer._acked[tp]  # type: ignore[attr-defined]  # faust's private state (this module's job)
        acked[:] = [offset for offset in acked if offset >= next_offset]
        consumer._acked_index[tp] = set(acked)  # type: ignore[attr-defined]  # faust's private state (this module's job)
        consumer._gap.pop(tp, None)  # type: ignore[attr-defined]  # faust's private state (this module's job)


async def seek(app: faust.App, tp: TP, offset: int) -> None:
    """Seek the worker's consumer to `offset` of `tp` in the consumer's own thread, and move
    faust's read offset with it (its `Consumer.seek` calls aiokafka from the agent's thread,
    racing the fetcher: seen as KeyError in aiokafka's fetched_records)."""
    await app.consumer.seek_wait({tp: offset})


# -- transactions -------------------------------------------------------------------------------
def transaction_producer(app: faust.App, transactional_id: str) -> tuple[Any, Any]:
    """The aiokafka transactional producer faust keeps for `transactional_id`, and its lock."""
    producer = app.producer
    found = producer._transaction_producers.get(transactional_id)  # type: ignore[attr-defined]  # faust's private state (this module's job)
    if found is None:
        raise LookupError(f"no transactional producer for {transactional_id}: the partition was revoked mid-batch")
    return found, producer._trn_locks[transactional_id]  # type: ignore[attr-defined]  # faust's private state (this module's job)


async def commit_batch(app: faust.App, offsets_by_tid: Mapping[str, Mapping[TP, int]]) -> None:
    """Send each transaction its offsets and commit it; raise on any failure (faust's own
    commit logs a fenced producer and returns as if it had committed)."""
    group_id = app.conf.id
    for transactional_id, offsets in offsets_by_tid.items():
        producer, lock = transaction_producer(app, transactional_id)
        async with lock:
            await producer.send_offsets_to_transaction(dict(offsets), group_id)
            await producer.commit_transaction()
            await producer.begin_transaction()
    _record_commit(app, {tp: offset for offsets in offsets_by_tid.values() for tp, offset in offsets.items()})


async def abort(app: faust.App, transactional_ids: Sequence[str]) -> list[str]:
    """Abort the open transactions of `transactional_ids` (best effort: a producer that is
    gone or fenced has nothing to abort, the broker ends its transaction); return the ids
    that could not be aborted."""
    failed: list[str] = []
    for transactional_id in transactional_ids:
        try:
            producer, lock = transaction_producer(app, transactional_id)
        except LookupError:
            continue
        try:
            async with lock:
                await producer.abort_transaction()
                await producer.begin_transaction()
        except Exception:  # logged; the broker aborts it at the fence or timeout
            log.warning("could not abort transaction %s", transactional_id, exc_info=True)
            failed.append(transactional_id)
    return failed


# -- tables -------------------------------------------------------------------------------------
@contextlib.contextmanager
def current_event(event: EventT) -> Iterator[None]:
    """Make `event` faust's current event: stores (rocksdb) pick their partition from it."""
    from faust.streams import _current_event

    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
