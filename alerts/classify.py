"""Which failures are worth retrying. Pure: the adapters pass in status codes and error names.

Transient: HTTP 429 (with Retry-After), 408 and 5xx, Slack's own "try later" errors, SMTP 4xx.
Permanent: everything else Slack answers `ok: false` to (invalid_auth, channel_not_found, ...),
other HTTP 3xx/4xx, SMTP 5xx. Network failures (timeouts, refused connections) are transient and
are classified by the adapters.
"""

from __future__ import annotations

from meterline.alerts.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError

SLACK_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
SLACK_FIX_HINTS = {
    "invalid_auth": "the Slack token is wrong: check METERLINE_ALERTS__SLACK_TOKEN",
    "not_authed": "no Slack token was sent: set METERLINE_ALERTS__SLACK_TOKEN",
    "token_revoked": "the Slack token was revoked: issue a new bot token",
    "account_inactive": "the Slack app's account is inactive: reinstall the app",
    "channel_not_found": "the Slack channel does not exist or the bot cannot see it: fix the route's target",
    "not_in_channel": "invite the bot to the channel (/invite @meterline)",
    "is_archived": "the Slack channel is archived: route alerts elsewhere",
    "missing_scope": "add the chat:write scope to the Slack app and reinstall it",
    "invalid_token": "the incoming-webhook URL is no longer valid: create a new webhook",
    "no_service": "the incoming webhook was removed: create a new webhook",
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form); None when absent or unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)


def slack_failure(
    status: int | None, error: str | None, retry_after: str | None, channel: str = "slack"
) -> DeliveryError:
    """The delivery error for a Slack answer: HTTP status, Slack `error`, Retry-After header."""
    name = error or (f"HTTP {status}" if status else "no answer")
    if status == 429 or error in {"ratelimited", "rate_limited"}:
        return TransientDeliveryError(channel, f"rate limited ({name})", parse_retry_after(retry_after))
    if (status is not None and status >= 500) or error in SLACK_TRANSIENT_ERRORS or status == 408:
        # A 5xx may come after Slack posted the message: the attempt's outcome is unknown.
        return TransientDeliveryError(
            channel,
            f"Slack is unavailable ({name})",
            parse_retry_after(retry_after),
            maybe_sent=status is not None and status >= 500,
        )
    hint = SLACK_FIX_HINTS.get(error or "")
    return PermanentDeliveryError(channel, f"{name}: {hint}" if hint else name)


def smtp_failure(code: int, message: str) -> DeliveryError:
    """The delivery error for an SMTP reply code: 4xx transient, anything else permanent."""
    reason = f"SMTP {code} {message}".strip()
    if 400 <= code < 500:
        return TransientDeliveryError("email", reason)
    if code in {530, 534, 535, 538}:
        reason += " (check alerts.smtp_username and METERLINE_ALERTS__SMTP_PASSWORD)"
    return PermanentDeliveryError("email", reason)


def http_failure(channel: str, status: int, retry_after: str | None, detail: str = "") -> DeliveryError:
    """The delivery error for a plain HTTP answer (webhook, PagerDuty): 429/408/5xx transient.

    A 5xx may come after the receiver acted on the request, so its outcome is unknown.
    """
    name = f"HTTP {status}" + (f" ({detail})" if detail else "")
    if status == 429:
        return TransientDeliveryError(channel, f"rate limited ({name})", parse_retry_after(retry_after))
    if status == 408 or status >= 500:
        return TransientDeliveryError(
            channel, f"unavailable ({name})", parse_retry_after(retry_after), maybe_sent=status >= 500
        )
    if 300 <= status < 400:
        return PermanentDeliveryError(channel, f"{name}: redirects are not followed; configure the final URL")
    if status in {401, 403}:
        return PermanentDeliveryError(
            channel, f"{name}: the receiver refused our credentials; check the {channel} secret"
        )
    return PermanentDeliveryError(channel, name)
