"""Fault tests through the whole pipeline, each followed by the full accounting of test_pipeline.

- the worker is killed with SIGKILL three times during load, and restarted each time;
- the broker (this test's own) stops during load and comes back; the producer spools meanwhile;
- ClickHouse refuses writes for a while (tables detached for real), then recovers.

Faults hit bulk phases; alerts fire in the spike phases between them (see scenario.py for why).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from meterline.producers import ProducerTuning
from meterline.services.kafka_local import LocalKafka, find_free_port
from meterline.settings import Settings, load_settings
from meterline.sinks.client import open_client
from tests.e2e.pipeline import (
    SLACK_TOKEN,
    Sender,
    check_alerts,
    check_clickhouse,
    email_deliveries,
    pipeline_toml,
    run_phases,
    slack_deliveries,
    sql_direct,
    sql_over_http,
    wait_alerts,
    wait_for,
    wait_recorded,
    wait_stored,
)
from tests.e2e.scenario import build_scenario
from tests.integration.stream.harness import WorkerProcess
from tests.support.slack_server import FakeSlack
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EVENTS_IN = "meterline_stream_events_in_total"
FAST_FAILING = ProducerTuning(bootstrap_timeout_s=1.0, delivery_timeout_s=3.0, stall_timeout_s=1.0)


def chdb_dsn_of(tmp_path: Path) -> str:
    """The embedded database the worker opens under its data dir (see WorkerProcess)."""
    return f"chdb://{(tmp_path / 'data' / 'clickhouse').resolve()}"


def test_worker_killed_three_times_during_load(
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    catalog: Any,
    fake_slack: FakeSlack,
    smtp_server: SmtpServer,
) -> None:
    scenario = build_scenario(catalog, seed=82, now=datetime.now(UTC))
    worker = WorkerProcess(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        toml=pipeline_toml(scenario, fake_slack, smtp_server),
        only=None,
        env={"METERLINE_ALERTS__SLACK_TOKEN": SLACK_TOKEN},
    )
    worker.start()
    kills: list[float] = []

    def kill_mid_phase(_k: int, phase: Any) -> None:
        sender.send_raw(phase)
        slices = 10
        start = worker.metric(EVENTS_IN)

        def after_slice(i: int) -> None:
            if i == slices // 2 - 1:
                # The worker is busy with this phase (and may be mid-write to ClickHouse) when it dies.
                wait_for(lambda: worker.metric(EVENTS_IN) >= start + 100, "the worker to take this phase's events", 60)
                kills.append(worker.metric(EVENTS_IN))
                worker.kill9()

        # The rest of the phase is sent while the worker is dead; then it restarts.
        sender.emit(phase, slices=slices, pause=0.1, after_slice=after_slice)
        assert sender.producer is not None and sender.producer.flush(60)
        worker.start()

    try:
        with Sender(kafka_bootstrap, f"{topic_prefix}usage", tmp_path / "spool") as sender:
            run_phases(scenario, sender, lambda: sql_over_http(worker), fake_slack, smtp_server, kill_mid_phase)
        assert len(kills) == 3
    finally:
        assert worker.stop() == 0, worker.log()
    client = open_client(chdb_dsn_of(tmp_path))
    try:
        check_clickhouse(client, scenario)
        check_alerts(client, scenario, fake_slack, smtp_server)
    finally:
        client.close()


@pytest.fixture
def own_broker(tmp_path: Path, kafka_jar_cache: Path) -> Iterator[LocalKafka]:
    """A broker of this test's own (it is stopped and started), on a free port."""
    broker = LocalKafka(data_dir=tmp_path / "kafka", cache_dir=kafka_jar_cache, port=find_free_port(), heap="256m")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_broker_stopped_and_restarted_during_load(
    own_broker: LocalKafka,
    topic_prefix: str,
    tmp_path: Path,
    catalog: Any,
    fake_slack: FakeSlack,
    smtp_server: SmtpServer,
) -> None:
    scenario = build_scenario(catalog, seed=83, now=datetime.now(UTC))
    worker = WorkerProcess(
        own_broker.bootstrap,
        topic_prefix,
        tmp_path,
        toml=pipeline_toml(scenario, fake_slack, smtp_server),
        only=None,
        env={"METERLINE_ALERTS__SLACK_TOKEN": SLACK_TOKEN},
    )
    worker.start()
    outages: list[int] = []

    def broker_away_mid_phase(k: int, phase: Any) -> None:
        if k != 1:
            sender.send(phase)
            return
        sender.send_raw(phase)
        slices = 10

        def after_slice(i: int) -> None:
            assert sender.producer is not None
            if i == slices // 2 - 1:
                own_broker.stop()
            elif i == slices - 1:
                # The producer spooled what it could not hand to Kafka; now the broker returns.
                wait_for(lambda: sender.producer.counters().spooled > 0, "the producer to spool", 60)  # type: ignore[union-attr]  # the sender has a producer once started
                outages.append(sender.producer.counters().spooled)
                own_broker.start()

        sender.emit(phase, slices=slices, pause=0.2, after_slice=after_slice)
        wait_for(
            lambda: sender.producer.counters().replayed >= outages[0],  # type: ignore[union-attr]  # the sender has a producer once started
            "the producer to replay its spool",
            60,
        )

    try:
        with Sender(own_broker.bootstrap, f"{topic_prefix}usage", tmp_path / "spool", tuning=FAST_FAILING) as sender:
            run_phases(scenario, sender, lambda: sql_over_http(worker), fake_slack, smtp_server, broker_away_mid_phase)
        assert outages and outages[0] > 0
        assert worker.proc is not None and worker.proc.poll() is None, (
            "the worker died with the broker:\n" + worker.log()
        )
    finally:
        assert worker.stop() == 0, worker.log()
    client = open_client(chdb_dsn_of(tmp_path))
    try:
        check_clickhouse(client, scenario)
        check_alerts(client, scenario, fake_slack, smtp_server)
    finally:
        client.close()


def in_process_settings(worker: WorkerProcess) -> Settings:
    """The worker's own settings (its meterline.toml and env), for the parts run in this process."""
    settings = load_settings(
        worker.tmp / "meterline.toml",
        kafka_bootstrap=worker.bootstrap,
        topic_prefix=worker.prefix,
        data_dir=worker.tmp / "data",
    )
    alerts = settings.alerts.model_copy(update={"slack_token": SecretStr(SLACK_TOKEN)})
    return settings.model_copy(update={"alerts": alerts})


def test_clickhouse_refusing_writes_for_a_while(
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    catalog: Any,
    fake_slack: FakeSlack,
    smtp_server: SmtpServer,
) -> None:
    from meterline.alerts.dispatcher import AlertDispatcher
    from meterline.sinks import apply_migrations
    from meterline.sinks.runner import SinkRunner

    scenario = build_scenario(catalog, seed=84, now=datetime.now(UTC))
    # The stream in a subprocess; the sink and the dispatcher here, on one embedded database,
    # so this test can detach tables under them (chDB opens a path in one process only).
    worker = WorkerProcess(
        kafka_bootstrap, topic_prefix, tmp_path, toml=pipeline_toml(scenario, fake_slack, smtp_server), only="stream"
    )
    worker.start()
    settings = in_process_settings(worker)
    dsn = settings.effective_clickhouse_dsn
    admin = open_client(dsn)
    apply_migrations(admin)
    sink = SinkRunner(settings, client_factory=lambda: open_client(dsn))
    dispatcher = AlertDispatcher(settings, client_factory=lambda: open_client(dsn))
    sink.start()
    dispatcher.start()
    assert dispatcher.wait_running(60)
    query = sql_direct(admin)
    phases = scenario.phases
    assert [p.name for p in phases[:3]] == ["bulk0", "spike1", "bulk1"]

    def stored_now() -> int:
        return int(query("SELECT uniqExact(event_id) FROM usage_events")[0][0])

    try:
        with Sender(kafka_bootstrap, f"{topic_prefix}usage", tmp_path / "spool") as sender:
            sender.send(phases[0])
            wait_stored(query, scenario, 1)
            before, failures = stored_now(), sink.stats["write_failures"]
            # usage_hourly gone: every insert into usage_events fails ("target table of view
            # doesn't exist"); alert_deliveries gone: the dispatcher cannot record a delivery,
            # so it must not send one. The first spike's alerts fire meanwhile.
            admin.command("DETACH TABLE usage_hourly")
            admin.command("DETACH TABLE alert_deliveries")
            sender.send(phases[1])
            sender.send(phases[2])
            wait_for(lambda: sink.stats["write_failures"] >= failures + 3, "sink writes to fail a few times", 90)
            wait_for(lambda: not dispatcher.healthy(), "the dispatcher to find its delivery log gone", 60)
            assert not sink.healthy()
            assert stored_now() == before, "rows were written while usage_hourly was detached"
            assert not slack_deliveries(fake_slack) and not email_deliveries(smtp_server), "sent without a record"
            admin.command("ATTACH TABLE usage_hourly")
            admin.command("ATTACH TABLE alert_deliveries")
            wait_stored(query, scenario, 3, timeout=180)
            wait_alerts(scenario, fake_slack, smtp_server, 3)
            wait_recorded(query, scenario, 3)
            for index in (4, 5):
                sender.send(phases[index - 1])
                wait_stored(query, scenario, index)
            wait_alerts(scenario, fake_slack, smtp_server)
            wait_recorded(query, scenario)
        assert sink.stats["retries"] >= 3 and sink.healthy() and dispatcher.healthy()
    finally:
        dispatcher.stop()
        sink.stop()
        assert worker.stop() == 0, worker.log()
    try:
        check_clickhouse(admin, scenario)
        check_alerts(admin, scenario, fake_slack, smtp_server)
    finally:
        admin.close()
