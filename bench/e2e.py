"""End-to-end bench: producer SDK -> Kafka -> one `meterline worker` (stream + sink + alerts,
embedded ClickHouse) -> rows queryable by SQL and alerts posted to a Slack double.

    .venv/bin/python bench/e2e.py                      # starts its own broker on a free port
    .venv/bin/python bench/e2e.py --bootstrap 127.0.0.1:9092

Three figures, all on this one machine (producer, broker and worker share its cores):
1. sustained events/s: a backlog of realistic events is emitted with UsageProducer as fast as
   it goes, and the worker's /sql endpoint is polled until every distinct event is stored;
   figure = distinct events / (first emit -> last row counted in ClickHouse).
1b. drain events/s: the worker's processes are paused (SIGSTOP) while another backlog of the
   same shape is emitted, then resumed; figure = distinct events / (resume -> last row counted):
   the conditions bench/peer.py runs in (every event in Kafka before it starts, no producer
   beside it), so meterline / peer compares like with like.
2. emit -> queryable at a fixed offered rate (default 10,000 events/s; if the pipeline did not
   sustain that in step 1, half of what it sustained, said so in the output). Per event:
   usage_events.written_at (DEFAULT now64(3), stamped by ClickHouse when the sink's synchronous
   INSERT runs; rows are visible when that INSERT returns) minus the wall time emit() was called.
   Cross-check: /sql polled every 0.1 s gives, per event, the first poll answer that counted
   it (an upper bound, poll interval included).
   With the bench's own broker, the CPU its JIT compiler threads took in step 1 is printed too
   ("broker JIT compiling step 1"): a freshly started broker compiles its hot paths through
   the steps, CPU the pipeline beside it does not get.
3. crossing -> Slack: daily budgets with low limits on 40 teams cross 25/50/75/100% during step
   2 (sized so all cross once 2,000 events/s x duration are sent); per threshold alert, the
   Slack double's receipt of chat.postMessage (metadata names the alert) minus the emit time
   of the event that crossed (AlertEvent.triggered_by_event_id).
4. step 3, stepped offered rates (bench/stepped.py): each rate of --steps for --step-seconds,
   packed messages sent straight to Kafka; the highest rate kept up with (p99 emit -> queryable
   <= 1 s, lag at the step's end at most one second of its rate).
5. with --with-peer, bench/peer.py (the plain pipeline without guarantees) on step 1's records,
   the worker stopped first, and meterline / peer as a ratio (step 1b's rate / the peer's; step
   1's, with the producer running beside the pipeline, is printed too).
Goals: >= 50,000 events/s sustained and kept up with; p99 emit->queryable <= 1 s; p99
crossing->Slack <= 5 s; meterline ahead of the plain pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from contextlib import ExitStack
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from e2e_support import CpuWindow, SlackDouble, Worker, machine, percentile, sidecar_pid, start_broker
from kafka import KafkaConsumer
from peer import run_peer
from rich.console import Console
from rich.table import Table
from stepped import PackedTraffic, run_steps

from meterline.events import UsageEvent
from meterline.producers import UsageProducer
from meterline.producers.kafka_config import ProducerTuning
from meterline.producers.traffic import generate_events
from meterline.settings import Settings

GOAL_EVENTS_PER_S = 50_000
GOAL_QUERYABLE_P99_MS = 1_000
GOAL_SLACK_P99_MS = 5_000
THRESHOLDS = (25, 50, 75, 100)
BUDGET_TEAMS = 40
PHASE1_TEAMS = 20  # team-01 .. team-20 (7 characters)
SIDECAR = "worker's sink + alerts process"
PHASE2_TEAMS = 100  # team-001 .. team-100 (8 characters): the two phases never share a team
PHASE1_WHERE = "length(team) = 7"
PHASE2_WHERE = "length(team) = 8"
SQL_PAGE_ROWS = 90_000
FALLBACK_SHARE = 0.5
"""A paced rate makes small batches (more commits per event) than draining a backlog: 80% of the
backlog rate was measured to build a growing lag here, half of it did not."""
SIZING_RATE = 2_000
"""Budgets are sized before the worker starts, hence before the rate is known: every threshold
is crossed once SIZING_RATE x duration events are sent (at a higher rate, earlier in step 2)."""

console = Console()
if not console.is_terminal:
    console.width = 130  # a wide table in logs and pipes rather than 80 columns


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--bootstrap", help="Kafka to use (default: start a LocalKafka on a free port, jars from the shared cache)"
    )
    parser.add_argument("--events", type=int, default=100_000, help="events in the throughput backlog (default 100000)")
    parser.add_argument(
        "--rate", type=int, default=10_000, help="offered events/s of the latency phase (default 10000)"
    )
    parser.add_argument("--duration", type=int, default=30, help="seconds of the latency phase (default 30)")
    parser.add_argument(
        "--events-per-message",
        type=int,
        default=1,
        help="UsageProducer packing: events of one team per Kafka message, as JSON Lines (default 1)",
    )
    parser.add_argument(
        "--pack-linger-ms",
        type=int,
        default=ProducerTuning.pack_linger_ms,
        help=f"with packing, how long the producer lets events gather (default {ProducerTuning.pack_linger_ms})",
    )
    parser.add_argument(
        "--linger-ms",
        type=int,
        default=ProducerTuning.linger_ms,
        help=f"the producer's Kafka linger (default {ProducerTuning.linger_ms})",
    )
    parser.add_argument("--force-rate", action="store_true", help="offer --rate even when step 1 sustained less")
    parser.add_argument(
        "--steps",
        default="10000,20000,30000,40000,50000,60000",
        help="offered rates of step 3, events/s, comma-separated (default 10k..60k); '' skips step 3",
    )
    parser.add_argument("--step-seconds", type=float, default=60.0, help="seconds each rate is offered (default 60)")
    parser.add_argument(
        "--all-steps", action="store_true", help="offer every rate, not stopping after the first one not kept up with"
    )
    parser.add_argument(
        "--with-peer",
        action="store_true",
        help="then run bench/peer.py (the plain pipeline) on the records of step 1, worker stopped, same broker",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the worker under cProfile (main thread: the stream agent), "
        "write its stats here and print the top functions; slows the worker, figures then are not comparable",
    )
    parser.add_argument("--output", type=Path, default=Path("bench/results/e2e.json"), help="JSON results file")
    return parser.parse_args()


# -- set-up -------------------------------------------------------------------------------------
def topic_end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The end offset of each partition of `topic` now."""
    from kafka import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return {tp.partition: int(offset) for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def team_budgets(events: list[UsageEvent]) -> dict[str, Decimal]:
    """Daily limits for the top BUDGET_TEAMS teams: 98% of what they spend over `events`."""
    from meterline.pricing import PriceCatalog

    catalog = PriceCatalog.load(Settings().pricing)
    spend: dict[str, Decimal] = defaultdict(Decimal)
    seen: set[str] = set()
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            spend[event.team] += catalog.price_event(event).cost_usd
    top = sorted(spend, key=lambda team: -spend[team])[:BUDGET_TEAMS]
    return {
        team: max(Decimal("0.000001"), (spend[team] * Decimal("0.98")).quantize(Decimal("0.000001"))) for team in top
    }


def expected_crossings(events: list[UsageEvent], limits: dict[str, Decimal]) -> int:
    """How many threshold alerts the sent events must fire (same order, duplicates skipped)."""
    from meterline.pricing import PriceCatalog

    catalog = PriceCatalog.load(Settings().pricing)
    spend: dict[str, Decimal] = defaultdict(Decimal)
    seen: set[str] = set()
    for event in events:
        if event.team in limits and event.event_id not in seen:
            seen.add(event.event_id)
            spend[event.team] += catalog.price_event(event).cost_usd
    return sum(1 for team, limit in limits.items() for t in THRESHOLDS if spend[team] * 100 >= limit * t)


def budgets_toml(limits: dict[str, Decimal]) -> str:
    big = "".join(
        f'[[budgets]]\nteam = "team-{n:02d}"\nname = "monthly"\nlimit_usd = "1000000000"\nperiod = "month"\n\n'
        for n in range(1, PHASE1_TEAMS + 1)
    )
    thresholds = ", ".join(str(t) for t in THRESHOLDS)
    small = "".join(
        f'[[budgets]]\nteam = "{team}"\nname = "daily"\nlimit_usd = "{limit}"\nperiod = "day"\n'
        f'thresholds = [{thresholds}]\nroutes = [{{ channel = "slack", target = "#e2e-{team}" }}]\n\n'
        for team, limit in limits.items()
    )
    return big + small


# -- polling ------------------------------------------------------------------------------------
class CountPoller:
    """Polls `SELECT count()` through /sql on a thread; keeps (answer wall time, count)."""

    def __init__(self, worker: Worker, where: str, interval: float, *, stream_counts: bool = False) -> None:
        self.worker, self.where, self.interval = worker, where, interval
        self.samples: list[tuple[float, int]] = []
        self.stream_counts = stream_counts
        self.processed: list[tuple[float, float]] = []
        """(wall time, stream events_in counter) when `stream_counts`: where the backlog is."""
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="count-poller", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                count = self.worker.count(self.where)
                self.samples.append((time.time(), count))
                if self.stream_counts:
                    self.processed.append((time.time(), self.worker.metrics()["meterline_stream_events_in_total"]))
            except (OSError, RuntimeError):
                self.errors += 1
            self._stop.wait(self.interval)

    def start(self) -> CountPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def last(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.last < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.last >= count


# -- the phases ---------------------------------------------------------------------------------
def throughput_phase(
    producer: UsageProducer, worker: Worker, events: list[UsageEvent], cpu: CpuWindow
) -> dict[str, Any]:
    distinct = len({e.event_id for e in events})
    baseline = worker.count(PHASE1_WHERE)
    consumed_before = worker.metrics()["meterline_stream_events_in_total"]
    poller = CountPoller(worker, PHASE1_WHERE, 0.25, stream_counts=True).start()
    cpu.start()
    began = time.time()
    with console.status(f"step 1: emitting {len(events):,} events as fast as possible, counting rows in ClickHouse"):
        for event in events:
            producer.emit(event)
        emitted = time.time()
        producer.flush(300)
        acked = time.time()
        done = poller.wait_for(baseline + distinct, timeout=max(120.0, distinct / 2_000))
    poller.stop()
    usage = cpu.stop()
    stored = poller.last - baseline
    finish = next((t for t, c in poller.samples if c >= baseline + distinct), poller.samples[-1][0])
    # Steady state: slope of the stored count between 20% and 80% of the backlog.
    low = next((s for s in poller.samples if s[1] - baseline >= 0.2 * distinct), None)
    high = next((s for s in poller.samples if s[1] - baseline >= 0.8 * distinct), None)
    steady = (high[1] - low[1]) / (high[0] - low[0]) if low and high and high[0] > low[0] else float("nan")
    # Where the backlog waited: when the stream had read every event vs when ClickHouse had them.
    stream_done = next((t for t, n in poller.processed if n - consumed_before >= len(events)), float("nan"))
    timeline = backlog_timeline(worker, began)
    return {
        "stream_events_per_s": round(len(events) / (stream_done - began), 1),
        "events_emitted": len(events),
        "distinct_events": distinct,
        "stored": stored,
        "complete": done,
        "events_per_s": round(stored / (finish - began), 1),
        "steady_events_per_s_20_to_80_percent": round(steady, 1),
        "seconds_first_emit_to_last_stored": round(finish - began, 2),
        "producer_emit_calls_per_s": round(len(events) / max(1e-9, emitted - began), 1),
        "producer_acked_events_per_s": round(len(events) / max(1e-9, acked - began), 1),
        "cpu": usage,
        "timeline": timeline,
    }


def drain_phase(
    producer: UsageProducer, worker: Worker, events: list[UsageEvent], paused: list[int], cpu: CpuWindow
) -> dict[str, Any]:
    """Step 1b: the worker's processes stopped (SIGSTOP) while the backlog is emitted, then
    resumed; figure = distinct events / (resume -> last row counted). The same conditions as
    bench/peer.py's: every event already in Kafka, no producer running beside the pipeline."""
    distinct = len({e.event_id for e in events})
    baseline = worker.count(PHASE1_WHERE)
    with console.status(f"step 1b: emitting {len(events):,} events with the worker paused"):
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        try:
            for event in events:
                producer.emit(event)
            producer.flush(300)
        finally:
            for pid in paused:
                os.kill(pid, signal.SIGCONT)
    cpu.start()
    resumed = time.time()
    poller = CountPoller(worker, PHASE1_WHERE, 0.25).start()
    with console.status(f"step 1b: the worker draining {len(events):,} events already in Kafka"):
        done = poller.wait_for(baseline + distinct, timeout=max(120.0, distinct / 2_000))
    poller.stop()
    usage = cpu.stop()
    stored = poller.last - baseline
    finish = next((t for t, c in poller.samples if c >= baseline + distinct), poller.samples[-1][0])
    return {
        "events_emitted": len(events),
        "distinct_events": distinct,
        "stored": stored,
        "complete": done,
        "events_per_s": round(stored / max(1e-9, finish - resumed), 1),
        "seconds_resume_to_last_stored": round(finish - resumed, 2),
        "cpu": usage,
    }


def backlog_timeline(worker: Worker, began: float) -> list[dict[str, float]]:
    """Per half second since the first emit of step 1: events the stream priced (ingested_at is
    the start of the stream batch) and events the sink wrote (written_at); shows where the
    backlog waited."""
    since = int(began * 1e6)
    rows = worker.sql_rows(
        "SELECT s, sum(p), sum(w) FROM ("
        f" SELECT intDiv(toUnixTimestamp64Micro(ingested_at) - {since}, 500000) AS s, count() AS p, 0 AS w"
        f" FROM usage_events WHERE {PHASE1_WHERE} AND toUnixTimestamp64Micro(ingested_at) >= {since} GROUP BY s"
        " UNION ALL"
        f" SELECT intDiv(toUnixTimestamp64Milli(written_at) * 1000 - {since}, 500000) AS s, 0 AS p, count() AS w"
        f" FROM usage_events WHERE {PHASE1_WHERE} AND toUnixTimestamp64Micro(ingested_at) >= {since} GROUP BY s"
        ") GROUP BY s ORDER BY s"
    )
    return [{"second": int(s) / 2, "priced": int(p), "written": int(w)} for s, p, w in rows]


def latency_phase(
    producer: UsageProducer,
    worker: Worker,
    slack: SlackDouble,
    events: list[UsageEvent],
    rate: int,
    expected_alerts: int,
    cpu: CpuWindow,
) -> dict[str, Any]:
    emitted_at: dict[str, float] = {}
    distinct = len({e.event_id for e in events})
    poller = CountPoller(worker, PHASE2_WHERE, 0.1).start()
    cpu.start()
    clock = time.perf_counter
    with console.status(f"step 2: offering {len(events):,} events at {rate:,}/s") as status:
        started = clock()
        index = 0
        while index < len(events):
            due = min(len(events), int((clock() - started) * rate) + 1)
            now = time.time()
            while index < due:
                event = events[index]
                emitted_at.setdefault(event.event_id, now)
                producer.emit(event)
                index += 1
            if index % rate < 50:
                status.update(f"step 2: offered {index:,} of {len(events):,} at {rate:,}/s; {poller.last:,} queryable")
            time.sleep(0.001)
        offered_seconds = clock() - started
        producer.flush(120)
        status.update("step 2: waiting for the last rows and alerts")
        stored = poller.wait_for(distinct, timeout=60)
        deadline = time.monotonic() + 30
        while len(slack.received) < expected_alerts and time.monotonic() < deadline:
            time.sleep(0.1)
    poller.stop()
    usage = cpu.stop()
    return {
        "emitted_at": emitted_at,
        "polls": poller.samples,
        "distinct_events": distinct,
        "all_stored": stored,
        "offered_events_per_s": round(len(events) / offered_seconds, 1),
        "cpu": usage,
    }


def queryable_delays(worker: Worker, emitted_at: dict[str, float], polls: list[tuple[float, int]]) -> dict[str, Any]:
    # Read in pages: /sql caps a result at 100,000 rows (sinks/sql_guard.py).
    rows: list[list[str]] = []
    while True:
        page = worker.sql_rows(
            "SELECT event_id, toUnixTimestamp64Milli(min(written_at)) AS w, toUnixTimestamp64Micro(min(ingested_at)) "
            f"AS i FROM usage_events WHERE {PHASE2_WHERE} GROUP BY event_id ORDER BY w, event_id "
            f"LIMIT {SQL_PAGE_ROWS} OFFSET {len(rows)}"
        )
        rows += page
        if len(page) < SQL_PAGE_ROWS:
            break
    written = [(event_id, int(ms) / 1000) for event_id, ms, _ in rows]
    # Where the delay goes: ingested_at is the start of the stream batch that priced the event.
    priced_at = {event_id: int(us) / 1e6 for event_id, _, us in rows}
    to_stream = [priced_at[event_id] - emitted_at[event_id] for event_id, _ in written if event_id in emitted_at]
    to_stored = [at - priced_at[event_id] for event_id, at in written]
    delays = [at - emitted_at[event_id] for event_id, at in written if event_id in emitted_at]
    # Stable when the last third of the phase waited about as long as the first (no growing lag).
    by_emit = sorted(
        (emitted_at[event_id], at - emitted_at[event_id]) for event_id, at in written if event_id in emitted_at
    )
    third = len(by_emit) // 3
    first = percentile([d for _, d in by_emit[:third]], 0.5)
    last = percentile([d for _, d in by_emit[-third:]], 0.5) if third else float("nan")
    # Polled cross-check: rows become visible in written_at order (one sink thread, sequential
    # inserts), so the k-th row is counted by the first poll answer whose count reaches k.
    polled: list[float] = []
    poll_index = 0
    for rank, (event_id, _) in enumerate(written, start=1):
        while poll_index < len(polls) and polls[poll_index][1] < rank:
            poll_index += 1
        if poll_index == len(polls) or event_id not in emitted_at:
            continue
        polled.append(polls[poll_index][0] - emitted_at[event_id])
    return {
        "stored": len(written),
        "written_at": summary_ms(delays),
        "polled": summary_ms(polled),
        "emit_to_stream_batch": summary_ms(to_stream),
        "stream_batch_to_written": summary_ms(to_stored),
        "p50_first_third_ms": round(first * 1000, 1),
        "p50_last_third_ms": round(last * 1000, 1),
        "stable": bool(last <= max(2 * first, first + 0.5)),
    }


def slack_delays(bootstrap: str, prefix: str, slack: SlackDouble, emitted_at: dict[str, float]) -> dict[str, Any]:
    consumer = KafkaConsumer(
        f"{prefix}alerts",
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=3000,
    )
    alerts = [json.loads(record.value) for record in consumer]
    consumer.close()
    total, stream_part, delivery_part = [], [], []
    undelivered = 0
    thresholds = [a for a in alerts if a["kind"] == "threshold" and a.get("triggered_by_event_id") in emitted_at]
    for alert in thresholds:
        crossed = emitted_at[alert["triggered_by_event_id"]]
        fired = datetime.fromisoformat(alert["fired_at"]).timestamp()
        received = slack.received.get(alert["alert_id"])
        if received is None:
            undelivered += 1
            continue
        total.append(received - crossed)
        stream_part.append(fired - crossed)
        delivery_part.append(received - fired)
    return {
        "alerts_on_topic": len(alerts),
        "threshold_alerts": len(thresholds),
        "undelivered": undelivered,
        "crossing_to_slack": summary_ms(total),
        "crossing_to_fired": summary_ms(stream_part),
        "fired_to_slack": summary_ms(delivery_part),
        "slack_posts": slack.posts,
        "slack_digests": slack.digests,
    }


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    return {
        "count": len(seconds),
        "p50_ms": round(percentile(seconds, 0.5) * 1000, 1),
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1) if seconds else float("nan"),
    }


# -- report -------------------------------------------------------------------------------------
def finite(value: Any) -> Any:
    """`value` with NaN (nothing measured) as None, so the file is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def goal(name: str, measured: float, target: float, higher_is_better: bool, unit: str) -> dict[str, Any]:
    passed = measured >= target if higher_is_better else measured <= target
    if passed:
        gap = "met"
    elif higher_is_better:
        gap = (
            f"{100 * (1 - measured / target):.0f}% below ({target / measured:.1f}x short)"
            if measured > 0
            else "nothing measured"
        )
    else:
        gap = f"{measured / target:.1f}x the goal" if measured == measured else "nothing measured"
    return {
        "name": name,
        "measured": measured,
        "goal": target,
        "unit": unit,
        "comparison": ">=" if higher_is_better else "<=",
        "pass": passed,
        "gap": gap,
    }


def bottleneck_notes(step1: dict[str, Any], metrics: dict[str, float]) -> list[str]:
    """Where step 1 waited, from the stream's read rate, batch sizes and CPU shares."""
    notes = []
    stream, stored = step1["stream_events_per_s"], step1["events_per_s"]
    if stream == stream and stream < 1.15 * stored:
        notes.append(
            f"bottleneck: the stream (it read {stream:,.0f} events/s, ClickHouse stored {stored:,.0f}/s: "
            "the sink keeps up with it)"
        )
    elif stream == stream:
        notes.append(
            f"bottleneck: the sink (the stream read {stream:,.0f} events/s, ClickHouse stored {stored:,.0f}/s)"
        )
    batches = metrics.get("meterline_stream_batches_total", 0)
    if batches:
        notes.append(
            f"stream batches averaged {metrics['meterline_stream_events_in_total'] / batches:,.0f} events "
            f"(whole run; take_max {Settings().stream.take_max:,} messages, take_within {Settings().stream.take_within} s)"
        )
    cpu = step1["cpu"]
    ours = sum(cpu["percent_of_one_core"].values()) / (os.cpu_count() or 1)
    notes.append(
        f"step 1 CPU: worker {cpu['percent_of_one_core'].get('worker', 0):.0f}% of one core "
        f"(threads: {cpu['worker_threads_percent_of_one_core']}); bench + broker + worker used {ours:.0f}% "
        f"of the machine while it was {cpu['machine_busy_percent_of_all_cores']:.0f}% busy (the rest: other processes)"
    )
    return notes


def print_table(result: dict[str, Any]) -> None:
    table = Table(title="meterline end to end (one worker, embedded ClickHouse)")
    for column in ("figure", "measured", "goal", "result"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for g in result["goals"]:
        unit = g["unit"]
        table.add_row(
            g["name"],
            f"{g['measured']:,.2f} {unit}" if unit == "x" else f"{g['measured']:,.0f} {unit}",
            f"{g['comparison']} {g['goal']:,} {unit}",
            "[green]PASS[/]" if g["pass"] else f"[red]FAIL[/] {g['gap']}",
        )
    for name, value in result["context_rows"]:
        table.add_row(f"[dim]{name}[/]", f"[dim]{value}[/]", "", "")
    console.print(table)
    m = result["machine"]
    console.print(
        f"machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}; "
        f"broker {result['broker']} on the same machine"
    )
    for note in result["notes"]:
        console.print(f"- {note}")


def main() -> None:
    args = parse_args()
    info = machine()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="meterline-e2e-")))
        broker_pid: int | None = None
        if args.bootstrap:
            bootstrap, broker_label = args.bootstrap, f"{args.bootstrap} (given)"
        else:
            bootstrap, broker_pid = start_broker(stack, folder, console)
            broker_label = f"{bootstrap} (LocalKafka started by the bench)"
        slack = SlackDouble().start()
        stack.callback(slack.stop)
        prefix = f"e2e{uuid.uuid4().hex[:8]}."
        start = datetime.now(UTC)
        with console.status("generating the latency-phase traffic and pricing it for the budgets"):
            planned = generate_events(
                seed=2, teams=PHASE2_TEAMS, start=start, count=args.rate * args.duration, rate=args.rate
            )
            limits = team_budgets(planned[: min(args.rate, SIZING_RATE) * args.duration])
        (folder / "meterline.toml").write_text(budgets_toml(limits))
        worker = Worker(
            folder,
            {
                "METERLINE_KAFKA_BOOTSTRAP": bootstrap,
                "METERLINE_TOPIC_PREFIX": prefix,
                "METERLINE_DATA_DIR": str(folder / "data"),
                "METERLINE_CONFIG": str(folder / "meterline.toml"),
                "METERLINE_ALERTS__SLACK_TOKEN": "xoxb-e2e-bench",
                "METERLINE_ALERTS__SLACK_BASE_URL": slack.base_url,
            },
            profile=args.profile.resolve() if args.profile else None,
        )
        stack.callback(worker.stop)
        starting = threading.Thread(target=worker.start, name="worker-start", daemon=True)
        starting.start()  # the worker boots on the other core while the backlog is generated
        with console.status(f"generating {args.events:,} backlog events; starting the worker"):
            backlog = generate_events(seed=1, teams=PHASE1_TEAMS, start=start, count=args.events, rate=args.rate)
            warm = generate_events(seed=3, teams=PHASE1_TEAMS, start=start, count=2_000, rate=args.rate)
            starting.join(180)
        if worker.proc is None or worker.proc.poll() is not None or worker.get("/healthz")[0] != 200:
            raise SystemExit(f"the worker did not start:\n{worker.log_tail()}")
        pids = {"worker": worker.pid, "bench (producer)": os.getpid()}
        sink_process = sidecar_pid(worker.pid)
        if sink_process:
            pids[SIDECAR] = sink_process
        if broker_pid:
            pids["broker"] = broker_pid
        cpu = CpuWindow(pids, worker.pid, broker_pid)
        tuning = ProducerTuning(
            events_per_message=args.events_per_message, pack_linger_ms=args.pack_linger_ms, linger_ms=args.linger_ms
        )
        producer = stack.enter_context(
            UsageProducer(
                bootstrap, f"{prefix}usage", folder / "spool", fsync="never", max_pending=2_000_000, tuning=tuning
            )
        )
        with console.status("warming up (2,000 events through the whole pipeline)"):
            for event in warm:
                producer.emit(event)
            producer.flush(60)
            warm_poller = CountPoller(worker, PHASE1_WHERE, 0.2).start()
            warm_done = warm_poller.wait_for(len({e.event_id for e in warm}), 120)
            warm_poller.stop()
        if not warm_done:
            raise SystemExit(f"warm-up events never reached ClickHouse; worker log:\n{worker.log_tail()}")

        step1 = throughput_phase(producer, worker, backlog, cpu)
        step1_ends = topic_end_offsets(bootstrap, f"{prefix}usage")
        console.print(
            f"step 1: {step1['stored']:,} of {step1['distinct_events']:,} distinct events stored at "
            f"{step1['events_per_s']:,.0f} events/s (steady {step1['steady_events_per_s_20_to_80_percent']:,.0f}/s)"
        )
        with console.status(f"generating {args.events:,} events for the drain (step 1b)"):
            drained = generate_events(seed=6, teams=PHASE1_TEAMS, start=start, count=args.events, rate=args.rate)
        step1b = drain_phase(
            producer,
            worker,
            drained,
            [pid for name, pid in pids.items() if name in ("worker", SIDECAR)],
            CpuWindow(pids, worker.pid, broker_pid),
        )
        console.print(
            f"step 1b: {step1b['stored']:,} of {step1b['distinct_events']:,} pre-produced events drained at "
            f"{step1b['events_per_s']:,.0f} events/s"
        )
        rate, notes = args.rate, []
        if step1["events_per_s"] < args.rate and not args.force_rate:
            rate = max(500, int(step1["events_per_s"] * FALLBACK_SHARE) // 500 * 500)
            notes.append(
                f"the pipeline sustained {step1['events_per_s']:,.0f} events/s < {args.rate:,}/s here, so the "
                f"latency phase offered {rate:,}/s ({FALLBACK_SHARE:.0%} of it, rounded down), not {args.rate:,}/s"
            )
        sent = planned[: rate * args.duration]
        expected = expected_crossings(sent, limits)
        step2 = latency_phase(producer, worker, slack, sent, rate, expected, cpu)
        with console.status("reading written_at of every row and the alerts topic"):
            queryable = queryable_delays(worker, step2["emitted_at"], step2["polls"])
            alerts = slack_delays(bootstrap, prefix, slack, step2["emitted_at"])
        alerts["expected_threshold_alerts"] = expected
        stepped: dict[str, Any] = {}
        rates = [int(r) for r in args.steps.split(",") if r.strip()]
        if rates:
            pool = generate_events(seed=4, teams=PHASE1_TEAMS, start=datetime.now(UTC), count=20_000, rate=10_000)
            traffic = PackedTraffic(pool, max(args.events_per_message, 100))
            stepped = run_steps(
                bootstrap,
                f"{prefix}usage",
                traffic,
                worker,
                rates,
                args.step_seconds,
                all_steps=args.all_steps,
                report=console.print,
                cpu=CpuWindow(pids, worker.pid, broker_pid),
            )
        metrics = {k: v for k, v in worker.metrics().items() if k.startswith("meterline_stream_") and "{" not in k}
        counters = producer.counters()
        errors = [line for line in worker.log_tail().splitlines() if "ERROR" in line or "Traceback" in line]
        peer: dict[str, Any] = {}
        if args.with_peer:
            worker.stop()  # the peer gets the cores the worker had
            with console.status("the plain pipeline (bench/peer.py) on step 1's records"):
                peer = run_peer(bootstrap, f"{prefix}usage", folder / "peer-chdb", end_offsets=step1_ends)
            console.print(f"peer: {peer['events_stored']:,} events at {peer['events_per_s']:,.0f} events/s")

    notes += [
        f"producer linger {args.linger_ms} ms (Kafka) + {args.pack_linger_ms} ms (packing), stream take_within "
        f"{Settings().stream.take_within} s and sink batch_seconds {Settings().sink.batch_seconds} s are in every delay",
        f"producer counters: sent {counters.sent:,}, spooled {counters.spooled:,}, failed {counters.failed:,}",
    ]
    if not queryable["stable"]:
        notes.append(
            f"NOT sustained at {rate:,}/s: the delay grew during step 2 (p50 {queryable['p50_first_third_ms']:,.0f} ms "
            f"in its first third, {queryable['p50_last_third_ms']:,.0f} ms in its last): the p99 measures a growing backlog"
        )
    notes += bottleneck_notes(step1, metrics)
    if errors:
        notes.append(f"worker log has {len(errors)} error lines, last: {errors[-1][:200]}")
    goals = [
        goal("sustained events/s (emit -> stored)", step1["events_per_s"], GOAL_EVENTS_PER_S, True, "ev/s"),
        goal(
            f"p99 emit -> queryable at {rate:,}/s",
            queryable["written_at"]["p99_ms"],
            GOAL_QUERYABLE_P99_MS,
            False,
            "ms",
        ),
        goal("p99 crossing -> Slack", alerts["crossing_to_slack"]["p99_ms"], GOAL_SLACK_P99_MS, False, "ms"),
    ]
    if stepped:
        goals.insert(
            1,
            goal(
                f"highest offered rate kept up with ({args.step_seconds:.0f} s steps, p99 <= 1 s, lag bounded)",
                stepped["highest_rate_kept_up"],
                GOAL_EVENTS_PER_S,
                True,
                "ev/s",
            ),
        )
    if peer:
        goals.insert(
            1,
            goal(
                "meterline / plain pipeline (both draining a backlog in Kafka: step 1b / peer)",
                step1b["events_per_s"] / peer["events_per_s"],
                1,
                True,
                "x",
            ),
        )
    q, s = queryable, alerts
    cores = step1["cpu"]["percent_of_one_core"]
    worker_cpu = f"{cores.get('worker', 0):.0f}%"
    if SIDECAR in cores:
        worker_cpu += f" stream + {cores[SIDECAR]:.0f}% sink and alerts"
    context_rows = [
        ("drain events/s (step 1b: backlog in Kafka, then the worker resumed)", f"{step1b['events_per_s']:,.0f} ev/s"),
        *(
            (
                (
                    "meterline / plain pipeline, step 1 (producer running) / peer",
                    f"{step1['events_per_s'] / peer['events_per_s']:.2f} x",
                ),
            )
            if peer
            else ()
        ),
        ("steady events/s (20%-80% of backlog)", f"{step1['steady_events_per_s_20_to_80_percent']:,.0f} ev/s"),
        ("stream read events/s (step 1, /metrics events_in)", f"{step1['stream_events_per_s']:,.0f} ev/s"),
        ("producer acked events/s (step 1)", f"{step1['producer_acked_events_per_s']:,.0f} ev/s"),
        (
            f"p50 emit -> queryable (written_at, {q['written_at']['count']:,} rows)",
            f"{q['written_at']['p50_ms']:,.0f} ms",
        ),
        (
            "p50 emit -> queryable, first / last third of step 2",
            f"{q['p50_first_third_ms']:,.0f} / {q['p50_last_third_ms']:,.0f} ms",
        ),
        (
            "p50 / p99 emit -> stream batch start (ingested_at)",
            f"{q['emit_to_stream_batch']['p50_ms']:,.0f} / {q['emit_to_stream_batch']['p99_ms']:,.0f} ms",
        ),
        (
            "p50 / p99 stream batch start -> written (stream, commit, sink)",
            f"{q['stream_batch_to_written']['p50_ms']:,.0f} / {q['stream_batch_to_written']['p99_ms']:,.0f} ms",
        ),
        ("p50 / p99 emit -> counted by a /sql poll", f"{q['polled']['p50_ms']:,.0f} / {q['polled']['p99_ms']:,.0f} ms"),
        (
            f"p50 crossing -> Slack ({s['crossing_to_slack']['count']} of {expected} alerts)",
            f"{s['crossing_to_slack']['p50_ms']:,.0f} ms",
        ),
        (
            "p50 / p99 crossing -> alert fired (stream)",
            f"{s['crossing_to_fired']['p50_ms']:,.0f} / {s['crossing_to_fired']['p99_ms']:,.0f} ms",
        ),
        (
            "p50 / p99 fired -> Slack (dispatcher)",
            f"{s['fired_to_slack']['p50_ms']:,.0f} / {s['fired_to_slack']['p99_ms']:,.0f} ms",
        ),
        *(
            (
                f"step 3 at {step['rate']:,}/s: offered / lag at end / p99 / machine busy",
                f"{step['offered_events_per_s']:,.0f} / {step['lag_at_end']:,} / {step['p99_ms']:,.0f} ms"
                f" / {step['cpu'].get('machine_busy_percent_of_all_cores', 0):.0f}%",
            )
            for step in stepped.get("steps", [])
        ),
        *(
            (
                (
                    f"plain pipeline (bench/peer.py): {peer['events_stored']:,} events of step 1",
                    f"{peer['events_per_s']:,.0f} ev/s",
                ),
            )
            if peer
            else ()
        ),
        ("worker CPU step 1 (% of one core)", worker_cpu),
        ("machine busy step 1 (all cores)", f"{step1['cpu']['machine_busy_percent_of_all_cores']:.0f}%"),
        *(
            (("broker JIT compiling step 1 (% of one core)", f"{step1['cpu']['broker_jit_percent_of_one_core']:.1f}%"),)
            if "broker_jit_percent_of_one_core" in step1["cpu"]
            else ()
        ),
    ]
    result = {
        "bench": "bench/e2e.py",
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": info,
        "broker": broker_label,
        "parameters": {
            "backlog_events": args.events,
            "events_per_message": args.events_per_message,
            "pack_linger_ms": args.pack_linger_ms,
            "linger_ms": args.linger_ms,
            "requested_rate": args.rate,
            "rate_used": rate,
            "offered_events_per_s": step2["offered_events_per_s"],
            "duration_s": args.duration,
            "budget_teams": len(limits),
            "thresholds_percent": list(THRESHOLDS),
        },
        "figures": {
            "throughput": step1,
            "drain": step1b,
            "emit_to_queryable": {
                **queryable,
                "all_stored": step2["all_stored"],
                "rate": rate,
                "cpu": step2["cpu"],
                "method": "usage_events.written_at (ClickHouse DEFAULT now64(3) at the sink's synchronous "
                "INSERT) minus the wall time of emit(); cross-check: /sql count polled every 0.1 s",
            },
            "stepped": stepped,
            "peer": peer,
            "crossing_to_slack": {
                **alerts,
                "method": "Slack double's receipt of chat.postMessage naming the alert minus "
                "the emit wall time of AlertEvent.triggered_by_event_id",
            },
        },
        "worker_metrics": metrics,
        "goals": goals,
        "context_rows": context_rows,
        "notes": notes,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(finite(result), indent=2, default=str) + "\n")
    print_table(result)
    console.print(f"written: {args.output}")
    if args.profile:
        import pstats

        console.print(f"worker profile (main thread), top functions by own time; full stats in {args.profile}:")
        pstats.Stats(str(args.profile)).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
