"""A failed batch is never committed: a fault injected at each step of a real worker's batch
path (meterline/faults.py) leaves the group's committed offset and the read_committed outputs in
step, whatever stops the worker; a restart then counts every event exactly once."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from meterline.events import UsageEvent
from meterline.faults import FAULT_POINTS
from meterline.messages import BudgetState, PricedEvent
from meterline.pricing import PriceCatalog
from meterline.settings import Settings
from tests.integration.stream.harness import (
    Reader,
    WorkerProcess,
    event,
    make_producer,
    produce_events,
    produce_packed_events,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 400
BUDGET_TOML = """
[[budgets]]
team = "ml"
name = "daily"
limit_usd = "1000"
period = "day"
thresholds = [50]
"""
TOML = (
    """
[stream]
take_max = 50
take_within = 0.05
"""
    + BUDGET_TOML
)


def committed_offset(bootstrap: str, group: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, 0)) or 0
    finally:
        consumer.close()


def wait_exit(worker: WorkerProcess, timeout: float = 90.0) -> int:
    assert worker.proc is not None
    deadline = time.monotonic() + timeout
    while worker.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.proc.poll() is not None, f"the worker did not stop after the injected fault:\n{worker.log()}"
    return worker.proc.returncode


def assert_counted_once(bootstrap: str, prefix: str, priced: Reader, events: list[UsageEvent], total: Decimal) -> None:
    """Every event priced exactly once, and the latest budget state spends exactly `total`."""
    priced.poll_until(lambda rs: len(rs) >= len(events), timeout=90)
    assert priced_ids(priced) == Counter({e.event_id: 1 for e in events})
    states = Reader(bootstrap, f"{prefix}budget.state")
    try:
        last = states.poll_until(
            lambda rs: bool(rs) and BudgetState.model_validate_json(rs[-1].value).spend_usd == total, timeout=60
        )
        assert BudgetState.model_validate_json(last[-1].value).spend_usd == total
    finally:
        states.close()


def priced_ids(reader: Reader) -> Counter[str]:
    return Counter(PricedEvent.model_validate_json(r.value).event_id for r in reader.settle(quiet=2))


def ml_events() -> tuple[list[UsageEvent], Decimal]:
    """EVENTS events of team ml and what they cost in all, priced by the default catalog."""
    events = [event(i, team="ml") for i in range(EVENTS)]
    catalog = PriceCatalog.load(Settings().pricing)
    return events, sum((catalog.price_event(e).cost_usd for e in events), Decimal(0))


def restart_counts_once(
    bootstrap: str,
    prefix: str,
    tmp_path: Path,
    toml: str,
    priced: Reader,
    producer: KafkaProducer,
    events: list[UsageEvent],
    total: Decimal,
    messages: int,
) -> None:
    """A new worker without the fault prices every event once, spends exactly `total` and
    commits every one of the `messages`; closes `priced` and `producer`."""
    second_dir = tmp_path / "restart"
    second_dir.mkdir()
    second = WorkerProcess(bootstrap, prefix, second_dir, toml=toml).start()
    try:
        assert_counted_once(bootstrap, prefix, priced, events, total)
        assert committed_offset(bootstrap, f"{prefix}stream", f"{prefix}usage") == messages
    finally:
        priced.close()
        producer.close()
        assert second.stop() == 0


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_a_batch_that_fails_at_any_step_is_aborted_and_read_again(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, point: str
) -> None:
    """One fault: the worker aborts the batch, rebuilds its state and reads it again; every
    event counts once and the worker never stops."""
    events, total = ml_events()
    usage = f"{topic_prefix}usage"
    producer = make_producer(kafka_bootstrap)
    worker = WorkerProcess(
        kafka_bootstrap, topic_prefix, tmp_path, toml=TOML, env={"METERLINE_STREAM__INJECT_FAULTS": f"{point}:3"}
    )
    worker.start()
    priced = Reader(kafka_bootstrap, f"{topic_prefix}usage.priced")
    try:
        produce_events(producer, usage, events)
        assert_counted_once(kafka_bootstrap, topic_prefix, priced, events, total)
        assert worker.metric("meterline_stream_batches_failed_total") == 1
        assert "injected fault at " + point in worker.log(full=True)
        assert worker.proc is not None and worker.proc.poll() is None
    finally:
        priced.close()
        producer.close()
        assert worker.stop() == 0


@pytest.mark.parametrize("point", ["before_send", "after_flush", "after_commit"])
def test_a_batch_failing_every_attempt_stops_the_worker_with_nothing_of_it_committed(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, point: str
) -> None:
    events, total = ml_events()
    usage = f"{topic_prefix}usage"
    producer = make_producer(kafka_bootstrap)
    # Every event is a message of the one partition: offset i holds events[i].
    first = WorkerProcess(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        toml=TOML,
        env={"METERLINE_STREAM__INJECT_FAULTS": f"{point}:3", "METERLINE_STREAM__BATCH_ATTEMPTS": "1"},
    )
    first.start()
    produce_events(producer, usage, events)
    assert wait_exit(first) == 1
    assert "injected fault at " + point in first.log(full=True)

    # What is committed and what readers see agree exactly: the batch that failed is in neither.
    committed = committed_offset(kafka_bootstrap, f"{topic_prefix}stream", usage)
    priced = Reader(kafka_bootstrap, f"{topic_prefix}usage.priced")
    assert priced_ids(priced) == Counter({e.event_id: 1 for e in events[:committed]}), f"committed offset {committed}"
    assert committed < EVENTS, "every batch committed: the fault proved nothing"

    # A restart without the fault counts every event once and the budget exactly.
    restart_counts_once(kafka_bootstrap, topic_prefix, tmp_path, TOML, priced, producer, events, total, EVENTS)


# -- a taken batch committed in spans (stream.batch_events) -----------------------------------
PER_MESSAGE = 10
SPAN_MESSAGES = 3
PACKED_TOML = (
    f"""
[stream]
take_max = 50
take_within = 1.0
batch_events = {PER_MESSAGE * SPAN_MESSAGES}
"""
    + BUDGET_TOML
)
"""40 packed messages of 10 events, all in the topic before the worker starts: its first take
holds them all (take_within 1 s), committed in spans of 3 messages (30 events). The points
below are reached once per span (one partition), so `point:3` fails the third span."""


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_a_failing_span_of_a_taken_batch_leaves_the_spans_before_it_committed_and_nothing_after(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, point: str
) -> None:
    events, total = ml_events()
    usage = f"{topic_prefix}usage"
    producer = make_producer(kafka_bootstrap)
    messages = produce_packed_events(producer, usage, events, PER_MESSAGE)
    first = WorkerProcess(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        toml=PACKED_TOML,
        env={"METERLINE_STREAM__INJECT_FAULTS": f"{point}:3", "METERLINE_STREAM__BATCH_ATTEMPTS": "1"},
    ).start()
    assert wait_exit(first) == 1
    assert "injected fault at " + point in first.log(full=True)

    # Two spans committed (three when the fault came after the third one's commit); the
    # failing span and every span after it in the same take are in no output.
    spans_committed = 3 if point == "after_commit" else 2
    committed = committed_offset(kafka_bootstrap, f"{topic_prefix}stream", usage)
    assert committed == spans_committed * SPAN_MESSAGES
    priced = Reader(kafka_bootstrap, f"{topic_prefix}usage.priced")
    assert priced_ids(priced) == Counter({e.event_id: 1 for e in events[: committed * PER_MESSAGE]})

    restart_counts_once(kafka_bootstrap, topic_prefix, tmp_path, PACKED_TOML, priced, producer, events, total, messages)


@pytest.mark.parametrize("point", ["after_flush", "before_commit"])
def test_a_failing_span_is_read_again_with_the_rest_of_its_take(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, point: str
) -> None:
    """One fault in the third span: it and the spans after it are read again; every event
    counts once and the worker keeps running."""
    events, total = ml_events()
    producer = make_producer(kafka_bootstrap)
    produce_packed_events(producer, f"{topic_prefix}usage", events, PER_MESSAGE)
    worker = WorkerProcess(
        kafka_bootstrap, topic_prefix, tmp_path, toml=PACKED_TOML, env={"METERLINE_STREAM__INJECT_FAULTS": f"{point}:3"}
    ).start()
    priced = Reader(kafka_bootstrap, f"{topic_prefix}usage.priced")
    try:
        assert_counted_once(kafka_bootstrap, topic_prefix, priced, events, total)
        assert worker.metric("meterline_stream_batches_failed_total") == 1
        # Every span commits on its own: the 40 messages took at least 14 transactions.
        assert worker.metric("meterline_stream_batches_total") >= -(-len(events) // (PER_MESSAGE * SPAN_MESSAGES))
        assert worker.proc is not None and worker.proc.poll() is None
    finally:
        priced.close()
        producer.close()
        assert worker.stop() == 0
