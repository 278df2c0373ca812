"""Helpers of the dispatcher tests: settings, producing alerts, waiting, reading deliveries."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from meterline.messages import AlertEvent
from meterline.settings import AlertRoute, AlertSettings, BudgetConfig, Settings


def dispatcher_settings(
    *, bootstrap: str, prefix: str, slack_url: str, smtp_port: int, data_dir: Any, **alerts: Any
) -> Settings:
    section: dict[str, Any] = {
        "slack_token": SecretStr("xoxb-test-token"),
        "slack_base_url": slack_url,
        "smtp_port": smtp_port,
        "smtp_sender": "costs@example.org",
        "smtp_default_recipients": ["finance@example.org"],
        "default_routes": [AlertRoute(channel="slack", target="#costs"), AlertRoute(channel="email")],
        "retry_initial_seconds": 0.05,
        "retry_max_seconds": 0.2,
        "retry_deadline_seconds": 3.0,
        "send_timeout_seconds": 5.0,
    }
    section.update(alerts)
    return Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        data_dir=data_dir,
        alerts=AlertSettings(**section),
        budgets=[
            BudgetConfig(
                team="platform",
                name="monthly",
                limit_usd=1000,
                routes=[
                    AlertRoute(channel="slack", target="#platform"),
                    AlertRoute(channel="email", target="lead@example.org"),
                ],
            )
        ],
    )


def produce(settings: Settings, alerts: list[AlertEvent]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap.split(","), acks="all")
    try:
        for alert in alerts:
            producer.send(settings.topic("alerts"), key=alert.alert_id.encode(), value=alert.model_dump_json().encode())
        producer.flush(30)
    finally:
        producer.close(5)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll until `condition()` holds; fail naming `what` (a bound, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def deliveries(client: Any) -> dict[tuple[str, str, str], tuple[str, int, str, str]]:
    """(alert_id, channel, target) -> (status, attempts, reason, external_id), latest state."""
    rows = client.query(
        "SELECT alert_id, channel, target, status, attempts, reason, external_id FROM alert_deliveries FINAL"
    ).result_rows
    return {(r[0], r[1], r[2]): (r[3], int(r[4]), r[5], r[6]) for r in rows}


def committed_offset(settings: Settings, group: str) -> int | None:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","), group_id=group, enable_auto_commit=False
    )
    try:
        return consumer.committed(TopicPartition(settings.topic("alerts"), 0))
    finally:
        consumer.close()
