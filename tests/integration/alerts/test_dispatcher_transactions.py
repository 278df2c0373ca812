"""Alerts come in the stream's Kafka transactions: the dispatcher acts on committed ones only."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from meterline.alerts.dispatcher import AlertDispatcher
from meterline.sinks.client import open_client
from meterline.sinks.migrations import apply_migrations
from tests.integration.alerts.support import deliveries, dispatcher_settings, wait_for
from tests.support.slack_server import FakeSlack
from tests.unit.alerts.samples import NOW, forecast_alert, threshold_alert

pytestmark = pytest.mark.integration


def test_an_aborted_alert_is_never_delivered(
    chdb_client: Any, chdb_dsn: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    apply_migrations(chdb_client)
    settings = dispatcher_settings(
        bootstrap=kafka_bootstrap,
        prefix=topic_prefix,
        slack_url=fake_slack.base_url,
        smtp_port=1,
        data_dir=tmp_path,
        default_routes=[{"channel": "slack", "target": "#costs"}],
    )
    aborted, committed = threshold_alert(), forecast_alert()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"{topic_prefix}{uuid.uuid4().hex}")
    producer.init_transactions()
    for alert, commit in ((aborted, False), (committed, True)):
        producer.begin_transaction()
        producer.send(settings.topic("alerts"), key=alert.alert_id.encode(), value=alert.model_dump_json().encode())
        producer.flush()
        producer.commit_transaction() if commit else producer.abort_transaction()
    producer.close()

    dispatcher = AlertDispatcher(settings, client_factory=lambda: open_client(chdb_dsn), now=lambda: NOW)
    dispatcher.start()
    try:
        wait_for(lambda: dispatcher.stats["sent"] == 1, "the committed alert")
        assert dispatcher.stats["received"] == 1
    finally:
        dispatcher.stop(30)
    assert [key[0] for key in deliveries(chdb_client)] == [committed.alert_id]
