"""Bench: events/s from one producer process into Kafka, and emit() latency p50/p99.

    .venv/bin/python bench/producer.py --bootstrap 127.0.0.1:9092

Each run emits `--events` pre-built realistic events (a pool from the traffic generator,
cycled) as fast as the caller can, then flushes; throughput = events acknowledged by the broker
(acks=all) / time from the first emit to the last acknowledgement. Every emit() is timed with
perf_counter_ns. The median of the runs is printed with the machine's core count. Runs stay
under the queue limit, so nothing is spooled (the counters printed prove it).

Sustained mode, `--rate R [--seconds S]`: each run offers R events/s for S seconds (in 1 ms
slices), as an application would, and prints the rate the broker acknowledged them at and the
largest backlog (emitted, not yet answered) seen: a bounded backlog and an acknowledged rate
equal to the offered one mean R is sustained.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from itertools import cycle, islice
from typing import Any

from meterline.producers import ProducerTuning, UsageProducer
from meterline.producers.handles import ProducerCounters
from meterline.producers.kafka_config import available_codec
from meterline.producers.traffic import generate_events


def percentile(sorted_values: list[int], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))] / 1000.0


def one_run(producer: UsageProducer, events: list, count: int) -> tuple[float, float, float, float]:  # type: ignore[type-arg]  # a list of UsageEvent or of raw bytes
    latencies = [0] * count
    clock = time.perf_counter_ns
    emit = producer.emit
    began = time.perf_counter()
    for index, event in enumerate(islice(cycle(events), count)):
        start = clock()
        emit(event)
        latencies[index] = clock() - start
    emitted = time.perf_counter()
    if not producer.flush(120):
        raise SystemExit("flush did not finish in 120 s: is the broker at --bootstrap up?")
    done = time.perf_counter()
    latencies.sort()
    return count / (done - began), count / (emitted - began), percentile(latencies, 0.5), percentile(latencies, 0.99)


def paced_run(
    producer: UsageProducer, events: list, rate: int, seconds: float
) -> tuple[float, float, float, float, int]:  # type: ignore[type-arg]  # a list of UsageEvent or of raw bytes
    """Offer `rate` events/s for `seconds` (emitted in 1 ms slices), then flush. Sustained means
    the broker acknowledged them about as fast as they were offered and the backlog (emitted,
    not yet answered) stayed bounded: its maximum is returned last."""
    count = int(rate * seconds)
    latencies = [0] * count
    clock = time.perf_counter_ns
    emit = producer.emit
    source = cycle(events)
    before = producer.counters()
    began = time.perf_counter()
    emitted = max_backlog = 0
    while emitted < count:
        due = min(count, int((time.perf_counter() - began) * rate) + 1)
        while emitted < due:
            start = clock()
            emit(next(source))
            latencies[emitted] = clock() - start
            emitted += 1
        counters = producer.counters()
        answered = (counters.sent + counters.spooled + counters.failed) - (before.sent + before.spooled + before.failed)
        max_backlog = max(max_backlog, emitted - answered)
        time.sleep(0.001)
    offered_for = time.perf_counter() - began
    if not producer.flush(120):
        raise SystemExit("flush did not finish in 120 s: is the broker at --bootstrap up?")
    done = time.perf_counter()
    latencies.sort()
    return (
        count / (done - began),
        count / offered_for,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        max_backlog,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--events", type=int, default=150_000, help="events per run (default 150000)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs (default 3)")
    parser.add_argument("--pool", type=int, default=20_000, help="distinct pre-built events (default 20000)")
    parser.add_argument("--linger-ms", type=int, default=ProducerTuning.linger_ms)
    parser.add_argument("--batch-size", type=int, default=ProducerTuning.batch_size)
    parser.add_argument(
        "--rate",
        type=int,
        default=0,
        help="offer this many events/s per run instead of emitting "
        "--events as fast as possible (sustained mode; default 0: as fast as possible)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run in --rate mode (default 10)")
    parser.add_argument(
        "--compression", default=ProducerTuning.compression, choices=["auto", "lz4", "zstd", "gzip", "none"]
    )
    args = parser.parse_args()
    tuning = ProducerTuning(linger_ms=args.linger_ms, batch_size=args.batch_size, compression=args.compression)

    events = generate_events(seed=1, teams=20, start=datetime.now(UTC), count=args.pool, duplicate_share=0.0)
    topic = f"bench.producer.{uuid.uuid4().hex[:8]}"
    payload = statistics.mean(len(e.to_json_bytes()) for e in events[:1000])
    print(
        f"machine: {os.cpu_count()} cores; topic {topic}; {args.runs} runs x {args.events:,} events "
        f"(~{payload:.0f} B JSON each); linger {tuning.linger_ms} ms, batch {tuning.batch_size:,} B, "
        f"compression {available_codec(tuning.compression)}"
    )
    with (
        tempfile.TemporaryDirectory() as spool_dir,
        UsageProducer(args.bootstrap, topic, spool_dir, fsync="never", tuning=tuning) as producer,
    ):
        one_run(producer, events, 5_000)  # warm up: connection, metadata, topic creation
        if args.rate:
            paced = []
            for run in range(1, args.runs + 1):
                result = paced_run(producer, events, args.rate, args.seconds)
                paced.append(result)
                print(
                    f"run {run}: offered {args.rate:,}/s for {args.seconds:g} s -> {result[0]:>9,.0f} events/s acknowledged "
                    f"(offered {result[1]:,.0f}/s); most emitted but unanswered at once: {result[4]:,}; "
                    f"emit() p50 {result[2]:.2f} µs, p99 {result[3]:.2f} µs"
                )
            print_summary(
                paced, f"acknowledged at {args.rate:,}/s offered (goal >= 50,000 sustained)", producer.counters()
            )
            return
        results = []
        for run in range(1, args.runs + 1):
            result = one_run(producer, events, args.events)
            results.append(result)
            print(
                f"run {run}: {result[0]:>9,.0f} events/s acknowledged | emit() {result[1]:>10,.0f} calls/s, "
                f"p50 {result[2]:.2f} µs, p99 {result[3]:.2f} µs"
            )
        counters = producer.counters()
    print_summary(results, "into Kafka (goal >= 50,000)", counters)


def print_summary(results: list[Any], rate_label: str, counters: ProducerCounters) -> None:
    """Medians over the runs (acknowledged events/s, emit() p50 and p99) and the counters."""
    acked, p50, p99 = (statistics.median(r[i] for r in results) for i in (0, 2, 3))
    print(f"median: {acked:,.0f} events/s {rate_label}; emit() p50 {p50:.2f} µs, p99 {p99:.2f} µs (goal < 50 µs)")
    print(f"counters: sent {counters.sent:,}, spooled {counters.spooled}, failed {counters.failed}")


if __name__ == "__main__":
    main()
