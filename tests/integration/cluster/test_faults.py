"""Fault tests on a three-broker cluster: three partitions, replication 3, min ISR 2, steady load.

(a) kill -9 the broker leading a partition, then restart it; (b) kill -9 one of two workers,
then restart it; (c) a third worker joins mid-run (and later leaves); (d) a rolling restart of
all three brokers. Each runs the e2e scenario cut to two bulk phases (bulk, spike, bulk, spike:
three teams, one per partition) with its fault in the bulk phases, and ends with the e2e accounting:
every distinct event in ClickHouse once, spend exact to 1e-12, every alert delivered once,
DLQ + stored + duplicates = sent, and nothing lost from the producer's spool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from meterline.services.kafka_cluster import LocalKafkaCluster
from meterline.sinks.client import open_client
from tests.e2e.pipeline import check_alerts, check_clickhouse
from tests.e2e.scenario import build_scenario
from tests.integration.cluster.scaleout import (
    TEAMS,
    ScaleOut,
    join_worker,
    kill_partition_leader,
    kill_worker,
    leave_worker,
    rolling_restart,
)
from tests.support.slack_server import FakeSlack
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]
BULK = 900
"""Events of a bulk phase: sent at a steady rate while its fault lasts, the rest at once after it."""
BULK_PHASES = 2
"""Two bulk phases, so two faults per test at most: each broker restart costs 6-20 s here."""


@pytest.fixture
def scaleout(
    cluster: LocalKafkaCluster,
    topic_prefix: str,
    tmp_path: Path,
    catalog: Any,
    fake_slack: FakeSlack,
    smtp_server: SmtpServer,
    request: pytest.FixtureRequest,
) -> Iterator[ScaleOut]:
    seed = 90 + sum(map(ord, request.node.name)) % 50
    scenario = build_scenario(
        catalog, seed=seed, now=datetime.now(UTC), names=TEAMS, bulk_size=BULK, bulk_phases=BULK_PHASES
    )
    run = ScaleOut(cluster, topic_prefix, tmp_path, scenario, fake_slack, smtp_server)
    try:
        yield run
    finally:
        run.stop()
        print(f"faults: {run.faults}; worker restarts by the supervisor: {run.restarts()}")
        print("timeline: " + "; ".join(f"{t:.0f}s {step}" for t, step in run.timeline))
        for name, worker in run.workers.items():
            for exit_log in worker.exits:
                print(f"--- worker {name} {exit_log[-3000:]}")


def run_scenario(run: ScaleOut, faults: dict[int, Callable[[], None]]) -> None:
    """Run every phase with `faults[k]` during bulk phase k, then account for everything."""
    spool = run.play(faults)
    bad = run.stop()
    assert not bad, "\n".join(bad)
    print(f"producer: {spool}")
    client = open_client(run.chdb_dsn())
    try:
        check_clickhouse(client, run.scenario)
        check_alerts(client, run.scenario, run.slack, run.smtp)
    finally:
        client.close()


def test_a_killing_the_leader_of_each_partition_then_restarting_it(scaleout: ScaleOut) -> None:
    scaleout.start_worker("a")
    scaleout.start_worker("b")
    # usage[1] first: it lost its first records once (no committed offset yet; see stream/offsets.py).
    run_scenario(
        scaleout, {0: lambda: kill_partition_leader(scaleout, 1), 1: lambda: kill_partition_leader(scaleout, 2)}
    )
    assert len(scaleout.faults) == 2


def test_b_killing_one_of_two_workers_then_restarting_it(scaleout: ScaleOut) -> None:
    scaleout.start_worker("a")
    scaleout.start_worker("b")
    # The stream-only worker, then the whole one (its sink and dispatcher die with it).
    run_scenario(scaleout, {0: lambda: kill_worker(scaleout, "b"), 1: lambda: kill_worker(scaleout, "a")})
    assert len(scaleout.faults) == 2


def test_c_a_third_worker_joins_mid_run_and_later_leaves(scaleout: ScaleOut) -> None:
    scaleout.start_worker("a")
    scaleout.start_worker("b")
    run_scenario(scaleout, {0: lambda: join_worker(scaleout, "c"), 1: lambda: leave_worker(scaleout, "c")})
    assert scaleout.faults == ["worker c joins", "worker c leaves (SIGTERM)"]


def test_d_rolling_restart_of_all_three_brokers(scaleout: ScaleOut) -> None:
    scaleout.start_worker("a")
    scaleout.start_worker("b")
    run_scenario(scaleout, {0: lambda: rolling_restart(scaleout)})
    assert len(scaleout.faults) == 1
