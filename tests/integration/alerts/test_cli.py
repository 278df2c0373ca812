"""`meterline alerts test` and `meterline alerts list` against real servers and chDB."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterline.alerts.destinations import Destination
from meterline.alerts.store import DeliveryLog, delivery_record
from meterline.alerts.webhook_render import signature, signing_key
from meterline.cli import app
from meterline.services.kafka_local import find_free_port
from meterline.sinks.client import open_client
from meterline.sinks.migrations import apply_migrations
from tests.support.http_double import Answer, HttpDouble
from tests.support.slack_server import FakeSlack, Scripted
from tests.support.smtp import SmtpServer
from tests.unit.alerts.samples import forecast_alert, threshold_alert

pytestmark = pytest.mark.integration


def run(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    env = {"METERLINE_DATA_DIR": str(tmp_path), "COLUMNS": "250", **env}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_alerts_test_slack_posts_and_reports(tmp_path: Path, fake_slack: FakeSlack) -> None:
    code, output = run(
        tmp_path,
        "alerts",
        "test",
        "--channel",
        "slack",
        "--target",
        "#ops",
        METERLINE_ALERTS__SLACK_TOKEN="xoxb-cli-token",
        METERLINE_ALERTS__SLACK_BASE_URL=fake_slack.base_url,
    )
    assert code == 0, output
    assert "delivered to slack:#ops after 1 attempt(s)" in output
    (call,) = fake_slack.calls("chat.postMessage")
    assert call.args["channel"] == "#ops" and "meterline/test crossed 80%" in call.args["text"]
    assert "xoxb-cli-token" not in output


def test_alerts_test_reports_a_permanent_failure_with_exit_1(tmp_path: Path, fake_slack: FakeSlack) -> None:
    fake_slack.plan("chat.postMessage", Scripted(200, {"ok": False, "error": "channel_not_found"}))
    code, output = run(
        tmp_path,
        "alerts",
        "test",
        "--channel",
        "slack",
        METERLINE_ALERTS__SLACK_TOKEN="xoxb-cli-token",
        METERLINE_ALERTS__SLACK_BASE_URL=fake_slack.base_url,
    )
    assert code == 1
    assert "slack:#meterline-alerts: not delivered after 1 attempt(s): channel_not_found" in " ".join(output.split())


def test_alerts_test_email_uses_the_secrets_file(
    tmp_path: Path, smtp_factory: Callable[..., SmtpServer], tls_ca
) -> None:
    from tests.support.smtp import SMTP_PASSWORD, SMTP_USER

    ca_file, context = tls_ca
    server = smtp_factory(starttls=context, auth=True)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'smtp_password = "{SMTP_PASSWORD}"\n')
    secrets.chmod(0o600)
    code, output = run(
        tmp_path,
        "alerts",
        "test",
        "--channel",
        "email",
        METERLINE_ALERTS__SMTP_PORT=str(server.port),
        METERLINE_ALERTS__SMTP_SECURITY="starttls",
        METERLINE_ALERTS__SMTP_CA_FILE=str(ca_file),
        METERLINE_ALERTS__SMTP_USERNAME=SMTP_USER,
        METERLINE_ALERTS__SECRETS_FILE=str(secrets),
        METERLINE_ALERTS__SMTP_DEFAULT_RECIPIENTS='["oncall@example.org"]',
    )
    assert code == 0, output
    assert server.messages[0].rcpt_tos == ["oncall@example.org"] and server.logins
    assert SMTP_PASSWORD not in output


def test_alerts_test_with_nobody_listening_fails_after_retries(tmp_path: Path) -> None:
    code, output = run(
        tmp_path,
        "alerts",
        "test",
        "--channel",
        "email",
        "--target",
        "a@example.org",
        METERLINE_ALERTS__SMTP_PORT=str(find_free_port()),
        METERLINE_ALERTS__RETRY_DEADLINE_SECONDS="0.5",
        METERLINE_ALERTS__RETRY_INITIAL_SECONDS="0.05",
    )
    assert code == 1 and "connection refused" in output and "retry deadline reached" in output


def test_alerts_list_shows_recent_deliveries(tmp_path: Path, chdb_dsn: str) -> None:
    client = open_client(chdb_dsn)
    try:
        apply_migrations(client)
        now = datetime.now(UTC)
        DeliveryLog(client).write(
            [
                delivery_record(
                    threshold_alert(), Destination("slack", "#costs"), "sent", now, attempts=1, external_id="C1/1.2"
                ),
                delivery_record(
                    forecast_alert(),
                    Destination("email", "a@example.org"),
                    "failed",
                    now,
                    attempts=3,
                    reason="SMTP 554 no",
                ),
            ]
        )
    finally:
        client.close()
    code, output = run(tmp_path, "alerts", "list", "--since", "1h", METERLINE_CLICKHOUSE_DSN=chdb_dsn)
    assert code == 0, output
    assert "platform/monthly/2026-11/threshold/80" in output and "SMTP 554 no" in output
    assert "sent" in output and "failed" in output
    code, output = run(tmp_path, "alerts", "list", "--since", "soon", METERLINE_CLICKHOUSE_DSN=chdb_dsn)
    assert code == 1 and "not a duration" in output


def test_alerts_test_webhook_posts_a_signed_message(tmp_path: Path, webhook_receiver: HttpDouble) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    code, output = run(
        tmp_path,
        "alerts",
        "test",
        "--channel",
        "webhook",
        METERLINE_ALERTS__WEBHOOK_URL=webhook_receiver.url("/in?token=t0k3n"),
        METERLINE_ALERTS__WEBHOOK_SECRET=secret,
    )
    assert code == 0, output
    assert f"delivered to webhook:{webhook_receiver.url('')} after 1 attempt(s)" in " ".join(output.split())
    (received,) = webhook_receiver.requests
    expected = signature(
        signing_key(secret), received.headers["webhook-id"], int(received.headers["webhook-timestamp"]), received.body
    )
    assert received.headers["webhook-signature"] == expected
    assert "t0k3n" not in output and "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in output


def test_alerts_test_pagerduty_triggers_and_a_bad_key_exits_1(tmp_path: Path, fake_pagerduty: HttpDouble) -> None:
    env = {
        "METERLINE_ALERTS__PAGERDUTY_ROUTING_KEY": "R" * 32,
        "METERLINE_ALERTS__PAGERDUTY_EVENTS_URL": fake_pagerduty.url("/v2/enqueue"),
    }
    code, output = run(tmp_path, "alerts", "test", "--channel", "pagerduty", **env)
    assert code == 0, output
    assert "delivered to pagerduty:events-v2 after 1 attempt(s)" in output
    (event,) = [r.json() for r in fake_pagerduty.requests]
    assert event["event_action"] == "trigger" and event["dedup_key"].startswith("meterline/test/test-")
    fake_pagerduty.plan(Answer(400, {"status": "invalid event", "message": "Event object is invalid"}))
    code, output = run(tmp_path, "alerts", "test", "--channel", "pagerduty", **env)
    assert code == 1 and "Event object is invalid" in " ".join(output.split()) and "R" * 32 not in output
    code, output = run(tmp_path, "alerts", "test", "--channel", "pagerduty")
    assert code == 1 and "PAGERDUTY_ROUTING_KEY" in " ".join(output.split())
