"""Stepped offered rates for bench/e2e.py: the highest rate the pipeline keeps up with.

Each step offers one rate for `seconds`, paced in 50 ms ticks, as packed messages of
`events_per_message` events of one team (JSON Lines, key = team) sent straight through
kafka-python: at 60,000 events/s the SDK's per-event Python work would take a core from the
worker on this 2-core machine, so the offered load is built from a pool of event bodies instead,
each line with a fresh event id. Every event carries its step and the wall time its message was
sent in `tags` (bench_step, bench_emit_ms); ClickHouse then gives, over every stored event of a
step, emit -> queryable (usage_events.written_at, stamped by the sink's synchronous INSERT,
minus bench_emit_ms). The lag (sent minus stored) is sampled every 0.5 s during the step.

A step is kept up with when, after it, its p99 emit -> queryable is at most 1 s and its lag at
the end of the step was at most one second of its rate (bounded, not growing). Between steps the
pipeline drains; stepping stops after the first step that is not kept up with (unless all steps
are asked for).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer

from meterline.events import UsageEvent

TICK_S = 0.05
LAG_SAMPLE_S = 0.5
GOAL_P99_MS = 1_000


@dataclass(frozen=True)
class StepResult:
    rate: int
    seconds: float
    sent: int
    offered_events_per_s: float
    stored_at_end: int
    lag_at_end: int
    max_lag: int
    drained_s: float | None
    p50_ms: float
    p99_ms: float
    max_ms: float
    kept_up: bool
    lag_samples: list[tuple[float, int]]
    cpu: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "lag_samples": [[round(t, 2), lag] for t, lag in self.lag_samples]}


class PackedTraffic:
    """Packed messages of events built from a pool of bodies, each line with a fresh id."""

    def __init__(self, pool: list[UsageEvent], events_per_message: int) -> None:
        self.events_per_message = events_per_message
        self._run = uuid.uuid4().hex[:8]
        self._seq = 0
        by_team: dict[str, list[bytes]] = {}
        for event in pool:
            body = event.model_dump(mode="json", exclude={"event_id", "tags"})
            # '{"event_id":"<id>","tags":{...},' + the rest of the event's JSON.
            by_team.setdefault(event.team, []).append(json.dumps(body, separators=(",", ":"))[1:].encode())
        self._teams = sorted(by_team)
        self._bodies = by_team
        self._next_team = 0

    def message(self, step: int, emit_ms: int) -> tuple[bytes, bytes]:
        """(key, value) of the next message: `events_per_message` events of one team."""
        team = self._teams[self._next_team % len(self._teams)]
        self._next_team += 1
        bodies = self._bodies[team]
        tags = b'"tags":{"bench_step":"%d","bench_emit_ms":"%d"},' % (step, emit_ms)
        lines = []
        for _ in range(self.events_per_message):
            self._seq += 1
            body = bodies[self._seq % len(bodies)]
            lines.append(b'{"event_id":"%s%024x",%s%s' % (self._run.encode(), self._seq, tags, body))
        return team.encode(), b"\n".join(lines)


class LagSampler:
    """Samples (seconds since start, sent - stored) of one step in a thread."""

    def __init__(self, count_stored: Any, sent: Any) -> None:
        self._count_stored = count_stored
        self._sent = sent
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._began = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)

    def start(self) -> LagSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(LAG_SAMPLE_S):
            try:
                stored = self._count_stored()
            except Exception:  # noqa: BLE001 - one missed sample (the worker busy answering)
                continue
            self.samples.append((time.monotonic() - self._began, self._sent() - stored))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def run_step(
    producer: KafkaProducer,
    topic: str,
    traffic: PackedTraffic,
    worker: Any,
    step: int,
    rate: int,
    seconds: float,
    cpu: Any = None,
) -> StepResult:
    """Offer `rate` events/s for `seconds`; wait for the step to drain; measure it. `cpu` (a
    bench CpuWindow, optional) measures the processes' CPU while the rate is offered."""
    where = f"tags['bench_step'] = '{step}'"
    per_message = traffic.events_per_message
    sent = 0
    sampler = LagSampler(lambda: worker.count(where), lambda: sent).start()
    if cpu is not None:
        cpu.start()
    began = time.monotonic()
    deadline = began + seconds
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        due = int((now - began) * rate)
        while sent + per_message <= due:
            key, value = traffic.message(step, int(time.time() * 1000))
            producer.send(topic, key=key, value=value)
            sent += per_message
        time.sleep(max(0.0, min(TICK_S, deadline - time.monotonic())))
    elapsed = time.monotonic() - began
    usage = cpu.stop() if cpu is not None else {}
    producer.flush(60)
    stored_at_end = worker.count(where)
    lag_at_end = sent - stored_at_end
    drained_s = None
    drain_deadline = time.monotonic() + max(60.0, seconds * 3)
    while time.monotonic() < drain_deadline:
        if worker.count(where) >= sent:
            drained_s = time.monotonic() - began - elapsed
            break
        time.sleep(0.2)
    sampler.stop()
    quantiles = worker.sql_rows(
        "SELECT quantile(0.5)(d), quantile(0.99)(d), max(d) FROM (SELECT "
        "toUnixTimestamp64Milli(written_at) - toInt64(tags['bench_emit_ms']) AS d "
        f"FROM usage_events WHERE {where})"
    )[0]
    p50, p99, worst = (float(v) for v in quantiles)
    max_lag = max((lag for _, lag in sampler.samples), default=lag_at_end)
    kept_up = drained_s is not None and p99 <= GOAL_P99_MS and lag_at_end <= rate
    return StepResult(
        rate=rate,
        seconds=round(elapsed, 2),
        sent=sent,
        offered_events_per_s=round(sent / elapsed, 1),
        stored_at_end=stored_at_end,
        lag_at_end=lag_at_end,
        max_lag=max_lag,
        drained_s=None if drained_s is None else round(drained_s, 2),
        p50_ms=p50,
        p99_ms=p99,
        max_ms=worst,
        kept_up=kept_up,
        lag_samples=sampler.samples,
        cpu=usage,
    )


def run_steps(
    bootstrap: str,
    topic: str,
    traffic: PackedTraffic,
    worker: Any,
    rates: list[int],
    seconds: float,
    *,
    all_steps: bool = False,
    report: Any = print,
    cpu: Any = None,
) -> dict[str, Any]:
    """Every step in order; the highest rate kept up with."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, compression_type=None, max_request_size=8 << 20
    )
    results: list[StepResult] = []
    try:
        for index, rate in enumerate(rates, start=1):
            result = run_step(producer, topic, traffic, worker, index, rate, seconds, cpu)
            results.append(result)
            busy = result.cpu.get("machine_busy_percent_of_all_cores")
            report(
                f"step at {rate:,}/s: offered {result.offered_events_per_s:,.0f}/s, lag at end {result.lag_at_end:,}, "
                f"p50 / p99 emit -> queryable {result.p50_ms:,.0f} / {result.p99_ms:,.0f} ms: "
                + ("kept up" if result.kept_up else "NOT kept up")
                + ("" if busy is None else f" (machine {busy:.0f}% busy: {result.cpu['percent_of_one_core']})")
            )
            if not result.kept_up and not all_steps:
                break
    finally:
        producer.close()
    kept = [r.rate for r in results if r.kept_up]
    return {
        "method": __doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else "",
        "step_seconds": seconds,
        "events_per_message": traffic.events_per_message,
        "highest_rate_kept_up": max(kept) if kept else 0,
        "steps": [r.to_json() for r in results],
    }
