"""The generic webhook's message: a JSON body and its Standard Webhooks signature headers. Pure.

Standard Webhooks (https://www.standardwebhooks.com): `webhook-id` names the message and stays
the same on every retry (receivers de-duplicate on it), `webhook-timestamp` is the attempt's Unix
time in seconds, and `webhook-signature` is `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
keyed with the base64-decoded part of a `whsec_<base64>` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from meterline.alerts.errors import AlertConfigError
from meterline.alerts.view import AlertView

SECRET_PREFIX = "whsec_"
EVENT_TYPE = "meterline.budget_alert"
DIGEST_EVENT_TYPE = "meterline.budget_alert.digest"


def signing_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret; AlertConfigError (never showing it) otherwise."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise AlertConfigError(
            "alerts.webhook_secret is not a Standard Webhooks secret: use whsec_ followed by base64, "
            "e.g. the output of: python -c \"import base64,os; print('whsec_' + base64.b64encode(os.urandom(32)).decode())\""
        )
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one attempt."""
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def message_id(alert_ids: list[str]) -> str:
    """The same alert (or digest of alerts) always gets the same `webhook-id`."""
    return "msg_" + hashlib.sha256("\n".join(alert_ids).encode()).hexdigest()[:32]


def signed_headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, message_id, timestamp, body),
    }


def _alert(view: AlertView) -> dict[str, Any]:
    facts = dict(view.facts)
    return {
        "alert_id": view.alert_id,
        "kind": view.kind,
        "team": facts.get("Team", ""),
        "budget": facts.get("Budget", ""),
        "title": view.title,
        "summary": view.summary,
        "percent": f"{view.percent_value:f}",
        "facts": facts,
        "top_models": [{"model": model, "spend": spend} for model, spend in view.top_models],
        "notes": list(view.notes),
        "footer": list(view.footer),
        "link": view.link,
    }


def webhook_body(views: list[AlertView], sent_at: datetime) -> bytes:
    """`{"type", "timestamp", "data": {"alerts": [...]}}`, the envelope Standard Webhooks suggests."""
    envelope = {
        "type": EVENT_TYPE if len(views) == 1 else DIGEST_EVENT_TYPE,
        "timestamp": sent_at.isoformat(),
        "data": {"alerts": [_alert(view) for view in views]},
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
