"""The plain pipeline meterline is measured against: what a user writes in an afternoon from the
same libraries, with none of meterline's guarantees.

- one kafka-python consumer (no group, from the first offset);
- meterline's own per-event path for each line of each message: `validate_message` (size,
  UTF-8, JSON, schema, key = team), `PriceCatalog.price_event`, `encode_priced_event`;
- one JSONEachRow insert into chDB per 25,000 rows, into meterline's own tables (migrations
  applied, so the rollup's materialized view runs too);
- no transactions, no de-duplication, no budgets, no dead letters (a bad line is skipped), no
  offsets committed: a crash loses or doubles whatever was in flight.

    .venv/bin/python bench/peer.py --bootstrap 127.0.0.1:9092 --topic usage --events 100000

Figure: events stored / (first record consumed -> last insert returned). bench/e2e.py runs it
with `--with-peer` on the same broker and the same records its throughput phase sent.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from meterline.events import UsageEvent
from meterline.priced_json import encode_priced_event
from meterline.pricing import PriceCatalog
from meterline.settings import PricingSettings
from meterline.sinks.client import open_client
from meterline.sinks.migrations import apply_migrations
from meterline.stream.validate import validate_message

INSERT_ROWS = 25_000
MAX_EVENT_BYTES = 64 * 1024


def run_peer(
    bootstrap: str,
    topic: str,
    database: Path,
    *,
    end_offsets: dict[int, int] | None = None,
    insert_rows: int = INSERT_ROWS,
) -> dict[str, Any]:
    """Consume `topic` from its first offset up to `end_offsets` (default: its end now), price
    and store every event; return the figures."""
    catalog = PriceCatalog.load(PricingSettings())
    client = open_client(f"chdb://{database}")
    apply_migrations(client)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
        isolation_level="read_committed",
    )
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = end_offsets or {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    remaining = {tp.partition for tp in partitions if ends.get(tp.partition, 0) > 0}
    pending: list[bytes] = []
    stored = skipped = 0
    began: float | None = None
    ingested_at = datetime.now(UTC).isoformat()

    def insert() -> None:
        nonlocal stored
        if pending:
            client.raw_insert(
                "usage_events",
                insert_block=b"\n".join(pending),
                fmt="JSONEachRow",
                settings={"async_insert": 0, "date_time_input_format": "best_effort"},
            )
            stored += len(pending)
            pending.clear()

    try:
        while remaining:
            polled = consumer.poll(timeout_ms=500, max_records=5_000)
            if polled and began is None:
                began = time.monotonic()
            for tp, records in polled.items():
                for record in records:
                    if record.offset >= ends[tp.partition]:
                        continue
                    for line in (record.value or b"").split(b"\n"):
                        event = validate_message(record.key, line, MAX_EVENT_BYTES)
                        if not isinstance(event, UsageEvent):
                            skipped += 1
                            continue
                        price = catalog.price_event(event)
                        pending.append(encode_priced_event(event, price, late=False, ingested_at=ingested_at))
                        if len(pending) >= insert_rows:
                            insert()
                    if record.offset + 1 >= ends[tp.partition]:
                        remaining.discard(tp.partition)
        insert()
        elapsed = time.monotonic() - (began or time.monotonic())
    finally:
        consumer.close()
        client.close()
    return {
        "events_stored": stored,
        "lines_skipped": skipped,
        "seconds": round(elapsed, 3),
        "events_per_s": round(stored / elapsed, 1) if elapsed else 0.0,
        "insert_rows": insert_rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True, help="the broker holding the topic")
    parser.add_argument("--topic", required=True, help="raw usage messages (as UsageProducer sends them)")
    parser.add_argument("--insert-rows", type=int, default=INSERT_ROWS, help=f"rows per insert (default {INSERT_ROWS})")
    parser.add_argument("--output", type=Path, default=Path("bench/results/peer.json"), help="JSON results file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meterline-peer-") as folder:
        result = run_peer(args.bootstrap, args.topic, Path(folder) / "chdb", insert_rows=args.insert_rows)
    print(
        f"peer: {result['events_stored']:,} events in {result['seconds']:.2f} s = {result['events_per_s']:,.0f} events/s"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"bench": "bench/peer.py", **result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
