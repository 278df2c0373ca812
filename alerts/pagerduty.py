"""The PagerDuty channel: Events API v2 `trigger` per alert, `resolve` when its period has ended.

PagerDuty answers 202 to an accepted event, 400 to an invalid one (permanent), 429 when the
integration is over its rate (retried, Retry-After honoured when sent) and 5xx when it is away. A
trigger repeated with the same dedup key joins the PagerDuty alert it opened: after a crash the
outcome need not be confirmed, a resend duplicates nothing (`lookup` says "not_sent").
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from meterline.alerts.channel import Lookup
from meterline.alerts.classify import http_failure
from meterline.alerts.destinations import Destination
from meterline.alerts.errors import PermanentDeliveryError
from meterline.alerts.http_post import HttpAnswer, HttpPoster
from meterline.alerts.pagerduty_render import dedup_key, resolve_event, trigger_event
from meterline.alerts.view import AlertView
from meterline.settings import AlertSettings

RESEND_IS_SAFE = Lookup("not_sent", why="PagerDuty de-duplicates a re-sent trigger by its dedup key")


class PagerDutyChannel:
    """Send alerts to one PagerDuty service through its Events API v2 integration key."""

    name = "pagerduty"

    def __init__(self, alerts: AlertSettings) -> None:
        self._alerts = alerts
        self._http = HttpPoster("pagerduty", alerts.send_timeout_seconds)

    def _routing_key(self) -> str:
        if self._alerts.pagerduty_routing_key is None:
            raise PermanentDeliveryError(
                "pagerduty", "set METERLINE_ALERTS__PAGERDUTY_ROUTING_KEY (the integration key)"
            )
        return self._alerts.pagerduty_routing_key.get_secret_value()

    async def send(self, destination: Destination, views: list[AlertView]) -> str:
        """Trigger one PagerDuty alert per view (a digest too: each alert has its own incident)."""
        key = self._routing_key()
        for view in views:
            await self._post(trigger_event(view, key))
        return ",".join(dedup_key(view.alert_id) for view in views)

    async def resolve(self, destination: Destination, alert_id: str) -> None:
        """Resolve the incident `alert_id` opened; resolving one already resolved is a no-op at PagerDuty."""
        await self._post(resolve_event(alert_id, self._routing_key()))

    async def _post(self, event: dict[str, Any]) -> None:
        body = json.dumps(event).encode()
        answer = await self._http.post(self._alerts.pagerduty_events_url, body, {"content-type": "application/json"})
        if answer.status == 202 or 200 <= answer.status < 300:
            return
        detail = _detail(answer).replace(str(event["routing_key"]), "<routing key>")
        raise http_failure("pagerduty", answer.status, answer.retry_after, detail)

    async def lookup(self, destination: Destination, alert_id: str, since: datetime) -> Lookup:
        return RESEND_IS_SAFE

    async def aclose(self) -> None:
        await self._http.aclose()


def _detail(answer: HttpAnswer) -> str:
    """PagerDuty's `message` and `errors` of a refused event (they describe the event, not the key)."""
    try:
        data = json.loads(answer.body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [str(data.get("message") or "")] + [
        str(error) for error in data.get("errors") or [] if isinstance(error, str)
    ]
    return "; ".join(part for part in parts if part)[:300]
