"""Rows/s the sink writes to the embedded engine (chDB) for a realistic batch.

Prints medians over several batches for two figures:
- write: one INSERT of planned rows into usage_events (with its hourly-rollup materialized
  view and an insert deduplication token), i.e. what ClickHouse accepts;
- decode+plan+write: from Kafka message bytes (PricedEvent JSON) to rows in ClickHouse, as the
  sink does it (plan_writes: ClickHouse parses the stream's JSON itself);
- the same through the exact path (plan_inserts: pydantic validation, Python rows, Arrow), which
  the sink keeps for records not in the stream's JSON and for lines ClickHouse refuses.
Goal: write >= 200,000 rows/s. Usage: `.venv/bin/python bench/sink.py [--rows 100000] [--runs 5]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from meterline.sinks.client import open_client
from meterline.sinks.insert_plan import OffsetRange, RangeBatch, SourceRecord, plan_inserts, plan_writes
from meterline.sinks.migrations import apply_migrations
from meterline.sinks.writer import InsertPipeline, write_batch

# The sample data lives with the tests (it is not shipped); run from anywhere, import it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.samples import sample_priced_events


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def fresh_batch(values: list[bytes], id_prefix: bytes, first: int) -> RangeBatch:
    """The values as records from offset `first`, their event ids prefixed with `id_prefix`."""
    records = [
        SourceRecord(
            "bench.usage.priced", 0, first + i, None, v.replace(b'"event_id":"', b'"event_id":"' + id_prefix, 1), 0
        )
        for i, v in enumerate(values)
    ]
    return RangeBatch(OffsetRange("bench.usage.priced", 0, first, first + len(values) - 1), records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows per batch (default 100000)")
    parser.add_argument("--runs", type=int, default=5, help="batches per figure (default 5)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="batches written first and not counted: the engine's first inserts "
        "create parts, partitions and caches (default 1)",
    )
    args = parser.parse_args()

    events = sample_priced_events(args.rows, seed=1)
    values = [e.model_dump_json().encode() for e in events]
    with tempfile.TemporaryDirectory() as folder:
        client = open_client(f"chdb://{folder}/clickhouse")
        try:
            apply_migrations(client)
            write_rates, full_rates, exact_rates = [], [], []
            for run in range(args.warmup + args.runs):
                first = run * args.rows * 3
                # Fresh event ids per batch, so ReplacingMergeTree merges collapse nothing.
                batch = fresh_batch(values, b"w%d-" % run, first)
                inserts = plan_inserts("priced", batch)
                started = time.perf_counter()
                for insert in inserts:
                    write_batch(client, insert)
                if run >= args.warmup:
                    write_rates.append(args.rows / (time.perf_counter() - started))
                for planner, rates, tag, start in (
                    (plan_writes, full_rates, b"f%d-", first + args.rows),
                    (plan_inserts, exact_rates, b"x%d-", first + 2 * args.rows),
                ):
                    batch = fresh_batch(values, tag % run, start)
                    started = time.perf_counter()
                    with InsertPipeline(client) as pipeline:
                        for write in planner("priced", batch):
                            pipeline.submit(write)
                    if run >= args.warmup:
                        rates.append(args.rows / (time.perf_counter() - started))
            stored = client.query("SELECT count() FROM usage_events FINAL").result_rows[0][0]
        finally:
            client.close()
    expected = args.rows * (args.warmup + args.runs) * 3
    assert stored == expected, f"expected {expected} rows, found {stored}"
    print(f"machine: {machine()}; load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min)")
    print(
        f"batch: {args.rows:,} realistic priced events (35 columns, Decimal(38,12) money, Map tags), {args.runs} runs after {args.warmup} warm-up"
    )
    print(
        f"write (INSERT + rollup MV + dedup token): median {statistics.median(write_rates):,.0f} rows/s "
        f"(min {min(write_rates):,.0f}, max {max(write_rates):,.0f}); goal >= 200,000"
    )
    print(
        f"decode+plan+write from Kafka bytes:       median {statistics.median(full_rates):,.0f} rows/s "
        f"(min {min(full_rates):,.0f}, max {max(full_rates):,.0f}); ClickHouse parses the stream's JSON"
    )
    print(
        f"the same, exact path (pydantic + Arrow):  median {statistics.median(exact_rates):,.0f} rows/s "
        f"(min {min(exact_rates):,.0f}, max {max(exact_rates):,.0f})"
    )


if __name__ == "__main__":
    main()
