"""The default worker: stream, ClickHouse sink and alert dispatcher in one process, /sql on its web port."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable

import pytest

from tests.integration.stream.harness import WorkerProcess, event, make_producer, produce_events

pytestmark = pytest.mark.integration


def test_one_process_runs_stream_sink_and_alerts(
    start_worker: Callable[..., WorkerProcess], kafka_bootstrap: str, topic_prefix: str
) -> None:
    worker = start_worker('[[budgets]]\nteam = "ml"\nname = "tiny"\nlimit_usd = "0.000001"\nperiod = "day"\n', only=None)
    status, body = worker.get("/healthz")
    assert status == 200 and json.loads(body)["components"] == {"stream": True, "sink": True, "alerts": True}
    events = [event(i) for i in range(50)]
    producer = make_producer(kafka_bootstrap)
    produce_events(producer, f"{topic_prefix}usage", events)
    producer.close()
    query = urllib.parse.quote("SELECT count() FROM usage_events FINAL")
    deadline = time.monotonic() + 60
    count = ""
    while time.monotonic() < deadline:
        status, count = worker.get(f"/sql?q={query}&format=csv")
        if status == 200 and count.strip().splitlines()[-1] == "50":
            break
        time.sleep(0.5)
    assert count.strip().splitlines()[-1] == "50", count
    assert worker.metric("meterline_stream_alerts_total") >= 1
    assert worker.stop() == 0
