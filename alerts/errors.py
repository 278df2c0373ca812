"""Errors of meterline.alerts: configuration problems and the two kinds of delivery failure."""

from __future__ import annotations

from meterline.errors import MeterlineError


class AlertConfigError(MeterlineError):
    """Alert routes, secrets or channel settings are wrong; the message names what to fix."""


class DeliveryError(MeterlineError):
    """A send failed. `retryable` says whether trying again can help; `reason` is loggable."""

    retryable: bool = False

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"{channel} delivery failed: {reason}")
        self.channel = channel
        self.reason = reason


class TransientDeliveryError(DeliveryError):
    """Worth retrying (429, 5xx, timeout, refused connection, SMTP 4xx); honours `retry_after`."""

    retryable = True

    def __init__(
        self, channel: str, reason: str, retry_after: float | None = None, *, maybe_sent: bool = False
    ) -> None:
        super().__init__(channel, reason)
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent
        """True when the message may have arrived anyway (a timeout, a 5xx after the request)."""


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (invalid_auth, channel_not_found, SMTP 5xx): fix the configuration."""
