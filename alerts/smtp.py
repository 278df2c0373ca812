"""The email channel: SMTP with STARTTLS or implicit TLS, login, multipart text and HTML.

smtplib runs in a worker thread (one connection per send) so a slow mail server never blocks the
event loop. SMTP cannot tell afterwards whether a message was delivered: `lookup` answers
"unknown" and the delivery loop applies `alerts.resend_unconfirmed`.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage

from meterline.alerts.channel import UNKNOWN_OUTCOME, Lookup
from meterline.alerts.classify import smtp_failure
from meterline.alerts.destinations import Destination, email_recipients
from meterline.alerts.email_render import alert_email, build_email, digest_email
from meterline.alerts.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from meterline.alerts.view import AlertView
from meterline.settings import AlertSettings

log = logging.getLogger(__name__)


class EmailChannel:
    """Send alerts as email through the configured SMTP server."""

    name = "email"

    def __init__(self, alerts: AlertSettings, now: Callable[[], datetime]) -> None:
        self._alerts = alerts
        self._now = now

    def _tls_context(self) -> ssl.SSLContext:
        ca_file = self._alerts.smtp_ca_file
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    async def send(self, destination: Destination, views: list[AlertView]) -> str:
        content = alert_email(views[0]) if len(views) == 1 else digest_email(views)
        recipients = email_recipients(destination.target)
        message = build_email(content, sender=self._alerts.smtp_sender, recipients=recipients, sent_at=self._now())
        await asyncio.to_thread(self._send_blocking, message, recipients)
        return str(message["Message-ID"])

    def _send_blocking(self, message: EmailMessage, recipients: list[str]) -> None:
        alerts = self._alerts
        try:
            if alerts.smtp_security == "tls":
                server: smtplib.SMTP = smtplib.SMTP_SSL(
                    alerts.smtp_host, alerts.smtp_port, timeout=alerts.send_timeout_seconds, context=self._tls_context()
                )
            else:
                server = smtplib.SMTP(alerts.smtp_host, alerts.smtp_port, timeout=alerts.send_timeout_seconds)
            with server:
                if alerts.smtp_security == "starttls":
                    server.starttls(context=self._tls_context())
                if alerts.smtp_username:
                    password = alerts.smtp_password.get_secret_value() if alerts.smtp_password else ""
                    server.login(alerts.smtp_username, password)
                refused = server.send_message(message, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _refused(exc.recipients) from exc
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            raise smtp_failure(exc.smtp_code, text.splitlines()[0] if text else "") from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentDeliveryError("email", f"{exc}: check alerts.smtp_security") from exc
        except ssl.SSLCertVerificationError as exc:
            raise PermanentDeliveryError(
                "email", f"TLS certificate not trusted ({exc.verify_message}): set alerts.smtp_ca_file"
            ) from exc
        except ConnectionRefusedError as exc:
            raise TransientDeliveryError(
                "email", f"connection refused by {alerts.smtp_host}:{alerts.smtp_port}"
            ) from exc
        except (TimeoutError, smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            # Cut off mid-conversation: the server may have accepted the message already.
            raise TransientDeliveryError("email", f"network: {_first_line(exc)}", maybe_sent=True) from exc
        if refused:
            # Others accepted it: retrying would send them a second copy.
            log.warning(
                "email %s accepted, but some recipients were refused: %s", message["Message-ID"], sorted(refused)
            )

    async def lookup(self, destination: Destination, alert_id: str, since: datetime) -> Lookup:
        return UNKNOWN_OUTCOME

    async def aclose(self) -> None:
        return None


def _refused(recipients: dict[str, tuple[int, bytes]]) -> DeliveryError:
    """Some recipients refused: transient only when every refusal is a 4xx."""
    codes = [code for code, _ in recipients.values()]
    worst = max(codes) if codes else 550
    listed = ", ".join(sorted(recipients))
    return smtp_failure(worst, f"recipients refused: {listed}")


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
