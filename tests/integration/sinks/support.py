"""Helpers of the sink's integration tests: settings, topics, producing, waiting, totals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from meterline.messages import PricedEvent
from meterline.settings import Settings, SinkSettings

HERE = Path(__file__).resolve().parent


def sink_settings(bootstrap: str, prefix: str, dsn: str, **sink: Any) -> Settings:
    options = {"batch_rows": 50, "batch_seconds": 0.2, "retry_max_seconds": 0.5, **sink}
    return Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, clickhouse_dsn=dsn, sink=SinkSettings(**options))


def create_topics(bootstrap: str, prefix: str, partitions: int = 2) -> None:
    """The topics the sink reads, under `prefix`."""
    # Imported here: crashing_sink.py imports this module as a script, without `tests` on its path.
    from tests.support.topics import create_topics as create_named_topics

    create_named_topics(
        bootstrap, {f"{prefix}{name}": partitions for name in ("usage.priced", "usage.dlq", "budget.state")}
    )


def produce(bootstrap: str, topic: str, values: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    count = 0
    for key, value in values:
        producer.send(topic, key=key, value=value)
        count += 1
    producer.flush()
    producer.close()
    return count


def produce_priced(bootstrap: str, topic: str, events: Iterable[PricedEvent]) -> int:
    return produce(bootstrap, topic, ((e.team.encode(), e.model_dump_json().encode()) for e in events))


def produce_packed(bootstrap: str, topic: str, packs: Iterable[list[bytes]]) -> int:
    """Each pack as one record of JSON lines, keyed by its first event's team (as the stream
    writes usage.priced); returns the records produced."""
    return produce(bootstrap, topic, ((_team_of(lines[0]), b"\n".join(lines)) for lines in packs))


def _team_of(line: bytes) -> bytes:
    try:
        return PricedEvent.model_validate_json(line).team.encode()
    except ValueError:
        return b"unreadable"


def committed_to_the_end(bootstrap: str, group: str, topics: list[str]) -> bool:
    """Whether `group` has committed every partition of `topics` up to its end offset."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(partitions)
        return bool(partitions) and all((consumer.committed(tp) or 0) >= ends[tp] for tp in partitions)
    finally:
        consumer.close()


def wait_until(condition: Callable[[], bool], what: str, limit: float = 90.0) -> None:
    """Poll `condition` until true; fail naming `what` after `limit` seconds (a bound, not a goal)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {limit:.0f} s")
        time.sleep(0.1)


def totals(client: Any) -> dict[str, Any]:
    """Counts and money sums of the raw table (FINAL: collapsed) and of the rollup."""
    raw = client.query("SELECT count(), sum(cost_usd), uniqExact(event_id) FROM usage_events").result_rows[0]
    raw_final = client.query("SELECT count(), sum(cost_usd) FROM usage_events FINAL").result_rows[0]
    hourly = client.query("SELECT sum(requests), sum(cost_usd), sum(input_tokens) FROM usage_hourly").result_rows[0]
    return {
        "raw_rows": raw[0],
        "raw_cost": raw[1],
        "raw_ids": raw[2],
        "final_rows": raw_final[0],
        "final_cost": raw_final[1],
        "hourly_requests": hourly[0],
        "hourly_cost": hourly[1],
        "hourly_input_tokens": hourly[2],
        "unpriced": client.query("SELECT count() FROM unpriced_events").result_rows[0][0],
    }


def stored_totals(dsn: str) -> dict[str, Any]:
    """`totals` of the database at `dsn`, through a client of its own."""
    from meterline.sinks.client import open_client

    client = open_client(dsn)
    try:
        return totals(client)
    finally:
        client.close()


def recorded_batch_ranges(client: Any) -> list[tuple[int, int]]:
    """The (first, last) offsets sink_batches holds, in order."""
    rows = client.query("SELECT first_offset, last_offset FROM sink_batches FINAL ORDER BY first_offset").result_rows
    return [(int(first), int(last)) for first, last in rows]


def expected_totals(events: list[PricedEvent]) -> dict[str, Any]:
    cost = sum((e.cost_usd for e in events), Decimal(0))
    return {
        "raw_rows": len(events),
        "raw_cost": cost,
        "raw_ids": len({e.event_id for e in events}),
        "final_rows": len(events),
        "final_cost": cost,
        "hourly_requests": len(events),
        "hourly_cost": cost,
        "hourly_input_tokens": sum(e.input_tokens for e in events),
        "unpriced": sum(1 for e in events if not e.priced),
    }


def crash_after_writing(
    bootstrap: str, prefix: str, dsn: str, batch_rows: int, *, one_event_per_record: bool = True
) -> list[tuple[int, int]]:
    """Run crashing_sink.py until it has written its first flush (offsets from 0, in batches of
    `batch_rows` rows), SIGKILL it before it commits, and return the (first, last) ranges it
    wrote. With one event per record, each range is `batch_rows` offsets long."""
    crashing = subprocess.Popen(
        [sys.executable, str(HERE / "crashing_sink.py"), bootstrap, prefix, dsn, str(batch_rows)],
        cwd=HERE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE)},
    )
    try:
        assert crashing.stdout is not None
        line = crashing.stdout.readline()
        assert line.startswith("WRITTEN "), f"the crashing sink said {line!r} (exit {crashing.poll()})"
    finally:
        crashing.send_signal(signal.SIGKILL)
        crashing.wait(30)
    assert crashing.returncode == -signal.SIGKILL
    written = [tuple(int(n) for n in part.split(":")[1].split("-")) for part in line.split()[1].split(",")]
    assert written[0][0] == 0
    if one_event_per_record:
        assert written[0] == (0, batch_rows - 1) and all(last - first == batch_rows - 1 for first, last in written)
    return [(first, last) for first, last in written]


def run_sink_to_the_end(settings: Settings, bootstrap: str) -> Any:
    """Run a SinkRunner until its group committed usage.priced to the end and it holds nothing;
    return it (stopped) for its stats."""
    from meterline.sinks.runner import SinkRunner

    runner = SinkRunner(settings)
    runner.start()
    try:
        topics = [settings.topic("usage.priced")]
        wait_until(
            lambda: committed_to_the_end(bootstrap, runner.consumer_group, topics) and not runner.held_records,
            "the new sink to catch up",
        )
    finally:
        runner.stop()
    return runner
