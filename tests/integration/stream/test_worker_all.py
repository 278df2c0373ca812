"""The default worker: stream, ClickHouse sink and alert dispatcher under one command, /sql on its
web port; by default the sink and the dispatcher run in a child process (stream/sidecar.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.parse
from collections.abc import Callable

import pytest

from tests.integration.stream.harness import WorkerProcess, event, make_producer, produce_events

pytestmark = pytest.mark.integration


TINY_BUDGET = '[[budgets]]\nteam = "ml"\nname = "tiny"\nlimit_usd = "0.000001"\nperiod = "day"\n'
COUNT_STORED = urllib.parse.quote("SELECT count() FROM usage_events FINAL")


def wait_stored(worker: WorkerProcess, expected: int, timeout: float = 90) -> str:
    """Poll /sql until ClickHouse holds `expected` distinct events; the last answer."""
    deadline = time.monotonic() + timeout
    count = ""
    while time.monotonic() < deadline:
        status, count = worker.get(f"/sql?q={COUNT_STORED}&format=csv")
        if status == 200 and count.strip().splitlines()[-1] == str(expected):
            break
        time.sleep(0.5)
    return count.strip().splitlines()[-1] if count.strip() else count


def sidecar_pids(worker: WorkerProcess) -> list[int]:
    """Pids of the sink-and-alerts child processes the worker logged, in start order."""
    return [int(pid) for pid in re.findall(r"sink and alerts process started pid=(\d+)", worker.log(full=True))]


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("processes", [1, 2])
def test_default_worker_runs_stream_sink_and_alerts(
    start_worker: Callable[..., WorkerProcess], kafka_bootstrap: str, topic_prefix: str, processes: int
) -> None:
    worker = start_worker(TINY_BUDGET, only=None, env={"METERLINE_STREAM__PROCESSES": str(processes)})
    status, body = worker.get("/healthz")
    assert status == 200 and json.loads(body)["components"] == {"stream": True, "sink": True, "alerts": True}
    assert len(sidecar_pids(worker)) == (1 if processes == 2 else 0)
    events = [event(i) for i in range(50)]
    producer = make_producer(kafka_bootstrap)
    produce_events(producer, f"{topic_prefix}usage", events)
    producer.close()
    assert wait_stored(worker, 50) == "50"
    assert worker.metric("meterline_stream_alerts_total") >= 1
    assert worker.stop() == 0
    assert not any(alive(pid) for pid in sidecar_pids(worker)), "the child stops with the worker"


def test_sidecar_is_restarted_and_dies_with_a_killed_worker(
    start_worker: Callable[..., WorkerProcess], kafka_bootstrap: str, topic_prefix: str
) -> None:
    worker = start_worker(only=None)
    [child] = sidecar_pids(worker)
    producer = make_producer(kafka_bootstrap)
    produce_events(producer, f"{topic_prefix}usage", [event(i) for i in range(20)])
    assert wait_stored(worker, 20) == "20"

    # The child dies on its own: the worker reports it unhealthy, starts a new one, and the
    # new one goes on where the old one stopped.
    os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and worker.get("/healthz")[0] == 200:
        time.sleep(0.2)
    assert worker.get("/healthz")[0] == 503
    produce_events(producer, f"{topic_prefix}usage", [event(i) for i in range(20, 40)])
    worker.wait_healthy(60)
    assert len(sidecar_pids(worker)) == 2
    # Each child on a port of its own: the old one may have been taken meanwhile.
    ports = re.findall(r"sink and alerts process started pid=\d+ port=(\d+)", worker.log(full=True))
    assert len(ports) == 2 and ports[0] != ports[1]
    assert wait_stored(worker, 40) == "40"

    # kill -9 of the worker takes its child along: nothing is left holding the database
    # (tests/e2e/test_faults.py restarts the default worker after kill -9, three times).
    producer.close()
    newest = sidecar_pids(worker)[-1]
    worker.kill9()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(newest):
        time.sleep(0.1)
    assert not alive(newest)
