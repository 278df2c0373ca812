"""Each part of the pipeline alone on this machine, with the same bytes: what bounds e2e.

    .venv/bin/python bench/limits.py [--events 200000] [--runs 3] [--bootstrap HOST:PORT]

1. broker: the packed messages bench/e2e.py's stepped phase sends (100 events of one team per
   message, JSON Lines), produced with a tight kafka-python loop (acks=all), then consumed
   with a tight loop (read_committed, as the stream reads);
2. per-event Python path: `validate_message` + `PriceCatalog.price_event` +
   `encode_priced_event` over every line of those messages, on one core (the stream's work);
3. chDB: the priced JSON lines that path gives, inserted as JSONEachRow into meterline's
   usage_events (migrations applied, the rollup view included) 25,000 rows per insert.

Each is the median of `--runs` runs. The table ends with bench/e2e.py's figures (from its JSON,
when there is one) as a fraction of the slowest part.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from e2e_support import machine, start_broker
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from rich.console import Console
from rich.table import Table
from stepped import PackedTraffic

from meterline.events import UsageEvent
from meterline.priced_json import encode_priced_event
from meterline.pricing import PriceCatalog
from meterline.producers.traffic import generate_events
from meterline.settings import PricingSettings
from meterline.sinks.client import open_client
from meterline.sinks.migrations import apply_migrations
from meterline.stream.validate import validate_message

EVENTS_PER_MESSAGE = 100
INSERT_ROWS = 25_000
MAX_EVENT_BYTES = 64 * 1024
console = Console()


def packed_messages(count: int) -> list[tuple[bytes, bytes]]:
    pool = generate_events(seed=5, teams=20, start=datetime.now(UTC), count=20_000, rate=10_000)
    traffic = PackedTraffic(pool, EVENTS_PER_MESSAGE)
    return [traffic.message(0, int(time.time() * 1000)) for _ in range(count // EVENTS_PER_MESSAGE)]


def broker_rates(bootstrap: str, messages: list[tuple[bytes, bytes]]) -> tuple[float, float]:
    """(produce, consume) events/s of one run on a fresh topic of 3 partitions."""
    topic = f"limits-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    admin.close()
    events = len(messages) * EVENTS_PER_MESSAGE
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=8 << 20)
    began = time.monotonic()
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush(120)
    produce_s = time.monotonic() - began
    producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
    )
    partitions = [TopicPartition(topic, p) for p in range(3)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    seen = 0
    began = time.monotonic()
    while seen < len(messages):
        for records in consumer.poll(timeout_ms=500).values():
            seen += len(records)
    consume_s = time.monotonic() - began
    consumer.close()
    return events / produce_s, events / consume_s


def python_path(messages: list[tuple[bytes, bytes]], catalog: PriceCatalog) -> tuple[float, list[bytes]]:
    """events/s of the per-event path, and the priced JSON lines it made."""
    ingested_at = datetime.now(UTC).isoformat()
    out: list[bytes] = []
    began = time.perf_counter()
    for key, value in messages:
        for line in value.split(b"\n"):
            event = validate_message(key, line, MAX_EVENT_BYTES)
            assert isinstance(event, UsageEvent), event
            out.append(encode_priced_event(event, catalog.price_event(event), late=False, ingested_at=ingested_at))
    return len(out) / (time.perf_counter() - began), out


def chdb_rate(lines: list[bytes], folder: Path) -> float:
    """events/s of JSONEachRow inserts of `lines` into a fresh database's usage_events."""
    client = open_client(f"chdb://{folder / uuid.uuid4().hex[:8]}")
    try:
        apply_migrations(client)
        settings = {"async_insert": 0, "date_time_input_format": "best_effort"}
        began = time.perf_counter()
        for start in range(0, len(lines), INSERT_ROWS):
            block = b"\n".join(lines[start : start + INSERT_ROWS])
            client.raw_insert("usage_events", insert_block=block, fmt="JSONEachRow", settings=settings)
        rate = len(lines) / (time.perf_counter() - began)
        assert client.query("SELECT count() FROM usage_events").result_rows[0][0] == len(lines)
        return rate
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events per run (default 200000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per part; the median is reported (default 3)")
    parser.add_argument("--bootstrap", help="Kafka to use (default: start a LocalKafka on a free port)")
    parser.add_argument("--e2e", type=Path, default=Path("bench/results/e2e.json"), help="bench/e2e.py's JSON")
    parser.add_argument("--output", type=Path, default=Path("bench/results/limits.json"), help="JSON results file")
    args = parser.parse_args()
    info = machine()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="meterline-limits-")))
        bootstrap = args.bootstrap or start_broker(stack, folder, console)[0]
        with console.status(f"building {args.events:,} events in packed messages"):
            messages = packed_messages(args.events)
            catalog = PriceCatalog.load(PricingSettings())
        runs: dict[str, list[float]] = {"produce": [], "consume": [], "python": [], "chdb": []}
        for run in range(args.runs):
            with console.status(f"run {run + 1} of {args.runs}: broker"):
                produced, consumed = broker_rates(bootstrap, messages)
            with console.status(f"run {run + 1} of {args.runs}: per-event Python path"):
                python, lines = python_path(messages, catalog)
            with console.status(f"run {run + 1} of {args.runs}: chDB inserts"):
                stored = chdb_rate(lines, folder)
            for name, value in zip(runs, (produced, consumed, python, stored), strict=True):
                runs[name].append(value)
    medians = {name: statistics.median(values) for name, values in runs.items()}
    labels = {
        "produce": "broker: produce packed messages (kafka-python, acks=all)",
        "consume": "broker: consume them (kafka-python, read_committed)",
        "python": "per-event Python path (validate + price + priced JSON), one core",
        "chdb": f"chDB: JSONEachRow into usage_events, {INSERT_ROWS:,} rows per insert",
    }
    slowest = min(medians, key=lambda name: medians[name])
    e2e = json.loads(args.e2e.read_text()) if args.e2e.exists() else None
    fractions: dict[str, float] = {}
    if e2e is not None:
        figures = e2e.get("figures", {})
        sustained = figures.get("throughput", {}).get("events_per_s")
        stepped = figures.get("stepped", {}).get("highest_rate_kept_up")
        if sustained:
            fractions["e2e sustained (backlog)"] = sustained / medians[slowest]
        if stepped:
            fractions["e2e highest rate kept up"] = stepped / medians[slowest]
    table = Table(
        title=f"each part alone, median of {args.runs} runs, {args.events:,} events ({info['cpu_model']}, {info['cores']} cores)"
    )
    table.add_column("part")
    table.add_column("events/s", justify="right")
    table.add_column("runs", justify="right")
    for name, label in labels.items():
        mark = " (slowest)" if name == slowest else ""
        table.add_row(label + mark, f"{medians[name]:,.0f}", ", ".join(f"{v:,.0f}" for v in runs[name]))
    for label, fraction in fractions.items():
        table.add_row(f"{label} / slowest part", f"{fraction:.2f}", "")
    console.print(table)
    result = {
        "bench": "bench/limits.py",
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": info,
        "events": args.events,
        "runs": runs,
        "medians_events_per_s": medians,
        "slowest": slowest,
        "e2e_fraction_of_slowest": fractions,
        "e2e_source": str(args.e2e) if e2e is not None else None,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"written: {args.output}")


if __name__ == "__main__":
    main()
