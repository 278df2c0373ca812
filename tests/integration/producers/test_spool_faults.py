"""The offline spool against a broker that goes away: nothing lost, nothing sent twice.

These tests start their OWN broker on a free port (they stop and start it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from meterline.events import UsageEvent
from meterline.producers import ProducerTuning, UsageProducer
from meterline.producers.traffic import generate_events
from meterline.services.kafka_local import LocalKafka, find_free_port
from tests.integration.producers.kafka_read import consume

pytestmark = [pytest.mark.integration, pytest.mark.slow]
START = datetime(2025, 5, 1, tzinfo=UTC)
FAST_FAILING = ProducerTuning(bootstrap_timeout_s=1.0, delivery_timeout_s=3.0, stall_timeout_s=1.0)
CHILD = Path(__file__).with_name("spool_child.py")
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, kafka_jar_cache: Path) -> Iterator[LocalKafka]:
    kafka = LocalKafka(
        data_dir=tmp_path_factory.mktemp("own-kafka"), cache_dir=kafka_jar_cache, port=find_free_port(), heap="256m"
    )
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def ids_of(records) -> Counter[str]:
    return Counter(UsageEvent.from_json_bytes(r.value).event_id for r in records)


def test_broker_down_events_are_spooled_then_replayed_exactly_once(
    broker: LocalKafka, topic_prefix: str, tmp_path: Path
) -> None:
    topic = f"{topic_prefix}usage"
    warmup = UsageEvent(team="team-01", provider="openai", model="gpt-4o", occurred_at=START)
    events = generate_events(seed=11, teams=4, start=START, count=1000, duplicate_share=0.0)
    with UsageProducer(broker.bootstrap, topic, tmp_path / "spool", tuning=FAST_FAILING) as producer:
        assert producer.emit(warmup).wait(30) == "sent"
        broker.stop()
        handles = [producer.emit(event) for event in events]  # must not raise or block
        assert producer.flush(60)
        assert {h.outcome for h in handles} == {"spooled"}
        assert producer.counters().spooled == 1000
        broker.start()
        wait_for(lambda: producer.counters().replayed == 1000, 90, "the replay of 1,000 spooled events")
        counters = producer.counters()
    assert (counters.sent, counters.spooled, counters.replayed, counters.failed) == (1, 1000, 1000, 0)
    assert counters.spool_pending_bytes == 0

    received = ids_of(consume(broker.bootstrap, topic, expected=1001, settle=2.0))
    assert received == Counter([warmup.event_id, *(e.event_id for e in events)])  # each exactly once


def test_broker_away_past_the_delivery_timeout_mid_stream_then_everything_arrives(
    broker: LocalKafka, topic_prefix: str, tmp_path: Path
) -> None:
    """Batches in flight while the broker shuts down get retried, then expire (delivery
    timeout 3 s); kafka-python's idempotent client is stuck for good after that, so the
    producer must replace it."""
    topic = f"{topic_prefix}usage"
    events = generate_events(seed=31, teams=4, start=START, count=12_000, duplicate_share=0.0)
    stream_done = threading.Event()
    with UsageProducer(broker.bootstrap, topic, tmp_path / "spool", tuning=FAST_FAILING) as producer:

        def stream() -> None:  # ~1,000 events/s all along, so requests are in flight at the stop
            for i, event in enumerate(events):
                producer.emit(event)
                if i % 20 == 19:
                    time.sleep(0.02)
            stream_done.set()

        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        wait_for(lambda: producer.counters().sent >= 2000, 30, "2,000 events sent")
        broker.stop()
        time.sleep(6.0)  # twice the delivery timeout
        assert producer.counters().spooled > 0
        broker.start()
        wait_for(stream_done.is_set, 60, "the stream to end")
        wait_for(
            lambda: producer.counters().spool_pending_bytes == 0 and producer.flush(1),
            90,
            "the spool to drain after the broker returned",
        )
        counters = producer.counters()
    assert counters.failed == 0
    assert counters.sent + counters.replayed >= len(events)
    received = ids_of(consume(broker.bootstrap, topic, expected=len(events), settle=2.0))
    # At least once from the producer (an expired batch may have reached the log); the
    # worker drops repeats by event_id.
    assert set(received) == {e.event_id for e in events}


def test_spool_of_a_sigkilled_process_is_replayed_by_the_next_producer(
    broker: LocalKafka, topic_prefix: str, tmp_path: Path
) -> None:
    topic = f"{topic_prefix}usage"
    spool_dir = tmp_path / "spool"
    broker.stop()
    child = subprocess.Popen(
        [sys.executable, str(CHILD), broker.bootstrap, topic, str(spool_dir), "23", "1000"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # bounded by the child's flush(60) and the test timeout
        assert line.strip() == "SPOOLED 1000", line
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    broker.start()
    with UsageProducer(broker.bootstrap, topic, spool_dir) as producer:
        wait_for(lambda: producer.counters().replayed == 1000, 90, "the replay of the dead process's spool")
        counters = producer.counters()
    assert (counters.sent, counters.replayed, counters.failed, counters.spool_pending_bytes) == (0, 1000, 0, 0)

    expected = generate_events(seed=23, teams=4, start=START, count=1000, duplicate_share=0.0)
    records = consume(broker.bootstrap, topic, expected=1000, settle=2.0)
    assert ids_of(records) == Counter(e.event_id for e in expected)
    by_id = {e.event_id: e for e in expected}
    for record in records:  # the spool keeps bytes, key and headers exactly
        event = by_id[dict(record.headers)["ce_id"].decode()]
        assert (record.value, record.key, record.headers) == (
            event.to_json_bytes(),
            event.team.encode(),
            event.cloudevent_headers(),
        )
