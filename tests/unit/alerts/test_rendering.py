"""Golden text of every alert kind and the digest, for Slack (blocks + fallback) and email.

Regenerate after an intended change with `METERLINE_UPDATE_GOLDEN=1 pytest tests/unit/alerts`,
then read the diff of tests/unit/alerts/golden/ before committing it.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.alerts.email_render import alert_email, build_email, digest_email, message_id_for
from meterline.alerts.errors import AlertConfigError
from meterline.alerts.slack_render import METADATA_EVENT_TYPE, alert_message, digest_message
from meterline.alerts.view import alert_view, format_percent, format_usd, humanize_until, percent_bar
from tests.unit.alerts.samples import NOW, forecast_alert, threshold_alert, unpriced_alert

GOLDEN = Path(__file__).parent / "golden"
DASHBOARD = "https://grafana.example/d/costs?team={team}&budget={budget}&period={period}"
ALERTS = {"threshold": threshold_alert, "forecast": forecast_alert, "unpriced": unpriced_alert}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("METERLINE_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden {path}: run with METERLINE_UPDATE_GOLDEN=1 once"
    assert text == path.read_text(encoding="utf-8")


def slack_text(message) -> str:
    return f"{message.text}\n{json.dumps(message.blocks, indent=2, ensure_ascii=False)}\n"


def email_text(content) -> str:
    return f"Subject: {content.subject}\n\n{content.text}\n----- html -----\n{content.html}\n"


@pytest.mark.parametrize("kind", sorted(ALERTS))
def test_slack_golden(kind: str) -> None:
    view = alert_view(ALERTS[kind](), NOW, DASHBOARD if kind == "threshold" else None)
    check_golden(f"{kind}.slack.txt", slack_text(alert_message(view)))


@pytest.mark.parametrize("kind", sorted(ALERTS))
def test_email_golden(kind: str) -> None:
    view = alert_view(ALERTS[kind](), NOW, DASHBOARD if kind == "threshold" else None)
    check_golden(f"{kind}.email.txt", email_text(alert_email(view)))


def test_digest_golden() -> None:
    views = [alert_view(make(), NOW, DASHBOARD) for make in ALERTS.values()]
    check_golden("digest.slack.txt", slack_text(digest_message(views)))
    check_golden("digest.email.txt", email_text(digest_email(views)))


def test_threshold_message_says_what_people_need() -> None:
    text = alert_email(alert_view(threshold_alert(), NOW, DASHBOARD)).text
    for expected in (
        "platform/monthly crossed 80% of its monthly budget",
        "$812.40 of $1,000.00 (81.2%)",
        "[████████░░]",
        "Threshold crossed: 80%",
        "$1,240.00 at period end (124% of limit)",
        "1. openai/gpt-4o  $500.25",
        "Resets in 3 days",
        "Last period: $903.50",
        "Dashboard: https://grafana.example/d/costs?team=platform&budget=monthly&period=2026-11",
    ):
        assert expected in text


def test_slack_message_carries_metadata_for_every_alert_of_a_digest() -> None:
    views = [alert_view(make(), NOW) for make in ALERTS.values()]
    single, digest = alert_message(views[0]), digest_message(views)
    assert single.metadata == {
        "event_type": METADATA_EVENT_TYPE,
        "event_payload": {"alert_id": views[0].alert_id, "alert_ids": [views[0].alert_id]},
    }
    assert digest.metadata["event_payload"]["alert_ids"] == [v.alert_id for v in views]


def test_digest_of_many_alerts_stays_within_slack_limits() -> None:
    views = [alert_view(threshold_alert(team=f"team-{i:03d}"), NOW) for i in range(120)]
    message = digest_message(views)
    assert len(message.blocks) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in message.blocks if b["type"] == "section")
    assert "…and 80 more" in json.dumps(message.blocks, ensure_ascii=False)
    assert len(message.alert_ids) == 120


def test_mrkdwn_control_characters_are_escaped() -> None:
    alert = threshold_alert().model_copy(update={"budget": "a<b>&c"})
    blocks = alert_message(alert_view(alert, NOW)).blocks
    mrkdwn = json.dumps([b for b in blocks if b["type"] != "header"])
    assert "a&lt;b&gt;&amp;c" in mrkdwn and "a<b>" not in mrkdwn
    assert "a<b>&c" in blocks[0]["text"]["text"]  # plain_text shows characters as they are


def test_email_mime_is_multipart_with_a_deterministic_message_id() -> None:
    content = alert_email(alert_view(threshold_alert(), NOW))
    message = build_email(content, sender="costs@example.org", recipients=["a@x.org", "b@y.org"], sent_at=NOW)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Message-ID"] == message_id_for((threshold_alert().alert_id,), "costs@example.org")
    assert message["Message-ID"].endswith("@example.org>")
    assert message["To"] == "a@x.org, b@y.org"
    again = build_email(content, sender="costs@example.org", recipients=["a@x.org"], sent_at=NOW + timedelta(hours=1))
    assert again["Message-ID"] == message["Message-ID"]


def test_dashboard_template_with_unknown_placeholder_says_which() -> None:
    with pytest.raises(AlertConfigError, match="unknown placeholder.*'org'"):
        alert_view(threshold_alert(), NOW, "https://x/{org}")


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("0", "$0.00"),
        ("0.0042", "$0.0042"),
        ("0.005", "$0.0050"),
        ("0.015", "$0.02"),
        ("1234.565", "$1,234.57"),
        ("1e6", "$1,000,000.00"),
    ],
)
def test_format_usd(amount: str, text: str) -> None:
    assert format_usd(Decimal(amount)) == text


@pytest.mark.parametrize(
    ("percent", "bar", "text"),
    [("0", "░" * 10, "0%"), ("49.99", "████░░░░░░", "50%"), ("100", "█" * 10, "100%"), ("250.04", "█" * 10, "250%")],
)
def test_percent_bar_and_text(percent: str, bar: str, text: str) -> None:
    assert percent_bar(Decimal(percent)) == bar
    assert format_percent(Decimal(percent)) == text


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=3, hours=5), "in 3 days"),
        (timedelta(days=2, hours=13), "in 3 days"),
        (timedelta(hours=30), "in 30 hours"),
        (timedelta(hours=1), "in 60 minutes"),
        (timedelta(minutes=1), "in 1 minute"),
        (timedelta(seconds=-5), "now"),
    ],
)
def test_humanize_until(delta: timedelta, text: str) -> None:
    assert humanize_until(NOW + delta, NOW) == text
