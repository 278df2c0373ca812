"""The generic webhook channel: signed JSON (Standard Webhooks) POSTed to `alerts.webhook_url`.

Every attempt is signed afresh (a new `webhook-timestamp`), with the same `webhook-id`, so a
receiver that de-duplicates on the id (as the scheme asks) sees one message however many retries it
took. A receiver cannot be asked afterwards what it got: `lookup` answers "unknown" and the
delivery loop applies `alerts.resend_unconfirmed`. The URL and the secret are never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from meterline.alerts.channel import UNKNOWN_OUTCOME, Lookup
from meterline.alerts.classify import http_failure
from meterline.alerts.destinations import Destination
from meterline.alerts.errors import PermanentDeliveryError
from meterline.alerts.http_post import HttpPoster
from meterline.alerts.view import AlertView
from meterline.alerts.webhook_render import message_id, signed_headers, signing_key, webhook_body
from meterline.settings import AlertSettings


class WebhookChannel:
    """POST each alert (or digest) as one signed JSON message."""

    name = "webhook"

    def __init__(self, alerts: AlertSettings, now: Callable[[], datetime]) -> None:
        self._alerts = alerts
        self._now = now
        self._http = HttpPoster("webhook", alerts.send_timeout_seconds)

    async def send(self, destination: Destination, views: list[AlertView]) -> str:
        url, secret = self._alerts.webhook_url, self._alerts.webhook_secret
        if url is None or secret is None:
            raise PermanentDeliveryError(
                "webhook",
                "set alerts.webhook_url and alerts.webhook_secret (METERLINE_ALERTS__WEBHOOK_URL, ..._SECRET)",
            )
        key = signing_key(secret.get_secret_value())
        now = self._now()
        body = webhook_body(views, now)
        msg_id = message_id([view.alert_id for view in views])
        answer = await self._http.post(
            url.get_secret_value(), body, signed_headers(key, msg_id, int(now.timestamp()), body)
        )
        if 200 <= answer.status < 300:
            return msg_id
        raise http_failure("webhook", answer.status, answer.retry_after)

    async def lookup(self, destination: Destination, alert_id: str, since: datetime) -> Lookup:
        return UNKNOWN_OUTCOME

    async def aclose(self) -> None:
        await self._http.aclose()
