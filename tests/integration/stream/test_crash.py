"""kill -9 mid-stream: after a restart every event is counted once and every alert fired once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import pytest

from meterline.messages import AlertEvent, BudgetState, PricedEvent
from meterline.pricing import PriceCatalog
from meterline.settings import Settings
from tests.integration.stream.harness import Reader, WorkerProcess, event, make_producer, produce_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_kill9_mid_stream_then_restart_counts_once_and_alerts_once(
    start_worker: Callable[..., WorkerProcess], kafka_bootstrap: str, topic_prefix: str, store: str
) -> None:
    if store.startswith("rocksdb"):
        pytest.importorskip(
            "rocksdict", reason="the rocksdb store needs the `rocksdb` extra (pip install meterline[rocksdb])"
        )
    env = {"METERLINE_STREAM__STORE": store}
    catalog = PriceCatalog.load(Settings().pricing)
    events = [event(i, team="ml") for i in range(6000)]
    total = sum((catalog.price_event(e).cost_usd for e in events), Decimal(0))
    limit = (total * Decimal("0.95")).quantize(Decimal("0.01"))
    toml = f"""
[stream]
take_max = 200
take_within = 0.05

[[budgets]]
team = "ml"
name = "daily"
limit_usd = "{limit}"
period = "day"
thresholds = [10, 25, 50, 75, 100]
"""
    usage = f"{topic_prefix}usage"
    worker = start_worker(toml, env=env)
    producer = make_producer(kafka_bootstrap)
    produce_events(producer, usage, events[:1000])
    priced = Reader(kafka_bootstrap, f"{topic_prefix}usage.priced")
    priced.poll_until(lambda rs: len(rs) >= 1000)
    # Mid-stream: the next events are flowing in small batches when the worker dies.
    produce_events(producer, usage, events[1000:4000])
    deadline = time.monotonic() + 60
    while worker.metric("meterline_stream_events_in_total") < 1500 and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.kill9()
    processed_before_kill = len(priced.poll_until(lambda rs: False, timeout=1))
    assert processed_before_kill < 4000, "the worker finished before it was killed; the test proves nothing"

    restarted = start_worker(toml, env=env)
    # Duplicates after the restart: some early ids again, then the rest.
    produce_events(producer, usage, events[:500] + events[4000:])
    producer.close()
    priced.poll_until(lambda rs: len(rs) >= len(events), timeout=90)
    priced.settle(quiet=3)
    ids = Counter(PricedEvent.model_validate_json(r.value).event_id for r in priced.records)
    assert ids == Counter({e.event_id: 1 for e in events})

    states = Reader(kafka_bootstrap, f"{topic_prefix}budget.state")
    states.poll_until(lambda rs: any(BudgetState.model_validate_json(r.value).spend_usd == total for r in rs))
    last = BudgetState.model_validate_json(states.settle(quiet=2)[-1].value)
    assert last.spend_usd == total

    alerts = Reader(kafka_bootstrap, f"{topic_prefix}alerts")
    alerts.settle(quiet=3)
    fired = Counter(AlertEvent.model_validate_json(r.value).alert_id for r in alerts.records)
    thresholds = {k: v for k, v in fired.items() if "/threshold/" in k}
    assert len(thresholds) == 5
    assert set(fired.values()) == {1}, fired
    assert restarted.metric("meterline_stream_duplicates_total") >= 500
    for reader in (priced, states, alerts):
        reader.close()
    assert restarted.stop() == 0


def test_state_committed_just_before_a_kill_is_restored(
    start_worker: Callable[..., WorkerProcess], kafka_bootstrap: str, topic_prefix: str
) -> None:
    """The worker dies right after its first transactions commit and a new one starts at
    once: the new worker must hold every committed id and cent (seen lost with faust's own
    table recovery, which is why the worker reads its changelogs itself)."""
    catalog = PriceCatalog.load(Settings().pricing)
    first = [event(i, team="ml") for i in range(400)]
    later = [event(i, team="ml") for i in range(400, 600)]
    total = sum((catalog.price_event(e).cost_usd for e in first + later), Decimal(0))
    toml = f"""
[stream]
take_max = 200
take_within = 0.05

[[budgets]]
team = "ml"
name = "daily"
limit_usd = "{(total * 10).quantize(Decimal("0.01"))}"
period = "day"
thresholds = [50]
"""
    usage = f"{topic_prefix}usage"
    worker = start_worker(toml)
    producer = make_producer(kafka_bootstrap)
    priced = Reader(kafka_bootstrap, f"{topic_prefix}usage.priced")
    produce_events(producer, usage, first)
    priced.poll_until(lambda rs: len(rs) >= len(first), timeout=60)  # committed: read_committed
    worker.kill9()

    restarted = start_worker(toml)
    produce_events(producer, usage, first + later)  # all of `first` again: duplicates now
    producer.close()
    priced.poll_until(lambda rs: len(rs) >= len(first) + len(later), timeout=90)
    priced.settle(quiet=3)
    ids = Counter(PricedEvent.model_validate_json(r.value).event_id for r in priced.records)
    assert ids == Counter({e.event_id: 1 for e in first + later})
    states = Reader(kafka_bootstrap, f"{topic_prefix}budget.state")
    states.poll_until(
        lambda rs: any(BudgetState.model_validate_json(r.value).spend_usd == total for r in rs), timeout=60
    )
    assert BudgetState.model_validate_json(states.settle(quiet=2)[-1].value).spend_usd == total
    assert restarted.metric("meterline_stream_duplicates_total") == len(first)
    for reader in (priced, states):
        reader.close()
    assert restarted.stop() == 0
