"""Sustained events/s of one stream worker, and the produce -> priced delay.

Two phases against the broker named by METERLINE_KAFKA_BOOTSTRAP (default 127.0.0.1:9092):
1. throughput: N events are written to the usage topic first, then one `meterline worker
   --only stream` (a subprocess, exactly-once, one partition) prices and budgets them; the
   figure is events / (time from the first to the last priced event visible to a
   read_committed reader);
2. latency: events at a steady rate; p50/p99 of (priced event visible) - (event sent).
With --events-per-message N the throughput phase writes N events of one team per message (JSON
Lines), as a producer that packs events does; the latency phase always sends single events.
Goal: >= 50,000 events/s per worker.
Usage: `.venv/bin/python bench/stream.py [--events 200000] [--events-per-message 100]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer

from meterline.events import UsageEvent
from meterline.services.kafka_local import find_free_port
from meterline.settings import Settings
from meterline.stream.topics import ensure_topics

MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-sonnet"),
    ("google-gla", "gemini-1.5-pro"),
]
TEAMS = [f"team-{n}" for n in range(20)]


def machine() -> str:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def make_events(count: int, start: int) -> list[tuple[str, bytes, bytes]]:
    now = datetime.now(UTC)
    out = []
    for n in range(start, start + count):
        provider, model = MODELS[n % len(MODELS)]
        event = UsageEvent(
            team=TEAMS[n % len(TEAMS)],
            provider=provider,
            model=model,
            input_tokens=500 + n % 3000,
            output_tokens=50 + n % 700,
            cache_read_tokens=n % 200,
            occurred_at=now,
            project="bench",
        )
        out.append((event.event_id, event.team.encode(), event.to_json_bytes()))
    return out


def pack(events: list[tuple[str, bytes, bytes]], per_message: int) -> list[tuple[bytes, bytes]]:
    """(key, value) messages of up to `per_message` events of one team each, as JSON Lines."""
    if per_message <= 1:
        return [(key, value) for _, key, value in events]
    open_lines: dict[bytes, list[bytes]] = {}
    out = []
    for _, key, value in events:
        lines = open_lines.setdefault(key, [])
        lines.append(value)
        if len(lines) == per_message:
            out.append((key, b"\n".join(open_lines.pop(key))))
    out.extend((key, b"\n".join(lines)) for key, lines in open_lines.items())
    return out


def budgets_toml() -> str:
    return "".join(
        f'[[budgets]]\nteam = "{team}"\nname = "monthly"\nlimit_usd = "100000"\nperiod = "month"\n\n' for team in TEAMS
    )


def reader(bootstrap: str, topic: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events in the throughput phase (default 200000)")
    parser.add_argument(
        "--events-per-message",
        type=int,
        default=1,
        help="events of one team per message in the throughput phase, as JSON Lines (default 1)",
    )
    parser.add_argument("--rate", type=int, default=2_000, help="events/s in the latency phase (default 2000)")
    parser.add_argument("--seconds", type=int, default=10, help="length of the latency phase (default 10)")
    args = parser.parse_args()
    bootstrap = os.environ.get("METERLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix)
    ensure_topics(settings)
    usage = settings.topic("usage")
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks="all", compression_type="lz4"
    )

    print(f"machine: {machine()}; broker {bootstrap} on the same machine")
    events = make_events(args.events, 0)
    t0 = time.perf_counter()
    messages = 0
    for key, value in pack(events, args.events_per_message):
        producer.send(usage, key=key, value=value)
        messages += 1
    producer.flush()
    print(
        f"produced {len(events):,} events in {messages:,} messages in {time.perf_counter() - t0:.1f} s "
        "(before the worker starts)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "meterline.toml"
        config.write_text(budgets_toml())
        port = find_free_port()
        env = {
            **os.environ,
            "METERLINE_KAFKA_BOOTSTRAP": bootstrap,
            "METERLINE_TOPIC_PREFIX": prefix,
            "METERLINE_DATA_DIR": str(Path(tmp) / "data"),
            "METERLINE_STREAM__WEB_PORT": str(port),
            "METERLINE_CONFIG": str(config),
        }
        log = open(Path(tmp) / "worker.log", "wb")  # noqa: SIM115 - closed below
        worker = subprocess.Popen(
            [sys.executable, "-m", "meterline.cli", "worker", "--only", "stream", "--log-level", "warning"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            # Throughput from the worker's own counter (a reader here would compete for the 2 cores).
            def events_in() -> int:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                        body = response.read().decode()
                except OSError:
                    return -1
                line = next(x for x in body.splitlines() if x.startswith("meterline_stream_events_in_total "))
                return int(float(line.split()[1]))

            deadline = time.monotonic() + 90
            samples: list[tuple[float, int]] = []
            while time.monotonic() < deadline:
                count = events_in()
                if count > 0:
                    samples.append((time.perf_counter(), count))
                if count >= len(events):
                    break
                time.sleep(0.25)
            if not samples or samples[-1][1] < len(events):
                print(
                    f"only {samples[-1][1] if samples else 0:,} of {len(events):,} processed within 90 s; worker log:"
                )
                print((Path(tmp) / "worker.log").read_text(errors="replace")[-3000:])
                return
            (t_first, n_first), (t_last, n_last) = samples[0], samples[-1]
            rate = (n_last - n_first) / (t_last - t_first) if t_last > t_first else 0.0
            print(
                f"throughput: {len(events):,} events validated, de-duplicated, priced and budgeted at {rate:,.0f} events/s "
                f""
                f"({args.events_per_message} per message; worker counter sampled every 0.25 s; exactly-once; goal 50,000)"
            )
            priced = reader(bootstrap, settings.topic("usage.priced"))
            seen = 0
            deadline = time.monotonic() + 60
            while seen < len(events) and time.monotonic() < deadline:
                seen += sum(len(b) for b in priced.poll(timeout_ms=500, max_records=100_000).values())
            print(f"read back {seen:,} priced events (read_committed)")

            # Latency phase: a steady rate; delay from send to visible priced event.
            sent_at: dict[str, float] = {}
            latency_events = make_events(args.rate * args.seconds, args.events)
            delays: list[float] = []
            interval = 1.0 / args.rate
            start = time.perf_counter()
            index = 0
            while index < len(latency_events) or len(delays) < len(latency_events):
                now = time.perf_counter()
                due = min(len(latency_events), int((now - start) / interval) + 1)
                while index < due:
                    event_id, key, value = latency_events[index]
                    sent_at[event_id] = time.perf_counter()
                    producer.send(usage, key=key, value=value)
                    index += 1
                producer.flush() if index == len(latency_events) else None
                for batch in priced.poll(timeout_ms=5, max_records=50_000).values():
                    received = time.perf_counter()
                    for record in batch:
                        event_id = orjson.loads(record.value)["event_id"]
                        if event_id in sent_at:
                            delays.append(received - sent_at[event_id])
                if now - start > args.seconds + 60:
                    break
            delays.sort()
            if delays:
                p50 = statistics.median(delays) * 1000
                p99 = delays[int(len(delays) * 0.99) - 1] * 1000
                print(
                    f"latency at {args.rate:,} events/s for {args.seconds} s: p50 {p50:.0f} ms, p99 {p99:.0f} ms "
                    f"(send -> priced visible, {len(delays):,} events)"
                )
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                metrics = response.read().decode()
            batches = next(line for line in metrics.splitlines() if line.startswith("meterline_stream_batches_total "))
            print(f"worker: {batches}")
            priced.close()
        finally:
            worker.terminate()
            worker.wait(60)
            log.close()
            producer.close()


if __name__ == "__main__":
    main()
