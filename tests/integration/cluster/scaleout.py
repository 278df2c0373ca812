"""The pipeline scaled out on a local three-broker cluster, its faults and its accounting.

Used by the cluster fault tests and by bench/soak_cluster.py (one implementation of each).

- Workers: `a` is a whole worker (the stream, and the sink and the alert dispatcher in its
  child, which owns the embedded chDB database); the others run `--only stream` in the same
  consumer group. Each has its own data folder and web port, and a supervisor that restarts it
  after any exit (as `Restart=always` would) and keeps the exit's log.
- Topics: three partitions, replication 3, min ISR 2 (`topic_*` settings).
- Load: a bulk phase is emitted at a steady rate on a thread while a fault runs; faults hit
  bulk phases only and alerts fire in spike phases (see tests/e2e/scenario.py for why).
- Accounting after each phase and at the end: tests/e2e/pipeline.py's checks (every distinct
  event once, money exact to 1e-12, each alert delivered once, DLQ + stored + duplicates =
  sent) and the producer's spool (nothing failed, nothing left, every spooled event replayed).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meterline.producers import ProducerTuning
from meterline.services.kafka_cluster import LocalKafkaCluster
from tests.e2e.pipeline import SLACK_TOKEN, Query, Sender, pipeline_toml, run_phases, sql_over_http, wait_for
from tests.e2e.scenario import Phase, Scenario
from tests.integration.cluster.accounting import trace_missing
from tests.integration.stream.harness import WorkerProcess
from tests.support.slack_server import FakeSlack
from tests.support.smtp import SmtpServer

PARTITIONS = 3
TEAMS = ["team-01", "team-19", "team-02"]
"""Keys that land on partitions 0, 1 and 2 of three (murmur2, as the producer partitions)."""
logging.getLogger("kafka.admin._groups").setLevel(logging.ERROR)  # it cannot decode faust's member metadata
EVENTS_IN = "meterline_stream_events_in_total"
STEADY = ProducerTuning(bootstrap_timeout_s=2.0, delivery_timeout_s=10.0, stall_timeout_s=3.0)
"""The producer's limits under faults: a few seconds before it spools (the default 30 s)."""
FaultKind = str
"""One of FAULTS' keys."""


def cluster_env() -> dict[str, str]:
    return {
        "METERLINE_TOPIC_PARTITIONS": str(PARTITIONS),
        "METERLINE_TOPIC_REPLICATION_FACTOR": "3",
        "METERLINE_TOPIC_MIN_INSYNC_REPLICAS": "2",
        "METERLINE_ALERTS__SLACK_TOKEN": SLACK_TOKEN,
    }


@dataclass
class ScaleOut:
    """Workers on one cluster and one topic prefix; `a` holds the sink, the dispatcher and chDB."""

    cluster: LocalKafkaCluster
    prefix: str
    tmp: Path
    scenario: Scenario
    slack: FakeSlack
    smtp: SmtpServer
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    """What was done, in order (`kill broker 2 (leader of usage[0])`, …)."""
    timeline: list[tuple[float, str]] = field(default_factory=list)
    """(seconds since the start, step): where a run's time went."""
    started: float = field(default_factory=time.monotonic)
    load: SteadyLoad | None = None

    def note(self, step: str) -> None:
        self.timeline.append((round(time.monotonic() - self.started, 1), step))

    @property
    def usage_topic(self) -> str:
        return f"{self.prefix}usage"

    @property
    def group(self) -> str:
        return f"{self.prefix}stream"

    def start_worker(self, name: str) -> WorkerProcess:
        """Start worker `name` (`a`: the whole worker; others: `--only stream`), supervised."""
        worker = self.workers.get(name)
        if worker is None:
            folder = self.tmp / f"worker-{name}"
            folder.mkdir(parents=True, exist_ok=True)
            toml = pipeline_toml(self.scenario, self.slack, self.smtp)
            worker = WorkerProcess(
                self.cluster.bootstrap,
                self.prefix,
                folder,
                toml=toml,
                only=None if name == "a" else "stream",
                env=cluster_env(),
            )
            self.workers[name] = worker
        worker.start()
        worker.supervise(max_restarts=5)
        self.note(f"worker {name} healthy")
        return worker

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers.values() if w.proc is not None and w.proc.poll() is None]

    def query(self) -> Query:
        return sql_over_http(self.workers["a"])

    def taken(self) -> float:
        """Events the live stream workers read since they started (a progress gauge)."""
        total = 0.0
        for worker in self.alive():
            try:
                total += worker.metric(EVENTS_IN)
            except (AssertionError, OSError):
                pass  # starting or stopping
        return total

    def wait_progress(self, events: int, what: str, timeout: float = 120.0) -> None:
        """Wait until the stream workers took `events` more events (or the load ran out: the
        accounting at the end is the check; this only shapes the fault)."""
        start = self.taken()
        wait_for(
            lambda: self.taken() >= start + events or (self.load is not None and self.load.finished),
            f"{events} more events taken {what}",
            timeout,
        )
        self.note(
            f"{events} more events taken {what}" if self.taken() >= start + events else f"the load ran out {what}"
        )

    def _group_state(self) -> int:
        """Members of the stream's consumer group if it is stable, else -1 (rebalancing, or its
        coordinator moving during a broker fault)."""
        from kafka.admin import KafkaAdminClient

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.cluster.bootstrap.split(","), request_timeout_ms=5000)
        except Exception:  # noqa: BLE001 - no broker answered: ask again
            return -1
        try:
            group = admin.describe_groups([self.group])[self.group]
            return len(group["members"]) if group["group_state"] == "Stable" else -1
        except Exception:  # noqa: BLE001
            return -1
        finally:
            admin.close()

    def group_members(self, timeout: float = 120.0) -> int:
        """Members of the stream's consumer group, once it is stable."""
        found: list[int] = []

        def stable() -> bool:
            found[:] = [self._group_state()]
            return found[0] >= 0

        wait_for(stable, "the stream group to be stable", timeout)
        return found[0]

    def wait_members(self, count: int, timeout: float = 120.0) -> None:
        wait_for(lambda: self._group_state() == count, f"the stream group to settle with {count} member(s)", timeout)

    def stop(self) -> list[str]:
        """Stop every worker (SIGTERM); return a line for each that did not exit 0."""
        bad = []
        for name, worker in self.workers.items():
            if worker.proc is not None:
                code = worker.stop()
                if code not in (0, None, -9):
                    bad.append(f"worker {name} exited {code}:\n{worker.log()}")
        return bad

    def restarts(self) -> dict[str, int]:
        return {name: w.restarts for name, w in self.workers.items()}

    def chdb_dsn(self) -> str:
        """Worker a's embedded database (open it only once every worker stopped)."""
        return f"chdb://{(self.workers['a'].tmp / 'data' / 'clickhouse').resolve()}"

    def play(self, faults: dict[int, Callable[[], None]]) -> dict[str, int]:
        """Send every phase of the scenario with `faults[k]` during bulk phase k, waiting after
        each until ClickHouse holds it (and a spike's alerts went out); return the producer's
        figures once its spool is checked (nothing failed, nothing left, all replayed).

        An AssertionError says where the events still missing are (accounting.trace_missing).
        """
        with Sender(self.cluster.bootstrap, self.usage_topic, self.tmp / "spool", tuning=STEADY) as sender:
            try:
                run_phases(self.scenario, sender, self.query, self.slack, self.smtp, any_bulk(self, sender, faults))
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{self.explain_missing(sender)}") from exc
            return check_spool(sender)

    def explain_missing(self, sender: Sender) -> str:
        """Where the events sent so far but not in ClickHouse are (see accounting.trace_missing)."""
        try:
            stored = {row[0] for row in self.query()("SELECT DISTINCT event_id FROM usage_events")}
            sent = {handle.event.event_id for handle in sender.handles}
            return trace_missing(self.cluster.bootstrap, self.prefix, sent - stored)
        except Exception as exc:  # noqa: BLE001 - the explanation must not hide the failure
            return f"(could not trace the missing events: {type(exc).__name__}: {exc})"


# -- steady load ------------------------------------------------------------------------------
class SteadyLoad:
    """Emits a phase's events at a steady `rate` per second on a thread until `hurry()`, then the
    rest at once: the load lasts as long as the fault, however long that takes (a bulk phase
    holds more events than `rate` times any fault's length)."""

    def __init__(self, sender: Sender, phase: Phase, rate: float) -> None:
        self.sender, self.phase, self.rate = sender, phase, rate
        self._hurry = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)

    def start(self) -> SteadyLoad:
        self._thread.start()
        return self

    def _run(self) -> None:
        producer = self.sender.producer
        assert producer is not None
        step = max(1, round(self.rate / 10))
        events = self.phase.events
        for start in range(0, len(events), step):
            self.sender.handles += [producer.emit(event) for event in events[start : start + step]]
            self._hurry.wait(step / self.rate)

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def hurry(self) -> None:
        self._hurry.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the load thread did not finish"


def under_load(run: ScaleOut, sender: Sender, phase: Phase, fault: Callable[[], None], rate: float = 20.0) -> None:
    """Send a bulk phase at a steady rate, run `fault` once the load flows, then send the rest
    and flush."""
    sender.send_raw(phase)
    run.load = SteadyLoad(sender, phase, rate).start()
    try:
        run.wait_progress(40, "before the fault")
        fault()
    finally:
        run.load.hurry()
        run.load.join(120)
        run.load = None
    assert sender.producer is not None and sender.producer.flush(120), "the producer did not settle its events"
    run.note("load done, producer flushed")
    wait_spool_empty(sender)
    run.note("spool replayed")


def wait_spool_empty(sender: Sender, timeout: float = 120.0) -> None:
    producer = sender.producer
    assert producer is not None

    def replayed() -> bool:
        c = producer.counters()
        return c.spooled == c.replayed and c.spool_pending_bytes == 0

    wait_for(replayed, "the producer to replay its spool", timeout, lambda: f"({producer.counters()})")


def check_spool(sender: Sender) -> dict[str, int]:
    """Nothing lost on the producer's side: none failed, every spooled event replayed, none left."""
    assert sender.producer is not None
    c = sender.producer.counters()
    assert c.failed == 0, c
    assert c.spool_pending_bytes == 0, c
    assert c.spooled == c.replayed, c
    assert c.sent + c.spooled == c.emitted, c
    return {"emitted": c.emitted, "sent": c.sent, "spooled": c.spooled, "replayed": c.replayed}


# -- faults -----------------------------------------------------------------------------------
def kill_partition_leader(run: ScaleOut, partition: int) -> None:
    """(a) SIGKILL the broker leading usage[partition]; the pipeline goes on with two; restart it."""
    node = run.cluster.leader_of(run.usage_topic, partition)
    run.faults.append(f"kill -9 broker {node} (leader of usage[{partition}])")
    run.cluster.kill(node)
    run.note(f"broker {node} killed")
    run.wait_progress(40, f"while broker {node} is down")
    run.cluster.start_node(node)
    run.note(f"broker {node} restarted")
    run.cluster.wait_in_sync()
    run.note("in sync")


def kill_worker(run: ScaleOut, name: str) -> None:
    """(b) SIGKILL a worker; the other takes its partitions over; restart it."""
    worker = run.workers[name]
    members = run.group_members()
    run.faults.append(f"kill -9 worker {name}")
    worker.kill9()
    run.note(f"worker {name} killed")
    run.wait_members(members - 1)
    run.note("group settled without it")
    run.wait_progress(40, f"after worker {name} died")
    run.start_worker(name)
    run.wait_members(members)
    run.note("group settled with it")


def join_worker(run: ScaleOut, name: str) -> None:
    """(c) A worker joins the group mid-run and takes partitions over."""
    members = run.group_members()
    run.faults.append(f"worker {name} joins")
    run.start_worker(name)
    run.wait_members(members + 1)
    run.note("group settled with it")
    run.wait_progress(40, f"after worker {name} joined")


def leave_worker(run: ScaleOut, name: str) -> None:
    """A worker leaves the group cleanly (SIGTERM), as in scaling in."""
    members = run.group_members()
    run.faults.append(f"worker {name} leaves (SIGTERM)")
    code = run.workers[name].stop()
    assert code == 0, f"worker {name} exited {code}:\n{run.workers[name].log()}"
    run.note(f"worker {name} stopped")
    run.wait_members(members - 1)
    run.note("group settled without it")


def rolling_restart(run: ScaleOut) -> None:
    """(d) Restart the brokers one after another, each back in every ISR before the next."""
    run.faults.append("rolling restart of brokers " + ", ".join(str(n.node_id) for n in run.cluster.nodes))
    for node in run.cluster.nodes:
        run.cluster.stop_node(node.node_id)
        run.note(f"broker {node.node_id} stopped")
        run.wait_progress(20, f"while broker {node.node_id} restarts")
        run.cluster.start_node(node.node_id)
        run.note(f"broker {node.node_id} started")
        run.cluster.wait_in_sync()
        run.note("in sync")


def random_fault(run: ScaleOut, rng: random.Random) -> Callable[[], None]:
    """One fault of the four kinds, picked by `rng` (the soak script's rounds)."""
    kinds = ["kill-broker", "kill-worker", "rolling-restart"]
    streams = [n for n in run.workers if n != "a"]
    kinds.append("leave-worker" if len(streams) >= 2 else "join-worker")
    kind = rng.choice(kinds)
    if kind == "kill-broker":
        partition = rng.randrange(PARTITIONS)
        return lambda: kill_partition_leader(run, partition)
    if kind == "kill-worker":
        victim = rng.choice(
            [n for n in run.workers if (proc := run.workers[n].proc) is not None and proc.poll() is None]
        )
        return lambda: kill_worker(run, victim)
    if kind == "join-worker":
        name = next(
            n
            for n in "bcdefg"
            if n not in run.workers or (proc := run.workers[n].proc) is None or proc.poll() is not None
        )
        return lambda: join_worker(run, name)
    if kind == "leave-worker":
        name = max(streams)
        return lambda: _leave_and_forget(run, name)
    return lambda: rolling_restart(run)


def _leave_and_forget(run: ScaleOut, name: str) -> None:
    leave_worker(run, name)
    del run.workers[name]


def any_bulk(run: ScaleOut, sender: Sender, faults: dict[int, Callable[[], None]]) -> Callable[[int, Any], None]:
    """A `bulk_fault` for tests/e2e/pipeline.run_phases: bulk phase k under load with faults[k]
    (or just under load when k has none)."""

    def bulk(k: int, phase: Any) -> None:
        run.note(f"bulk {k} starts")
        fault = faults.get(k)
        if fault is None:
            sender.send(phase)
        else:
            under_load(run, sender, phase, fault)
        run.note(f"bulk {k} sent")

    return bulk
