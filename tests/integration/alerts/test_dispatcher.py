"""The dispatcher end to end: the real Kafka `alerts` topic, the real chDB `alert_deliveries`
table, a real SMTP server and a Slack-shaped HTTP server on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from meterline.alerts.destinations import Destination
from meterline.alerts.dispatcher import AlertDispatcher
from meterline.alerts.store import DeliveryLog, delivery_record
from meterline.services.kafka_local import find_free_port
from meterline.settings import Settings
from meterline.sinks.client import open_client
from meterline.sinks.migrations import apply_migrations
from tests.integration.alerts.support import committed_offset, deliveries, dispatcher_settings, produce, wait_for
from tests.support.slack_server import FakeSlack
from tests.support.smtp import SmtpServer
from tests.unit.alerts.samples import NOW, forecast_alert, threshold_alert, unpriced_alert

pytestmark = pytest.mark.integration


@pytest.fixture
def migrated(chdb_client: Any) -> Any:
    apply_migrations(chdb_client)
    return chdb_client


@contextmanager
def running(settings: Settings, dsn: str) -> Iterator[AlertDispatcher]:
    dispatcher = AlertDispatcher(settings, client_factory=lambda: open_client(dsn), now=lambda: NOW)
    dispatcher.start()
    try:
        assert dispatcher.wait_running(60), f"dispatcher did not start: {dispatcher.error!r}"
        yield dispatcher
    finally:
        dispatcher.stop(30)
    assert dispatcher.error is None


def make_settings(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, slack: FakeSlack, smtp_port: int, **alerts: Any
) -> Settings:
    return dispatcher_settings(
        bootstrap=kafka_bootstrap,
        prefix=topic_prefix,
        slack_url=slack.base_url,
        smtp_port=smtp_port,
        data_dir=tmp_path,
        **alerts,
    )


def test_each_alert_reaches_each_route_once_and_offsets_follow_the_records(
    migrated: Any,
    chdb_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    fake_slack: FakeSlack,
    smtp_factory: Callable[..., SmtpServer],
) -> None:
    smtp = smtp_factory()
    settings = make_settings(tmp_path, kafka_bootstrap, topic_prefix, fake_slack, smtp.port)
    first, second = threshold_alert(), forecast_alert()
    produce(settings, [first, second, first])  # the third is a duplicate of the first
    with running(settings, chdb_dsn) as dispatcher:
        wait_for(
            lambda: dispatcher.stats["sent"] == 4 and committed_offset(settings, dispatcher.consumer_group) == 3,
            "4 deliveries and offset 3",
        )
        assert dispatcher.healthy()
        assert dispatcher.stats["duplicates"] == 2 and dispatcher.stats["received"] == 3
    recorded = deliveries(migrated)
    assert {key: value[0] for key, value in recorded.items()} == {
        (first.alert_id, "slack", "#platform"): "sent",
        (first.alert_id, "email", "lead@example.org"): "sent",
        (second.alert_id, "slack", "#costs"): "sent",
        (second.alert_id, "email", "finance@example.org"): "sent",
    }
    posts = fake_slack.calls("chat.postMessage")
    assert sorted(p.args["channel"] for p in posts) == ["#costs", "#platform"]
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == ["finance@example.org", "lead@example.org"]
    slack_ts = {m["ts"] for messages in fake_slack.messages.values() for m in messages}
    assert {
        recorded[(first.alert_id, "slack", "#platform")][3].split("/")[1],
        recorded[(second.alert_id, "slack", "#costs")][3].split("/")[1],
    } == slack_ts

    # The same alerts again (a replay) after a restart: nothing is sent twice.
    produce(settings, [second, first])
    with running(settings, chdb_dsn) as again:
        wait_for(lambda: committed_offset(settings, again.consumer_group) == 5, "offset 5")
        assert again.stats["duplicates"] == 4 and again.stats["sent"] == 0
    assert len(fake_slack.calls("chat.postMessage")) == 2 and len(smtp.messages) == 2


def test_a_failing_channel_does_not_hold_up_another(
    migrated: Any,
    chdb_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    fake_slack: FakeSlack,
) -> None:
    settings = make_settings(tmp_path, kafka_bootstrap, topic_prefix, fake_slack, find_free_port())  # nobody listens
    alert = forecast_alert()
    produce(settings, [alert])
    with running(settings, chdb_dsn) as dispatcher:
        wait_for(lambda: dispatcher.stats["sent"] == 1, "the Slack delivery")
        assert dispatcher.stats["failed"] == 0  # email is still being retried meanwhile
        assert committed_offset(settings, dispatcher.consumer_group) in (None, -1, 0)
        wait_for(lambda: dispatcher.stats["failed"] == 1, "email to give up at the deadline")
        wait_for(lambda: committed_offset(settings, dispatcher.consumer_group) == 1, "offset 1")
    recorded = deliveries(migrated)
    status, attempts, reason, _ = recorded[(alert.alert_id, "email", "finance@example.org")]
    assert (
        status == "failed" and attempts >= 2 and "connection refused" in reason and "retry deadline reached" in reason
    )
    assert recorded[(alert.alert_id, "slack", "#costs")][0] == "sent"


def test_many_pending_alerts_go_out_as_one_digest(
    migrated: Any,
    chdb_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    fake_slack: FakeSlack,
    smtp_factory: Callable[..., SmtpServer],
) -> None:
    smtp = smtp_factory()
    settings = make_settings(tmp_path, kafka_bootstrap, topic_prefix, fake_slack, smtp.port, digest_after=3)
    alerts = [forecast_alert(), unpriced_alert()] + [threshold_alert(team=f"team-{i}") for i in range(3)]
    produce(settings, alerts)
    with running(settings, chdb_dsn) as dispatcher:
        wait_for(lambda: dispatcher.stats["sent"] == 10, "10 deliveries")
        assert dispatcher.stats["digests"] == 2
    (post,) = fake_slack.calls("chat.postMessage")
    assert post.args["text"].startswith("5 budget alerts: ")
    assert post.args["metadata"]["event_payload"]["alert_ids"] == [a.alert_id for a in alerts]
    (mail,) = smtp.messages
    assert b"Subject: [meterline] 5 budget alerts" in mail.content
    reasons = {value[2] for value in deliveries(migrated).values()}
    assert reasons == {"digest of 5"}


def test_rows_left_sending_by_a_crash_are_resolved_per_channel(
    migrated: Any,
    chdb_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    fake_slack: FakeSlack,
    smtp_factory: Callable[..., SmtpServer],
) -> None:
    """A crash state written directly: what each channel does with a delivery left `sending`."""
    import asyncio

    from meterline.alerts.slack import SlackChannel
    from meterline.alerts.view import alert_view

    smtp = smtp_factory()
    settings = make_settings(tmp_path, kafka_bootstrap, topic_prefix, fake_slack, smtp.port)
    posted, unposted, refused = threshold_alert(), forecast_alert(), unpriced_alert()
    fake_slack.known_channels.update({"platform", "costs"})
    asyncio.run(SlackChannel(settings.alerts).send(Destination("slack", "#platform"), [alert_view(posted, NOW)]))
    crashed_at = datetime.now(UTC)  # Slack's history is searched from about this time
    DeliveryLog(migrated).write(
        [
            delivery_record(
                posted, Destination("slack", "#platform"), "sending", crashed_at, attempts=1, reason="attempt 1"
            ),
            delivery_record(
                posted, Destination("email", "lead@example.org"), "sending", crashed_at, attempts=1, reason="attempt 1"
            ),
            delivery_record(
                unposted, Destination("slack", "#costs"), "sending", crashed_at, attempts=1, reason="attempt 1"
            ),
            delivery_record(
                refused,
                Destination("email", "finance@example.org"),
                "sending",
                crashed_at,
                attempts=2,
                reason="not sent: SMTP 451",
            ),
        ]
    )
    produce(settings, [posted, unposted, refused])
    with running(settings, chdb_dsn) as dispatcher:
        wait_for(lambda: dispatcher.stats["sent"] + dispatcher.stats["failed"] == 6, "6 outcomes")
        assert dispatcher.stats["confirmed_after_restart"] == 1
    recorded = deliveries(migrated)
    assert recorded[(posted.alert_id, "slack", "#platform")][:3] == ("sent", 1, "confirmed after restart")
    status, _, reason, _ = recorded[(posted.alert_id, "email", "lead@example.org")]
    assert status == "failed" and reason.startswith("outcome unknown after a restart")
    assert recorded[(unposted.alert_id, "slack", "#costs")][:2] == ("sent", 2)
    assert recorded[(refused.alert_id, "email", "finance@example.org")][:2] == ("sent", 3)
    assert recorded[(refused.alert_id, "slack", "#costs")][0] == "sent"
    assert len(fake_slack.messages[FakeSlack.channel_id("platform")]) == 1  # not posted twice
    # unposted (new) and refused (known not sent) go to finance; the unconfirmed one to lead does not
    assert [m.rcpt_tos[0] for m in smtp.messages] == ["finance@example.org", "finance@example.org"]


def test_resend_unconfirmed_chooses_at_least_once(
    migrated: Any,
    chdb_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    fake_slack: FakeSlack,
    smtp_factory: Callable[..., SmtpServer],
) -> None:
    smtp = smtp_factory()
    settings = make_settings(
        tmp_path,
        kafka_bootstrap,
        topic_prefix,
        fake_slack,
        smtp.port,
        resend_unconfirmed=True,
        default_routes=[{"channel": "email"}],
    )
    alert = forecast_alert()
    DeliveryLog(migrated).write(
        [delivery_record(alert, Destination("email", "finance@example.org"), "sending", NOW, attempts=1)]
    )
    produce(settings, [alert])
    with running(settings, chdb_dsn) as dispatcher:
        wait_for(lambda: dispatcher.stats["sent"] == 1, "the re-send")
    assert deliveries(migrated)[(alert.alert_id, "email", "finance@example.org")][:2] == ("sent", 2)
    assert len(smtp.messages) == 1


def test_a_missing_table_stops_the_dispatcher_with_a_fix(
    chdb_client: Any,
    chdb_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    fake_slack: FakeSlack,
) -> None:
    settings = make_settings(tmp_path, kafka_bootstrap, topic_prefix, fake_slack, find_free_port())
    dispatcher = AlertDispatcher(settings, client_factory=lambda: open_client(chdb_dsn))
    dispatcher.start()
    dispatcher.stop(30)
    assert not dispatcher.healthy()
    assert "run `meterline migrate` first" in str(dispatcher.error)


def test_a_stop_during_retries_resends_after_restart_what_was_surely_not_sent(
    migrated: Any,
    chdb_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    fake_slack: FakeSlack,
    smtp_factory: Callable[..., SmtpServer],
) -> None:
    smtp = smtp_factory()
    smtp.replies += ["451 4.3.0 mailbox busy"] * 1000
    settings = make_settings(
        tmp_path,
        kafka_bootstrap,
        topic_prefix,
        fake_slack,
        smtp.port,
        default_routes=[{"channel": "email"}],
        retry_deadline_seconds=120.0,
    )
    alert = forecast_alert()
    produce(settings, [alert])
    key = (alert.alert_id, "email", "finance@example.org")
    with running(settings, chdb_dsn) as dispatcher:
        wait_for(lambda: dispatcher.stats["retries"] >= 2, "two retries")
    status, attempts, reason, _ = deliveries(migrated)[key]
    assert status == "sending" and reason == "not sent: SMTP 451 4.3.0 mailbox busy" and attempts >= 2
    assert smtp.messages == []

    smtp.replies.clear()
    with running(settings, chdb_dsn) as again:
        wait_for(lambda: again.stats["sent"] == 1, "the delivery after restart")
    status, attempts_after, _, external_id = deliveries(migrated)[key]
    assert status == "sent" and attempts_after == attempts + 1 and external_id.startswith("<meterline.")
    assert len(smtp.messages) == 1
