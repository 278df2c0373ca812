"""Pure rules of the webhook and PagerDuty channels: signatures, bodies, dedup keys, resolve timing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import SecretStr

from meterline.alerts.classify import http_failure
from meterline.alerts.destinations import resolve_route
from meterline.alerts.errors import AlertConfigError, PermanentDeliveryError, TransientDeliveryError
from meterline.alerts.pagerduty_render import dedup_key, due_resolves, period_end, resolve_event, trigger_event
from meterline.alerts.view import alert_view
from meterline.alerts.webhook_render import message_id, signature, signed_headers, signing_key, webhook_body
from meterline.settings import AlertRoute, AlertSettings, BudgetConfig
from tests.unit.alerts.samples import NOW, forecast_alert, threshold_alert

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_signature_reproduces_the_standard_webhooks_published_vector() -> None:
    # The vector the Standard Webhooks reference libraries test against.
    key = signing_key(SECRET)
    got = signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_changes_with_each_signed_part() -> None:
    key = signing_key(SECRET)
    base = signature(key, "msg_1", 100, b"{}")
    assert base != signature(key, "msg_2", 100, b"{}")
    assert base != signature(key, "msg_1", 101, b"{}")
    assert base != signature(key, "msg_1", 100, b"{ }")
    assert base != signature(signing_key("whsec_" + "QUJD"), "msg_1", 100, b"{}")


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_!!!not-base64!!!", "plain text secret"])
def test_a_secret_that_is_not_whsec_base64_is_refused_without_showing_it(secret: str) -> None:
    with pytest.raises(AlertConfigError, match="whsec_") as caught:
        signing_key(secret)
    assert not secret.removeprefix("whsec_") or secret.removeprefix("whsec_") not in str(caught.value)


def test_message_id_is_stable_per_alert_set_and_headers_carry_it() -> None:
    assert message_id(["a"]) == message_id(["a"]) != message_id(["a", "b"])
    headers = signed_headers(signing_key(SECRET), "msg_x", 1700000000, b"{}")
    assert headers["webhook-id"] == "msg_x" and headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-signature"] == signature(signing_key(SECRET), "msg_x", 1700000000, b"{}")


def test_webhook_body_is_the_typed_envelope_with_each_alert() -> None:
    views = [alert_view(threshold_alert(), NOW)]
    body = json.loads(webhook_body(views, NOW))
    assert body["type"] == "meterline.budget_alert" and body["timestamp"] == NOW.isoformat()
    (alert,) = body["data"]["alerts"]
    assert alert["alert_id"] == threshold_alert().alert_id
    assert (alert["team"], alert["budget"], alert["percent"]) == ("platform", "monthly", "81.2405")
    digest = json.loads(webhook_body(views + [alert_view(forecast_alert(), NOW)], NOW))
    assert digest["type"] == "meterline.budget_alert.digest" and len(digest["data"]["alerts"]) == 2


def test_trigger_and_resolve_events_share_the_alert_id_as_dedup_key() -> None:
    view = alert_view(threshold_alert(), NOW)
    trigger = trigger_event(view, "R" * 32)
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == view.alert_id
    assert trigger["payload"]["severity"] == "warning" and trigger["payload"]["source"] == "meterline"
    assert trigger["payload"]["group"] == "platform" and trigger["payload"]["class"] == "threshold"
    over = alert_view(threshold_alert(threshold="100").model_copy(update={"percent": Decimal(104)}), NOW)
    assert trigger_event(over, "k")["payload"]["severity"] == "critical"
    assert resolve_event(view.alert_id, "k") == {
        "routing_key": "k",
        "event_action": "resolve",
        "dedup_key": view.alert_id,
    }


def test_a_long_alert_id_gets_a_bounded_distinct_dedup_key() -> None:
    long_a, long_b = "t/" + "a" * 300, "t/" + "a" * 299 + "b"
    assert len(dedup_key(long_a)) == 255 and dedup_key(long_a) != dedup_key(long_b)
    assert dedup_key("team/b/2026-11/threshold/80") == "team/b/2026-11/threshold/80"


@pytest.mark.parametrize(
    ("period", "timezone", "end"),
    [
        ("2026-11", "UTC", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12", "UTC", datetime(2027, 1, 1, tzinfo=UTC)),
        ("2026-11", "Europe/Berlin", datetime(2026, 11, 30, 23, tzinfo=UTC)),
        ("2026-11-28", "UTC", datetime(2026, 11, 29, tzinfo=UTC)),
        ("2026-W48", "UTC", datetime(2026, 11, 30, tzinfo=UTC)),
        ("rolling:24h", "UTC", None),
        ("test-20261128T093000", "UTC", None),
    ],
)
def test_period_end_of_each_period_key(period: str, timezone: str, end: datetime | None) -> None:
    assert period_end(period, None, timezone) == end


@dataclass(frozen=True)
class Sent:
    team: str
    budget: str
    period: str


def test_due_resolves_are_the_triggers_whose_period_has_ended_in_the_budgets_timezone() -> None:
    budgets = [
        BudgetConfig(team="platform", name="monthly", limit_usd=Decimal(1000), timezone="Europe/Berlin"),
        BudgetConfig(team="search", name="rolling", limit_usd=Decimal(5), period="rolling", window="24h"),
    ]
    november, december = Sent("platform", "monthly", "2026-11"), Sent("platform", "monthly", "2026-12")
    rolling, unknown_day = Sent("search", "rolling", "rolling:24h"), Sent("gone", "daily", "2026-11-28")
    triggered = [november, december, rolling, unknown_day, Sent("x", "y", "2026-13")]
    # 23:30 UTC on Nov 30 is already December in Berlin.
    assert due_resolves(triggered, budgets, datetime(2026, 11, 30, 22, 59, tzinfo=UTC)) == [unknown_day]
    assert due_resolves(triggered, budgets, datetime(2026, 11, 30, 23, 30, tzinfo=UTC)) == [november, unknown_day]


@pytest.mark.parametrize(
    ("status", "retry_after", "kind", "wait"),
    [
        (429, "7", TransientDeliveryError, 7.0),
        (503, None, TransientDeliveryError, None),
        (408, None, TransientDeliveryError, None),
        (400, None, PermanentDeliveryError, None),
        (401, None, PermanentDeliveryError, None),
        (302, None, PermanentDeliveryError, None),
    ],
)
def test_http_answers_are_classified(status: int, retry_after: str | None, kind: type, wait: float | None) -> None:
    error = http_failure("webhook", status, retry_after)
    assert type(error) is kind and f"HTTP {status}" in error.reason
    if isinstance(error, TransientDeliveryError):
        assert error.retry_after == wait
        assert error.maybe_sent == (status >= 500)


def test_routes_need_their_secrets_and_name_no_secret_in_the_target() -> None:
    with pytest.raises(AlertConfigError, match="WEBHOOK_URL"):
        resolve_route(AlertRoute(channel="webhook"), AlertSettings())
    with pytest.raises(AlertConfigError, match="PAGERDUTY_ROUTING_KEY"):
        resolve_route(AlertRoute(channel="pagerduty"), AlertSettings())
    alerts = AlertSettings(
        webhook_url=SecretStr("https://user:pw@hooks.example.org/in/s3cr3t?token=abc"),
        webhook_secret=SecretStr(SECRET),
        pagerduty_routing_key=SecretStr("R" * 32),
    )
    webhook = resolve_route(AlertRoute(channel="webhook"), alerts)
    assert webhook.target == "https://hooks.example.org"
    assert resolve_route(AlertRoute(channel="pagerduty"), alerts).target == "events-v2"
    bad = alerts.model_copy(update={"webhook_secret": SecretStr("not-a-secret")})
    with pytest.raises(AlertConfigError, match="whsec_"):
        resolve_route(AlertRoute(channel="webhook"), bad)
