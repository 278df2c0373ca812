"""Slack through slack-sdk against a local server in Slack's shape: blocks, metadata, failures."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from pydantic import SecretStr

from meterline.alerts.delivery import send_with_retries
from meterline.alerts.destinations import Destination
from meterline.alerts.errors import PermanentDeliveryError
from meterline.alerts.retry import RetryPolicy
from meterline.alerts.slack import SlackChannel
from meterline.alerts.slack_render import alert_message
from meterline.alerts.view import alert_view
from meterline.services.kafka_local import find_free_port
from meterline.settings import AlertSettings
from tests.support.slack_server import FakeSlack, Scripted
from tests.unit.alerts.samples import NOW, forecast_alert, threshold_alert

pytestmark = pytest.mark.integration

COSTS = Destination("slack", "#costs")
FAST = RetryPolicy(initial_seconds=0.05, max_seconds=0.1, deadline_seconds=1.0, rng=lambda: 0.5)


def bot(fake: FakeSlack) -> SlackChannel:
    return SlackChannel(
        AlertSettings(slack_token=SecretStr("xoxb-test-token"), slack_base_url=fake.base_url, send_timeout_seconds=5)
    )


def deliver(channel: SlackChannel, policy: RetryPolicy = FAST):
    return asyncio.run(send_with_retries(channel, COSTS, [alert_view(threshold_alert(), NOW)], policy, time.monotonic))


def test_post_message_carries_blocks_text_metadata_and_the_token(fake_slack: FakeSlack) -> None:
    view = alert_view(threshold_alert(), NOW)
    external_id = asyncio.run(bot(fake_slack).send(COSTS, [view]))
    (call,) = fake_slack.calls("chat.postMessage")
    expected = alert_message(view)
    assert call.args["channel"] == "#costs"
    assert call.args["text"] == expected.text
    assert call.args["blocks"] == expected.blocks
    assert call.args["metadata"] == {
        "event_type": "meterline_alert",
        "event_payload": {"alert_id": view.alert_id, "alert_ids": [view.alert_id]},
    }
    assert call.headers["Authorization"] == "Bearer xoxb-test-token"
    channel_id = FakeSlack.channel_id("costs")
    assert external_id == f"{channel_id}/{fake_slack.messages[channel_id][0]['ts']}"


def test_429_then_success_is_delivered_once_after_the_wait(fake_slack: FakeSlack) -> None:
    fake_slack.plan("chat.postMessage", Scripted(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}))
    outcome = deliver(bot(fake_slack), RetryPolicy(initial_seconds=0.05, max_seconds=0.1, deadline_seconds=5))
    calls = fake_slack.calls("chat.postMessage")
    assert outcome.sent and outcome.attempts == 2
    assert len(calls) == 2 and sum(len(m) for m in fake_slack.messages.values()) == 1
    assert calls[1].received - calls[0].received >= 1.0  # Retry-After honoured


def test_repeated_500s_are_retried_until_the_deadline_then_fail(fake_slack: FakeSlack) -> None:
    fake_slack.plan("chat.postMessage", *[Scripted(500, "upstream error") for _ in range(200)])
    outcome = deliver(bot(fake_slack))
    assert not outcome.sent
    assert outcome.attempts >= 3 and len(fake_slack.calls("chat.postMessage")) == outcome.attempts
    assert "HTTP 500" in outcome.reason and "retry deadline reached" in outcome.reason


def test_channel_not_found_is_not_retried(fake_slack: FakeSlack) -> None:
    fake_slack.plan("chat.postMessage", Scripted(200, {"ok": False, "error": "channel_not_found"}))
    outcome = deliver(bot(fake_slack))
    assert not outcome.sent and outcome.attempts == 1
    assert outcome.reason.startswith("channel_not_found: ")
    assert len(fake_slack.calls("chat.postMessage")) == 1


def test_invalid_auth_is_permanent(fake_slack: FakeSlack) -> None:
    fake_slack.plan("chat.postMessage", Scripted(200, {"ok": False, "error": "invalid_auth"}))
    with pytest.raises(PermanentDeliveryError, match="invalid_auth") as caught:
        asyncio.run(bot(fake_slack).send(COSTS, [alert_view(threshold_alert(), NOW)]))
    assert "xoxb-test-token" not in str(caught.value)


def test_refused_connection_is_retried_then_fails() -> None:
    channel = SlackChannel(
        AlertSettings(slack_token=SecretStr("xoxb-t"), slack_base_url=f"http://127.0.0.1:{find_free_port()}/api/")
    )
    outcome = deliver(channel)
    assert not outcome.sent and outcome.attempts >= 2 and outcome.reason.startswith("network: ")


def test_lookup_finds_an_earlier_post_by_its_metadata(fake_slack: FakeSlack) -> None:
    channel = bot(fake_slack)
    alert = threshold_alert()
    since = NOW - timedelta(days=365 * 10)

    async def scenario():
        before = await channel.lookup(COSTS, alert.alert_id, since)
        external_id = await channel.send(COSTS, [alert_view(forecast_alert(), NOW), alert_view(alert, NOW)])
        after = await SlackChannel(channel_settings(fake_slack)).lookup(COSTS, alert.alert_id, since)
        return before, external_id, after

    fake_slack.known_channels.add("costs")
    before, external_id, after = asyncio.run(scenario())
    assert before.answer == "not_sent"
    assert after.answer == "sent" and after.external_id == external_id
    assert fake_slack.calls("conversations.list")  # #costs was mapped to its id
    assert all(c.args.get("include_all_metadata") for c in fake_slack.calls("conversations.history"))


def test_lookup_without_history_access_is_unknown(fake_slack: FakeSlack) -> None:
    fake_slack.known_channels.add("costs")
    fake_slack.plan("conversations.history", Scripted(200, {"ok": False, "error": "missing_scope"}))
    found = asyncio.run(bot(fake_slack).lookup(COSTS, "x", NOW))
    assert found.answer == "unknown" and "missing_scope" in found.why


def channel_settings(fake: FakeSlack) -> AlertSettings:
    return AlertSettings(slack_token=SecretStr("xoxb-test-token"), slack_base_url=fake.base_url)


def test_incoming_webhook_receives_blocks_and_failures_are_classified(fake_slack: FakeSlack) -> None:
    hook = SlackChannel(AlertSettings(slack_webhook_url=SecretStr(fake_slack.webhook_url)))
    view = alert_view(threshold_alert(), NOW)
    assert asyncio.run(hook.send(COSTS, [view])) == "webhook"
    (call,) = fake_slack.calls("secretpath")
    assert call.args["blocks"] == alert_message(view).blocks and call.args["text"] == alert_message(view).text
    fake_slack.plan("webhook", Scripted(429, "rate_limited", {"Retry-After": "1"}), Scripted(404, "channel_not_found"))
    outcome = asyncio.run(send_with_retries(hook, COSTS, [view], RetryPolicy(0.05, 0.1, 5), time.monotonic))
    assert not outcome.sent and outcome.attempts == 2 and outcome.reason.startswith("channel_not_found")
    lookup = asyncio.run(hook.lookup(COSTS, view.alert_id, NOW))
    assert lookup.answer == "unknown"
