"""Email over real SMTP (aiosmtpd on loopback): plain, STARTTLS + AUTH, implicit TLS, failures."""

from __future__ import annotations

import asyncio
import email
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from meterline.alerts.delivery import send_with_retries
from meterline.alerts.destinations import Destination
from meterline.alerts.email_render import message_id_for
from meterline.alerts.errors import PermanentDeliveryError, TransientDeliveryError
from meterline.alerts.retry import RetryPolicy
from meterline.alerts.smtp import EmailChannel
from meterline.alerts.view import alert_view
from meterline.services.kafka_local import find_free_port
from meterline.settings import AlertSettings
from tests.support.smtp import SMTP_PASSWORD, SMTP_USER, SmtpServer
from tests.unit.alerts.samples import NOW, forecast_alert, threshold_alert

pytestmark = pytest.mark.integration

TO = Destination("email", "lead@example.org,ops@example.org")
FAST = RetryPolicy(initial_seconds=0.05, max_seconds=0.1, deadline_seconds=5, rng=lambda: 0.5)


def channel(port: int, **alerts: Any) -> EmailChannel:
    settings = AlertSettings(smtp_port=port, smtp_sender="costs@example.org", send_timeout_seconds=5, **alerts)
    return EmailChannel(settings, now=lambda: NOW)


def received(server: SmtpServer, index: int = 0) -> EmailMessage:
    envelope = server.messages[index]
    parsed = email.message_from_bytes(envelope.content, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_plain_smtp_delivers_multipart_text_and_html(smtp_factory: Callable[..., SmtpServer]) -> None:
    server = smtp_factory()
    view = alert_view(threshold_alert(), NOW)
    message_id = asyncio.run(channel(server.port).send(TO, [view]))
    assert len(server.messages) == 1
    envelope = server.messages[0]
    assert envelope.mail_from == "costs@example.org"
    assert envelope.rcpt_tos == ["lead@example.org", "ops@example.org"]
    message = received(server)
    assert (
        message["Subject"]
        == "[meterline] platform/monthly crossed 80% of its monthly budget: $812.40 of $1,000.00 (81.2%)"
    )
    assert message["Message-ID"] == message_id == message_id_for((view.alert_id,), "costs@example.org")
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "Threshold crossed: 80%" in text.get_content() and "Resets in 3 days" in text.get_content()
    assert "<h2" in html.get_content() and "Top models by spend" in html.get_content()


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_starttls_and_login(
    smtp_factory: Callable[..., SmtpServer], tls_ca: tuple[Path, ssl.SSLContext], mechanism: str
) -> None:
    ca_file, context = tls_ca
    other = "PLAIN" if mechanism == "LOGIN" else "LOGIN"
    server = smtp_factory(starttls=context, auth=True, exclude=(other, "CRAM-MD5"))
    sender = channel(
        server.port,
        smtp_security="starttls",
        smtp_ca_file=ca_file,
        smtp_username=SMTP_USER,
        smtp_password=SecretStr(SMTP_PASSWORD),
    )
    asyncio.run(sender.send(TO, [alert_view(forecast_alert(), NOW)]))
    assert server.logins == [mechanism]
    assert received(server)["Subject"].startswith("[meterline] search/daily-cap is forecast to spend $102.86")


def test_implicit_tls_and_login(smtp_factory: Callable[..., SmtpServer], tls_ca: tuple[Path, ssl.SSLContext]) -> None:
    ca_file, context = tls_ca
    server = smtp_factory(implicit_tls=context, auth=True)
    sender = channel(
        server.port,
        smtp_security="tls",
        smtp_ca_file=ca_file,
        smtp_username=SMTP_USER,
        smtp_password=SecretStr(SMTP_PASSWORD),
    )
    asyncio.run(sender.send(TO, [alert_view(threshold_alert(), NOW)]))
    assert len(server.messages) == 1 and server.logins


def test_wrong_password_is_permanent_and_names_the_setting(
    smtp_factory: Callable[..., SmtpServer], tls_ca: tuple[Path, ssl.SSLContext]
) -> None:
    ca_file, context = tls_ca
    server = smtp_factory(starttls=context, auth=True)
    sender = channel(
        server.port,
        smtp_security="starttls",
        smtp_ca_file=ca_file,
        smtp_username=SMTP_USER,
        smtp_password=SecretStr("wrong-pw"),
    )
    with pytest.raises(PermanentDeliveryError, match="535.*METERLINE_ALERTS__SMTP_PASSWORD") as caught:
        asyncio.run(sender.send(TO, [alert_view(threshold_alert(), NOW)]))
    assert "wrong-pw" not in str(caught.value)
    assert server.messages == []


def test_untrusted_certificate_is_permanent(
    smtp_factory: Callable[..., SmtpServer], tls_ca: tuple[Path, ssl.SSLContext]
) -> None:
    server = smtp_factory(starttls=tls_ca[1])
    with pytest.raises(PermanentDeliveryError, match="alerts.smtp_ca_file"):
        asyncio.run(channel(server.port, smtp_security="starttls").send(TO, [alert_view(threshold_alert(), NOW)]))


def test_smtp_4xx_is_retried_then_delivered_once(smtp_factory: Callable[..., SmtpServer]) -> None:
    server = smtp_factory()
    server.replies += ["451 4.3.0 try again later", "421 4.7.0 busy"]
    outcome = asyncio.run(
        send_with_retries(channel(server.port), TO, [alert_view(threshold_alert(), NOW)], FAST, time.monotonic)
    )
    assert outcome.sent and outcome.attempts == 3
    assert len(server.messages) == 1


def test_smtp_5xx_is_not_retried(smtp_factory: Callable[..., SmtpServer]) -> None:
    server = smtp_factory()
    server.replies += ["554 5.7.1 rejected"]
    outcome = asyncio.run(
        send_with_retries(channel(server.port), TO, [alert_view(threshold_alert(), NOW)], FAST, time.monotonic)
    )
    assert not outcome.sent and outcome.attempts == 1
    assert "554" in outcome.reason and server.messages == []


def test_refused_connection_is_transient_and_surely_not_sent() -> None:
    with pytest.raises(TransientDeliveryError, match="connection refused") as caught:
        asyncio.run(channel(find_free_port()).send(TO, [alert_view(threshold_alert(), NOW)]))
    assert caught.value.maybe_sent is False
