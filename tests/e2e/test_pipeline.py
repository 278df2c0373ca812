"""End to end: the default worker (stream + sink + alerts on embedded ClickHouse) as a subprocess.

In: realistic traffic with duplicates (within a batch and across batches), malformed messages
(not JSON, not UTF-8, schema violations, a wrong key, a tombstone), late events beyond the
grace period and events of a model the catalog does not price. Out: ClickHouse read through
the worker's /sql while it runs, then directly once it stopped; alerts on a real SMTP server
and on the Slack double.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from meterline.sinks.client import open_client
from tests.e2e.pipeline import (
    SLACK_TOKEN,
    Sender,
    check_alerts,
    check_clickhouse,
    pipeline_toml,
    sql_over_http,
    wait_alerts,
    wait_recorded,
    wait_stored,
)
from tests.e2e.scenario import build_scenario
from tests.integration.stream.harness import WorkerProcess
from tests.support.slack_server import FakeSlack
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_whole_pipeline_counts_each_event_once_and_alerts_once(
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    catalog: Any,
    fake_slack: FakeSlack,
    smtp_server: SmtpServer,
) -> None:
    scenario = build_scenario(catalog, seed=81, now=datetime.now(UTC))
    worker = WorkerProcess(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        toml=pipeline_toml(scenario, fake_slack, smtp_server),
        only=None,
        env={"METERLINE_ALERTS__SLACK_TOKEN": SLACK_TOKEN},
    )
    worker.start()
    try:
        with Sender(kafka_bootstrap, f"{topic_prefix}usage", tmp_path / "spool") as sender:
            for phase in scenario.phases:
                sender.send(phase)
        assert sender.outcomes() == {"sent": sum(len(p.events) for p in scenario.phases)}
        query = sql_over_http(worker)
        wait_stored(query, scenario)
        wait_alerts(scenario, fake_slack, smtp_server)
        wait_recorded(query, scenario)
        assert worker.metric("meterline_stream_duplicates_total") == scenario.duplicate_sends
        assert worker.metric("meterline_stream_late_total") == len(scenario.late_ids)
    finally:
        assert worker.stop() == 0, worker.log()
    client = open_client(f"chdb://{(tmp_path / 'data' / 'clickhouse').resolve()}")
    try:
        check_clickhouse(client, scenario)
        check_alerts(client, scenario, fake_slack, smtp_server)
    finally:
        client.close()
