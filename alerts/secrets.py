"""Fill the alert secrets (Slack token and webhook URL, SMTP password, webhook URL and secret, PagerDuty key) from `alerts.secrets_file`.

Secrets come only from the environment (`METERLINE_ALERTS__SLACK_TOKEN`, ...) or this TOML
file; a value set in the environment wins over the file. Values stay `SecretStr` and are never
logged or put in an error message.
"""

from __future__ import annotations

import logging
import stat
import tomllib

from pydantic import SecretStr

from meterline.alerts.errors import AlertConfigError
from meterline.settings import AlertSettings

SECRET_KEYS = (
    "slack_token",
    "slack_webhook_url",
    "smtp_password",
    "webhook_url",
    "webhook_secret",
    "pagerduty_routing_key",
)

log = logging.getLogger(__name__)


def with_secrets(alerts: AlertSettings) -> AlertSettings:
    """`alerts` with missing secrets filled from its secrets file (unchanged when none is set)."""
    path = alerts.secrets_file
    if path is None:
        return alerts
    try:
        mode = path.stat().st_mode
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AlertConfigError(
            f"alerts.secrets_file {path} does not exist: create it or unset alerts.secrets_file"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        # tomllib's messages give a position, never the text: safe to show.
        raise AlertConfigError(f"alerts.secrets_file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(SECRET_KEYS))
    if unknown:
        raise AlertConfigError(f"alerts.secrets_file {path} has unknown keys {unknown}; allowed: {list(SECRET_KEYS)}")
    not_text = sorted(key for key, value in data.items() if not isinstance(value, str) or not value)
    if not_text:
        raise AlertConfigError(f"alerts.secrets_file {path}: {not_text} must be non-empty strings")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("alerts.secrets_file %s is readable by other users; chmod 600 it", path)
    update = {key: SecretStr(data[key]) for key in SECRET_KEYS if key in data and getattr(alerts, key) is None}
    return alerts.model_copy(update=update)
