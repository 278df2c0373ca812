"""Webhook and PagerDuty through the real dispatcher: the Kafka `alerts` topic, chDB
`alert_deliveries`, local HTTP doubles; each delivered once, PagerDuty resolved once per period."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from meterline.alerts.destinations import Destination
from meterline.alerts.dispatcher import AlertDispatcher
from meterline.alerts.store import DeliveryLog, delivery_record
from meterline.settings import AlertRoute, AlertSettings, BudgetConfig, Settings
from meterline.sinks.client import open_client
from meterline.sinks.migrations import apply_migrations
from tests.integration.alerts.support import committed_offset, deliveries, produce, wait_for
from tests.support.http_double import HttpDouble
from tests.unit.alerts.samples import NOW, forecast_alert, threshold_alert

pytestmark = pytest.mark.integration

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def running(settings: Settings, dsn: str, clock: Clock) -> Iterator[AlertDispatcher]:
    dispatcher = AlertDispatcher(settings, client_factory=lambda: open_client(dsn), now=clock)
    dispatcher.start()
    try:
        assert dispatcher.wait_running(60), f"dispatcher did not start: {dispatcher.error!r}"
        yield dispatcher
    finally:
        dispatcher.stop(30)
    assert dispatcher.error is None


def settings_for(tmp_path: Path, bootstrap: str, prefix: str, hook: HttpDouble, pagerduty: HttpDouble) -> Settings:
    return Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        data_dir=tmp_path,
        alerts=AlertSettings(
            webhook_url=SecretStr(hook.url("/meterline?token=t0k3n")),
            webhook_secret=SecretStr(SECRET),
            pagerduty_routing_key=SecretStr("R" * 32),
            pagerduty_events_url=pagerduty.url("/v2/enqueue"),
            pagerduty_resolve_interval_seconds=0.2,
            default_routes=[AlertRoute(channel="webhook"), AlertRoute(channel="pagerduty")],
            retry_initial_seconds=0.05,
            retry_max_seconds=0.2,
            retry_deadline_seconds=3.0,
        ),
        budgets=[BudgetConfig(team="platform", name="monthly", limit_usd=1000, timezone="Europe/Berlin")],
    )


def events(pagerduty: HttpDouble, action: str) -> list[str]:
    return [r.json()["dedup_key"] for r in pagerduty.accepted if r.json()["event_action"] == action]


def test_each_alert_is_posted_and_triggered_once_and_resolved_once_its_period_ends(
    chdb_client: Any,
    chdb_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    webhook_receiver: HttpDouble,
    fake_pagerduty: HttpDouble,
) -> None:
    apply_migrations(chdb_client)
    settings = settings_for(tmp_path, kafka_bootstrap, topic_prefix, webhook_receiver, fake_pagerduty)
    monthly, daily = threshold_alert(), forecast_alert()  # periods 2026-11 (Berlin) and 2026-11-28 (UTC)
    clock = Clock(NOW)
    produce(settings, [monthly, daily, monthly])  # the third is a duplicate
    with running(settings, chdb_dsn, clock) as dispatcher:
        wait_for(
            lambda: dispatcher.stats["sent"] == 4 and committed_offset(settings, dispatcher.consumer_group) == 3,
            "4 deliveries and offset 3",
        )
        assert dispatcher.stats["duplicates"] == 2 and dispatcher.stats["resolved"] == 0
        clock.now = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)  # the day of `daily` is over, November is not
        wait_for(lambda: dispatcher.stats["resolved"] == 1, "the daily incident to resolve")
    alert_ids = sorted(r.json()["data"]["alerts"][0]["alert_id"] for r in webhook_receiver.accepted)
    assert alert_ids == sorted([monthly.alert_id, daily.alert_id])
    assert len({r.headers["webhook-id"] for r in webhook_receiver.accepted}) == 2
    assert sorted(events(fake_pagerduty, "trigger")) == sorted([monthly.alert_id, daily.alert_id])
    assert events(fake_pagerduty, "resolve") == [daily.alert_id]
    recorded = deliveries(chdb_client)
    assert recorded[(daily.alert_id, "pagerduty", "events-v2")][0] == "resolved"
    assert recorded[(monthly.alert_id, "pagerduty", "events-v2")][0] == "sent"
    assert recorded[(monthly.alert_id, "webhook", webhook_receiver.url("").rstrip("/"))][0] == "sent"

    # A restart after November ended in Berlin, with both alerts replayed: nothing is posted or
    # triggered again, the monthly incident is resolved, the daily one is not resolved twice.
    produce(settings, [daily, monthly])
    clock.now = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    with running(settings, chdb_dsn, clock) as again:
        wait_for(
            lambda: committed_offset(settings, again.consumer_group) == 5 and again.stats["resolved"] == 1,
            "offset 5 and one resolve",
        )
        assert again.stats["duplicates"] == 4 and again.stats["sent"] == 0
    assert len(webhook_receiver.accepted) == 2 and len(events(fake_pagerduty, "trigger")) == 2
    assert events(fake_pagerduty, "resolve") == [daily.alert_id, monthly.alert_id]
    assert deliveries(chdb_client)[(monthly.alert_id, "pagerduty", "events-v2")][0] == "resolved"


def test_rows_left_sending_by_a_crash_resend_to_pagerduty_and_stay_unsent_to_the_webhook(
    chdb_client: Any,
    chdb_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    webhook_receiver: HttpDouble,
    fake_pagerduty: HttpDouble,
) -> None:
    """A crash between a send and its record: PagerDuty's dedup key makes a resend harmless, so it
    is re-sent; a webhook receiver cannot be asked, so at-most-once (the default) records failed."""
    apply_migrations(chdb_client)
    settings = settings_for(tmp_path, kafka_bootstrap, topic_prefix, webhook_receiver, fake_pagerduty)
    alert = threshold_alert()
    hook_target = webhook_receiver.url("").rstrip("/")
    crashed_at = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    DeliveryLog(chdb_client).write(
        [
            delivery_record(
                alert, Destination("pagerduty", "events-v2"), "sending", crashed_at, attempts=1, reason="attempt 1"
            ),
            delivery_record(
                alert, Destination("webhook", hook_target), "sending", crashed_at, attempts=1, reason="attempt 1"
            ),
        ]
    )
    produce(settings, [alert])
    with running(settings, chdb_dsn, Clock(NOW)) as dispatcher:
        wait_for(lambda: committed_offset(settings, dispatcher.consumer_group) == 1, "offset 1")
    recorded = deliveries(chdb_client)
    pagerduty_status, pagerduty_attempts, _, _ = recorded[(alert.alert_id, "pagerduty", "events-v2")]
    assert (pagerduty_status, pagerduty_attempts) == ("sent", 2) and events(fake_pagerduty, "trigger") == [
        alert.alert_id
    ]
    webhook_status, _, webhook_reason, _ = recorded[(alert.alert_id, "webhook", hook_target)]
    assert webhook_status == "failed" and "outcome unknown after a restart" in webhook_reason
    assert webhook_receiver.requests == []
