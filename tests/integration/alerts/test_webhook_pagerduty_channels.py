"""The webhook and PagerDuty channels over real HTTP to local doubles: signatures, retries, failures."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from pydantic import SecretStr

from meterline.alerts.delivery import send_with_retries
from meterline.alerts.destinations import Destination
from meterline.alerts.errors import PermanentDeliveryError
from meterline.alerts.pagerduty import PagerDutyChannel
from meterline.alerts.retry import RetryPolicy
from meterline.alerts.view import alert_view
from meterline.alerts.webhook import WebhookChannel
from meterline.alerts.webhook_render import signature, signing_key
from meterline.services.kafka_local import find_free_port
from meterline.settings import AlertSettings
from tests.support.http_double import Answer, HttpDouble
from tests.unit.alerts.samples import NOW, forecast_alert, threshold_alert

pytestmark = pytest.mark.integration

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"
HOOK = Destination("webhook", "http://127.0.0.1")
PD = Destination("pagerduty", "events-v2")
FAST = RetryPolicy(initial_seconds=0.05, max_seconds=0.1, deadline_seconds=1.0, rng=lambda: 0.5)


def webhook(url: str) -> WebhookChannel:
    return WebhookChannel(
        AlertSettings(webhook_url=SecretStr(url), webhook_secret=SecretStr(SECRET), send_timeout_seconds=5), lambda: NOW
    )


def pagerduty(url: str) -> PagerDutyChannel:
    return PagerDutyChannel(
        AlertSettings(pagerduty_routing_key=SecretStr(ROUTING_KEY), pagerduty_events_url=url, send_timeout_seconds=5)
    )


def deliver(
    channel: WebhookChannel | PagerDutyChannel, destination: Destination, policy: RetryPolicy = FAST, views=None
):
    async def run():
        try:
            return await send_with_retries(
                channel, destination, views or [alert_view(threshold_alert(), NOW)], policy, time.monotonic
            )
        finally:
            await channel.aclose()

    return asyncio.run(run())


def test_webhook_posts_json_a_receiver_can_verify(webhook_receiver: HttpDouble) -> None:
    outcome = deliver(webhook(webhook_receiver.url("/hooks/costs?token=abc")), HOOK)
    (received,) = webhook_receiver.requests
    assert outcome.sent and outcome.external_id == received.headers["webhook-id"]
    assert received.path == "/hooks/costs?token=abc" and received.headers["content-type"] == "application/json"
    # Verify as a receiver would: recompute the signature over the exact bytes received.
    expected = signature(
        signing_key(SECRET), received.headers["webhook-id"], int(received.headers["webhook-timestamp"]), received.body
    )
    assert received.headers["webhook-signature"] == expected
    assert int(received.headers["webhook-timestamp"]) == int(NOW.timestamp())
    assert received.json()["data"]["alerts"][0]["alert_id"] == threshold_alert().alert_id


def test_webhook_429_then_500_then_success_is_one_message_id_after_the_wait(webhook_receiver: HttpDouble) -> None:
    webhook_receiver.plan(Answer(429, "slow down", {"Retry-After": "1"}), Answer(500, "oops"))
    outcome = deliver(webhook(webhook_receiver.url("/in")), HOOK, RetryPolicy(0.05, 0.1, 5, rng=lambda: 0.5))
    first, second, third = webhook_receiver.requests
    assert outcome.sent and outcome.attempts == 3 and len(webhook_receiver.accepted) == 1
    assert second.received - first.received >= 1.0  # Retry-After honoured
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == third.headers["webhook-id"]


def test_webhook_4xx_is_permanent_and_neither_secret_nor_url_path_shows(
    webhook_receiver: HttpDouble, caplog: pytest.LogCaptureFixture
) -> None:
    webhook_receiver.plan(Answer(410, "gone"))
    caplog.set_level(logging.DEBUG)
    outcome = deliver(webhook(webhook_receiver.url("/in/s3cr3tpath")), HOOK)
    assert not outcome.sent and outcome.attempts == 1 and outcome.reason == "HTTP 410"
    refused = deliver(webhook(f"http://127.0.0.1:{find_free_port()}/in/s3cr3tpath"), HOOK)
    assert (
        not refused.sent and refused.attempts >= 2 and refused.reason.startswith("cannot connect to http://127.0.0.1:")
    )
    for text in [outcome.reason, refused.reason, caplog.text]:
        assert "s3cr3tpath" not in text and "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in text


def test_pagerduty_trigger_is_202_with_the_alerts_dedup_key(fake_pagerduty: HttpDouble) -> None:
    views = [alert_view(threshold_alert(), NOW), alert_view(forecast_alert(), NOW)]
    outcome = deliver(pagerduty(fake_pagerduty.url("/v2/enqueue")), PD, views=views)
    events = [r.json() for r in fake_pagerduty.requests]
    assert outcome.sent and outcome.attempts == 1
    assert [e["dedup_key"] for e in events] == [threshold_alert().alert_id, forecast_alert().alert_id]
    assert {e["event_action"] for e in events} == {"trigger"} and {e["routing_key"] for e in events} == {ROUTING_KEY}
    assert events[0]["payload"]["summary"] == views[0].summary


def test_pagerduty_429_is_retried_and_400_is_permanent_without_the_key(
    fake_pagerduty: HttpDouble, caplog: pytest.LogCaptureFixture
) -> None:
    fake_pagerduty.plan(Answer(429, {"status": "throttle event"}, {"Retry-After": "1"}))
    outcome = deliver(pagerduty(fake_pagerduty.url("/v2/enqueue")), PD, RetryPolicy(0.05, 0.1, 5, rng=lambda: 0.5))
    first, second = fake_pagerduty.requests
    assert outcome.sent and outcome.attempts == 2 and second.received - first.received >= 1.0
    invalid = {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": [f"routing_key {ROUTING_KEY} is unknown"],
    }
    fake_pagerduty.plan(Answer(400, invalid))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PermanentDeliveryError, match="Event object is invalid") as caught:
        asyncio.run(pagerduty(fake_pagerduty.url("/v2/enqueue")).send(PD, [alert_view(threshold_alert(), NOW)]))
    assert ROUTING_KEY not in str(caught.value) and ROUTING_KEY not in caplog.text


def test_pagerduty_resolve_uses_the_same_dedup_key(fake_pagerduty: HttpDouble) -> None:
    async def run() -> None:
        channel = pagerduty(fake_pagerduty.url("/v2/enqueue"))
        try:
            await channel.resolve(PD, threshold_alert().alert_id)
        finally:
            await channel.aclose()

    asyncio.run(run())
    (event,) = [r.json() for r in fake_pagerduty.requests]
    assert event == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": threshold_alert().alert_id}
