"""Each part of the pipeline alone on this machine, with the same bytes: what bounds e2e.

    .venv/bin/python bench/limits.py [--events 200000] [--runs 3] [--bootstrap HOST:PORT]

1. broker, usage: the packed messages bench/e2e.py's stepped phase sends (100 events of one
   team per message, JSON Lines), produced with a tight kafka-python loop (acks=all), then
   consumed with a tight loop (read_committed, as the stream reads);
2. per-event Python path: `validate_message` + `PriceCatalog.price_event` +
   `encode_priced_event` over every line of those messages, on one core (the stream's work);
3. broker, usage.priced: the priced lines that path gives, packed per team as the stream
   sends them (`pack_lines`), produced and consumed the same way (the sink's read);
4. chDB: those priced lines inserted as JSONEachRow into meterline's usage_events
   (migrations applied, the rollup view included) 25,000 rows per insert.

Each part is timed and its CPU counted: this process's (all threads) and, when the bench
started the broker, the broker's (its JIT compiler threads left out), with the garbage
collector tuned as in the worker (`tune_for_service`). A warm-up run comes
first and is left out; each figure is the median of `--runs` runs. Summing the CPU of the
parts one event must pass gives floors: the least CPU an event costs in meterline's design
(twice through the broker, once into ClickHouse) and in the plain pipeline, and so the most
events/s this machine's cores could give even if everything else were free and perfectly
overlapped. The table ends with bench/e2e.py's figures (from its JSON, when there is one)
as fractions of meterline's ceiling and of the slowest part's rate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from e2e_support import jit_cpu_seconds, machine, process_cpu_seconds, start_broker
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from rich.console import Console
from rich.table import Table
from stepped import PackedTraffic

from meterline.events import UsageEvent
from meterline.gc_control import tune_for_service
from meterline.priced_json import encode_priced_event, pack_lines
from meterline.pricing import PriceCatalog
from meterline.producers.traffic import generate_events
from meterline.settings import PricingSettings, Settings
from meterline.sinks.client import open_client
from meterline.sinks.migrations import apply_migrations
from meterline.stream.validate import validate_message

EVENTS_PER_MESSAGE = 100
INSERT_ROWS = 25_000
MAX_EVENT_BYTES = 64 * 1024
PRICED_BATCH_MESSAGES = 100
"""Raw messages per stream batch when packing the priced lines (10,000 events: a span of
stream.batch_events), so each team's pack is as big as the stream makes it."""
console = Console()


def packed_messages(count: int) -> list[tuple[bytes, bytes]]:
    pool = generate_events(seed=5, teams=20, start=datetime.now(UTC), count=20_000, rate=10_000)
    traffic = PackedTraffic(pool, EVENTS_PER_MESSAGE)
    return [traffic.message(0, int(time.time() * 1000)) for _ in range(count // EVENTS_PER_MESSAGE)]


@dataclass(frozen=True)
class PartRun:
    """One run of one part: its wall time and the CPU it took, here and in the broker."""

    events: int
    seconds: float
    client_cpu_s: float
    """This process, all its threads: kafka-python's I/O thread, chDB's insert and merge pools."""
    broker_cpu_s: float | None
    """The broker's request handling over the same window (its JIT compiler threads left out: a
    fresh broker's warm-up, gone in a long run); None when the broker is not one this bench
    started."""

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        return (self.client_cpu_s + (self.broker_cpu_s or 0.0)) / self.events * 1e6


def broker_data_plane_cpu(pid: int | None) -> float | None:
    """The broker's CPU seconds so far without its JIT compiler threads; None without a pid."""
    if pid is None:
        return None
    return process_cpu_seconds(pid) - jit_cpu_seconds(pid)


class Measured:
    """Wall time and CPU (this process, the broker) of the block it wraps."""

    def __init__(self, events: int, broker_pid: int | None) -> None:
        self.events = events
        self.broker_pid = broker_pid
        self.run: PartRun | None = None

    def __enter__(self) -> Measured:
        self._began = time.monotonic()
        self._client = process_cpu_seconds(os.getpid())
        self._broker = broker_data_plane_cpu(self.broker_pid)
        return self

    def __exit__(self, *exc: object) -> None:
        broker = broker_data_plane_cpu(self.broker_pid)
        self.run = PartRun(
            self.events,
            time.monotonic() - self._began,
            process_cpu_seconds(os.getpid()) - self._client,
            None if broker is None or self._broker is None else broker - self._broker,
        )

    def result(self) -> PartRun:
        assert self.run is not None, "measured block has not finished"
        return self.run


def fresh_topic(bootstrap: str) -> str:
    topic = f"limits-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    admin.close()
    return topic


def produce(
    bootstrap: str,
    topic: str,
    messages: list[tuple[bytes, bytes]],
    events: int,
    broker_pid: int | None,
    compression: str | None = None,
) -> PartRun:
    """A tight kafka-python loop (acks=all) sending `messages` to `topic`."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_request_size=8 << 20,
        compression_type=compression,
    )
    with Measured(events, broker_pid) as measured:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush(120)
    producer.close()
    return measured.result()


COMPRESSIONS: tuple[str | None, ...] = (None, "zstd")
"""Each broker part runs uncompressed and with zstd (the producers' default codec); the floors
take whichever cost less CPU to produce and consume in that run, so they stay the least."""


def through_broker(
    bootstrap: str, records: list[tuple[bytes, bytes]], events: int, broker_pid: int | None
) -> tuple[PartRun, PartRun, str]:
    """(produce, consume) of `records` on a fresh topic, with the codec that cost less CPU."""
    best: tuple[PartRun, PartRun, str] | None = None
    for compression in COMPRESSIONS:
        topic = fresh_topic(bootstrap)
        produced = produce(bootstrap, topic, records, events, broker_pid, compression)
        consumed = consume(bootstrap, topic, len(records), events, broker_pid)
        cost = produced.cpu_us_per_event + consumed.cpu_us_per_event
        if best is None or cost < best[0].cpu_us_per_event + best[1].cpu_us_per_event:
            best = (produced, consumed, compression or "none")
    assert best is not None
    return best


def consume(bootstrap: str, topic: str, count: int, events: int, broker_pid: int | None) -> PartRun:
    """A tight kafka-python loop (read_committed, as the stream and the sink read) reading
    `count` records of `topic` from the start."""
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
    with Measured(events, broker_pid) as measured:
        while seen < count:
            for records in consumer.poll(timeout_ms=500).values():
                seen += len(records)
    consumer.close()
    return measured.result()


def python_path(messages: list[tuple[bytes, bytes]], catalog: PriceCatalog) -> tuple[PartRun, list[tuple[str, bytes]]]:
    """The per-event path over every line, and the (team, priced JSON line) it made."""
    ingested_at = datetime.now(UTC).isoformat()
    out: list[tuple[str, bytes]] = []
    with Measured(sum(value.count(b"\n") + 1 for _, value in messages), None) as measured:
        for key, value in messages:
            for line in value.split(b"\n"):
                event = validate_message(key, line, MAX_EVENT_BYTES)
                assert isinstance(event, UsageEvent), event
                price = catalog.price_event(event)
                out.append((event.team, encode_priced_event(event, price, late=False, ingested_at=ingested_at)))
    return measured.result(), out


def priced_records(priced: list[tuple[str, bytes]], per_message: int) -> list[tuple[bytes, bytes]]:
    """The priced lines as the stream sends them on usage.priced: one team's lines of a batch
    of `per_message` raw messages packed as JSON Lines (`pack_lines`, at most
    stream.priced_pack_events lines and PACK_MAX_BYTES a record)."""
    pack_events = Settings().stream.priced_pack_events
    records: list[tuple[bytes, bytes]] = []
    for start in range(0, len(priced), per_message):
        by_team: dict[str, list[bytes]] = {}
        for team, line in priced[start : start + per_message]:
            by_team.setdefault(team, []).append(line)
        for team, lines in by_team.items():
            records += [(team.encode(), pack) for pack in pack_lines(lines, max_events=pack_events)]
    return records


def chdb_inserts(lines: list[bytes], folder: Path) -> tuple[PartRun, int]:
    """JSONEachRow inserts of `lines` into a fresh database's usage_events, and the active parts
    usage_events has after them. The engine merges parts in the background as they arrive, so
    the process's CPU over the inserts counts those merges too (8 inserts of 25,000 rows leave
    about 3 parts: the merges ran during them)."""
    client = open_client(f"chdb://{folder / uuid.uuid4().hex[:8]}")
    try:
        apply_migrations(client)
        settings = {"async_insert": 0, "date_time_input_format": "best_effort"}
        with Measured(len(lines), None) as inserting:
            for start in range(0, len(lines), INSERT_ROWS):
                block = b"\n".join(lines[start : start + INSERT_ROWS])
                client.raw_insert("usage_events", insert_block=block, fmt="JSONEachRow", settings=settings)
        assert client.query("SELECT count() FROM usage_events").result_rows[0][0] == len(lines)
        parts = client.query(
            "SELECT count() FROM system.parts WHERE active AND database = currentDatabase() AND table = 'usage_events'"
        ).result_rows[0][0]
    finally:
        client.close()
    return inserting.result(), int(parts)


PARTS: dict[str, str] = {
    "produce_raw": "broker: produce the packed usage messages (kafka-python, acks=all, codec as cheaper)",
    "consume_raw": "broker: consume them (kafka-python, read_committed)",
    "python": "per-event Python path (validate + price + priced JSON), one core",
    "produce_priced": "broker: produce the priced lines packed per team, as the stream does",
    "consume_priced": "broker: consume those (kafka-python, read_committed)",
    "chdb_insert": f"chDB: JSONEachRow into usage_events, {INSERT_ROWS:,} rows per insert, merges included",
}
FLOORS: dict[str, tuple[str, ...]] = {
    "meterline: every part once an event": tuple(PARTS),
    "meterline without the per-event Python path": tuple(part for part in PARTS if part != "python"),
    "the plain pipeline (bench/peer.py) on produced events": ("consume_raw", "python", "chdb_insert"),
}
"""What one event costs at the least, as sums of parts: meterline's design sends each event
through the broker twice (usage, usage.priced) and stores it once; the plain pipeline reads
events already produced, prices and stores them. Their own logic (faust, transactions,
de-duplication, budgets) comes on top, so these floors give ceilings no implementation of
that design reaches on this machine."""


def ceilings(cpu_us: dict[str, float], cores: int) -> dict[str, dict[str, float]]:
    """Per floor: its CPU µs an event and the events/s `cores` fully busy would give at most."""
    result: dict[str, dict[str, float]] = {}
    for name, parts in FLOORS.items():
        floor = sum(cpu_us[part] for part in parts)
        result[name] = {"cpu_us_per_event": floor, "events_per_s_at_most": cores * 1e6 / floor if floor else 0.0}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events per run (default 200000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per part; the median is reported (default 3)")
    parser.add_argument(
        "--warmup-runs",
        type=int,
        default=1,
        help="runs first and left out (default 1): a fresh broker runs interpreted and compiles at first",
    )
    parser.add_argument(
        "--bootstrap", help="Kafka to use (default: start a LocalKafka on a free port; only then is its CPU measured)"
    )
    parser.add_argument("--e2e", type=Path, default=Path("bench/results/e2e.json"), help="bench/e2e.py's JSON")
    parser.add_argument("--output", type=Path, default=Path("bench/results/limits.json"), help="JSON results file")
    args = parser.parse_args()
    info = machine()
    runs: dict[str, list[PartRun]] = {part: [] for part in PARTS}
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="meterline-limits-")))
        broker_pid: int | None = None
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            bootstrap, broker_pid = start_broker(stack, folder, console)
        with console.status(f"building {args.events:,} events in packed messages"):
            messages = packed_messages(args.events)
            catalog = PriceCatalog.load(PricingSettings())
        # The garbage collector as the worker's processes run it, so the per-event path is
        # measured under the stream's settings (the A/B of it here was inside the machine's drift).
        tune_for_service()
        events = len(messages) * EVENTS_PER_MESSAGE
        parts_left: list[int] = []
        codecs: list[tuple[str, str]] = []
        for run in range(args.warmup_runs + args.runs):
            warming = run < args.warmup_runs
            step = f"warm-up run {run + 1}" if warming else f"run {run - args.warmup_runs + 1} of {args.runs}"
            taken = {part: len(values) for part, values in runs.items()}
            with console.status(f"{step}: producing and consuming the usage messages"):
                produced, consumed, codec = through_broker(bootstrap, messages, events, broker_pid)
                runs["produce_raw"].append(produced)
                runs["consume_raw"].append(consumed)
            with console.status(f"{step}: per-event Python path"):
                python, priced = python_path(messages, catalog)
                runs["python"].append(python)
            with console.status(f"{step}: producing and consuming the priced lines"):
                records = priced_records(priced, PRICED_BATCH_MESSAGES)
                produced, consumed, priced_codec = through_broker(bootstrap, records, events, broker_pid)
                runs["produce_priced"].append(produced)
                runs["consume_priced"].append(consumed)
            with console.status(f"{step}: chDB inserts"):
                inserted, parts = chdb_inserts([line for _, line in priced], folder)
                runs["chdb_insert"].append(inserted)
            # Not kept into the next run: each run starts with the same live objects.
            del priced, records
            if warming:
                for part, count in taken.items():
                    del runs[part][count:]
            else:
                parts_left.append(parts)
                codecs.append((codec, priced_codec))
    rates = {part: statistics.median(r.events_per_s for r in values) for part, values in runs.items()}
    cpu_us = {part: statistics.median(r.cpu_us_per_event for r in values) for part, values in runs.items()}
    broker_us = {
        part: statistics.median((r.broker_cpu_s or 0.0) / r.events * 1e6 for r in values)
        for part, values in runs.items()
    }
    limits = ceilings(cpu_us, info["cores"])
    slowest = min(PARTS, key=lambda part: rates[part])
    e2e = json.loads(args.e2e.read_text()) if args.e2e.exists() else None
    e2e_figures: dict[str, float] = {}
    if e2e is not None:
        figures = e2e.get("figures", {})
        for label, value in (
            ("e2e sustained (backlog)", figures.get("throughput", {}).get("events_per_s")),
            ("e2e drain (worker resumed on a backlog)", figures.get("drain", {}).get("events_per_s")),
            ("e2e highest rate kept up", figures.get("stepped", {}).get("highest_rate_kept_up")),
            ("peer (bench/peer.py)", figures.get("peer", {}).get("events_per_s")),
        ):
            if value:
                e2e_figures[label] = float(value)
    table = Table(
        title=f"each part alone, median of {args.runs} runs, {events:,} events ({info['cpu_model']}, {info['cores']} cores)"
    )
    table.add_column("part")
    table.add_column("events/s", justify="right")
    table.add_column("CPU µs an event", justify="right")
    table.add_column("of it the broker's", justify="right")
    table.add_column("events/s of the runs", justify="right")
    measured_broker = broker_pid is not None
    for part, label in PARTS.items():
        mark = " (slowest)" if part == slowest else ""
        broker = f"{broker_us[part]:.1f}" if measured_broker and part.startswith(("produce", "consume")) else ""
        shown = ", ".join(f"{r.events_per_s:,.0f}" for r in runs[part])
        table.add_row(label + mark, f"{rates[part]:,.0f}", f"{cpu_us[part]:.1f}", broker, shown)
    console.print(table)
    bound = Table(title=f"the least CPU an event takes, and the most events/s {info['cores']} cores fully busy give")
    bound.add_column("floor")
    bound.add_column("CPU µs an event", justify="right")
    bound.add_column("events/s at most", justify="right")
    for name, figures in limits.items():
        bound.add_row(name, f"{figures['cpu_us_per_event']:.1f}", f"{figures['events_per_s_at_most']:,.0f}")
    meterline_bound = limits["meterline: every part once an event"]["events_per_s_at_most"]
    for label, value in e2e_figures.items():
        bound.add_row(
            f"{label}: {value:,.0f} events/s",
            "",
            f"{value / meterline_bound:.2f} of meterline's, {value / rates[slowest]:.2f} of the slowest part's",
        )
    console.print(bound)
    if not measured_broker:
        console.print("[yellow]the broker's CPU was not measured (--bootstrap): the floors leave it out[/]")
    result = {
        "bench": "bench/limits.py",
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": info,
        "events": events,
        "broker_cpu_measured": measured_broker,
        "runs": {part: [asdict(r) for r in values] for part, values in runs.items()},
        "warmup_runs": args.warmup_runs,
        "usage_events_parts_after_inserts": parts_left,
        "cheaper_codec_per_run_usage_and_priced": codecs,
        "medians_events_per_s": rates,
        "medians_cpu_us_per_event": cpu_us,
        "medians_broker_cpu_us_per_event": broker_us if measured_broker else None,
        "slowest": slowest,
        "floors": limits,
        "e2e": e2e_figures,
        "e2e_fraction_of_meterline_ceiling": {label: value / meterline_bound for label, value in e2e_figures.items()},
        "e2e_fraction_of_slowest": {label: value / rates[slowest] for label, value in e2e_figures.items()},
        "e2e_source": str(args.e2e) if e2e is not None else None,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"written: {args.output}")


if __name__ == "__main__":
    main()
