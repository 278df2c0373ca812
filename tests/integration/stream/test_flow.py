"""N events in, N priced out (exact spend); duplicates once; every bad kind to the DLQ."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal

import pytest

from meterline.events import UsageEvent
from meterline.messages import BudgetState, DeadLetter, DeadLetterKind, PricedEvent
from meterline.pricing import PriceCatalog
from meterline.settings import Settings
from tests.integration.stream.harness import Reader, WorkerProcess, event, make_producer, produce_events

pytestmark = pytest.mark.integration

BUDGETS = """
[[budgets]]
team = "ml"
name = "monthly"
limit_usd = "1000000"
period = "month"

[[budgets]]
team = "search"
name = "monthly"
limit_usd = "1000000"
period = "month"
"""


def test_events_priced_once_with_exact_spend_and_bad_messages_dead_lettered(
    start_worker: Callable[..., WorkerProcess], kafka_bootstrap: str, topic_prefix: str
) -> None:
    worker = start_worker(BUDGETS)
    catalog = PriceCatalog.load(Settings().pricing)
    events = [
        event(i, team="ml" if i % 3 else "search", model="gpt-4o" if i % 2 else "gpt-4o-mini") for i in range(600)
    ]
    producer = make_producer(kafka_bootstrap)
    usage = f"{topic_prefix}usage"
    produce_events(producer, usage, events[:400])
    good = events[1].to_json_bytes()  # team ml
    bad: dict[DeadLetterKind, tuple[bytes, bytes]] = {
        "not_json": (b"ml", b"{broken"),
        "not_utf8": (b"ml", b"\xff\xfe\xfd"),
        "schema": (b"ml", b'{"team": "ml", "provider": "openai"}'),
        "wrong_key": (b"search", good),
        "oversized": (b"ml", b" " * 70_000 + good),
    }
    for key, value in bad.values():
        producer.send(usage, key=key, value=value)
    # Duplicates: the first 100 again, in a later batch, plus the rest.
    produce_events(producer, usage, events[:100] + events[400:])
    producer.close()

    priced_reader = Reader(kafka_bootstrap, f"{topic_prefix}usage.priced")
    priced_reader.poll_until(lambda rs: len(rs) >= 600)
    priced_reader.settle(quiet=3)
    parsed = [PricedEvent.model_validate_json(r.value) for r in priced_reader.records]
    assert Counter(p.event_id for p in parsed) == Counter({e.event_id: 1 for e in events})
    assert all(r.key == p.team.encode() for r, p in zip(priced_reader.records, parsed, strict=True))

    expected: dict[str, Decimal] = defaultdict(Decimal)
    for e in events:
        expected[e.team] += catalog.price_event(e).cost_usd
    got: dict[str, Decimal] = defaultdict(Decimal)
    for p in parsed:
        got[p.team] += p.cost_usd
    assert got == expected

    states = Reader(kafka_bootstrap, f"{topic_prefix}budget.state")
    states.poll_until(
        lambda rs: {BudgetState.model_validate_json(r.value).spend_usd for r in rs} >= set(expected.values())
    )
    latest = {}
    for record in states.records:
        state = BudgetState.model_validate_json(record.value)
        assert record.key == f"{state.team}/{state.budget}".encode()
        latest[state.team] = state.spend_usd
    assert latest == dict(expected)

    dlq = Reader(kafka_bootstrap, f"{topic_prefix}usage.dlq")
    dlq.poll_until(lambda rs: len(rs) >= len(bad))
    letters = {
        DeadLetter.model_validate_json(r.value).error_kind: DeadLetter.model_validate_json(r.value) for r in dlq.records
    }
    assert set(letters) == set(bad)
    for kind, (_key, value) in bad.items():
        letter = letters[kind]
        assert base64.b64decode(letter.value_b64) == value and letter.reason
        assert letter.topic == usage and letter.offset >= 400

    assert worker.metric("meterline_stream_duplicates_total") == 100
    assert worker.metric("meterline_stream_dlq_total") == len(bad)
    assert worker.metric("meterline_stream_priced_total") == 600
    assert worker.metric("meterline_stream_events_in_total") == 700 + len(bad)
    for reader in (priced_reader, states, dlq):
        reader.close()
    assert worker.stop() == 0


async def _produce_in_transactions(bootstrap: str, topic: str, batches: list[tuple[list[UsageEvent], bool]]) -> None:
    """Each (events, commit) pair in its own transaction, committed or aborted."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-app")
    await producer.start()
    try:
        for events, commit in batches:
            await producer.begin_transaction()
            for e in events:
                await producer.send(topic, e.to_json_bytes(), key=e.team.encode())
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()


def test_transactional_producers_offsets_without_records_are_no_loss(
    start_worker: Callable[..., WorkerProcess], kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Transaction markers and aborted records leave holes in the offsets the worker sees;
    it reads each hole back, finds it empty and goes on (a hole holding records would stop it)."""
    worker = start_worker(BUDGETS)
    events = [event(i, team="ml") for i in range(300)]
    batches = [(events[:100], True), (events[100:150], False), (events[150:], True)]
    asyncio.run(_produce_in_transactions(kafka_bootstrap, f"{topic_prefix}usage", batches))

    reader = Reader(kafka_bootstrap, f"{topic_prefix}usage.priced")
    reader.poll_until(lambda rs: len(rs) >= 250)
    reader.settle(quiet=3)
    ids = Counter(PricedEvent.model_validate_json(r.value).event_id for r in reader.records)
    assert ids == Counter({e.event_id: 1 for e in events[:100] + events[150:]})
    reader.close()
    assert worker.metric("meterline_stream_offset_holes_total") >= 1
    assert worker.metric("meterline_stream_redelivered_total") == 0
    assert worker.stop() == 0
