"""Retry policy: exponential backoff with full jitter, Retry-After honoured, a deadline. Pure.

The random source is injected so tests (and replays) see the same delays.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from meterline.alerts.errors import DeliveryError, TransientDeliveryError
from meterline.backoff import Backoff
from meterline.settings import AlertSettings


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a failed send again, and when to give up."""

    initial_seconds: float = 1.0
    max_seconds: float = 60.0
    deadline_seconds: float = 300.0
    rng: Callable[[], float] = field(default=random.random, compare=False)
    """Returns a float in [0, 1); jitter spreads retries of many alerts apart."""

    @classmethod
    def from_settings(cls, alerts: AlertSettings, rng: Callable[[], float] = random.random) -> RetryPolicy:
        return cls(alerts.retry_initial_seconds, alerts.retry_max_seconds, alerts.retry_deadline_seconds, rng)

    def backoff(self, attempt: int) -> float:
        """Delay after failed attempt number `attempt` (1-based): half fixed, half jitter."""
        return Backoff(self.initial_seconds, self.max_seconds, jitter=0.5, rng=self.rng).delay(attempt)

    def next_delay(self, error: DeliveryError, attempt: int, elapsed: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up.

        Permanent errors give up at once. A server's Retry-After wins over the backoff (it is
        what the server asked for). Giving up happens when the next attempt would start after the
        deadline, counted from the first attempt.
        """
        if not isinstance(error, TransientDeliveryError):
            return None
        delay = error.retry_after if error.retry_after is not None else self.backoff(attempt)
        if elapsed + delay > self.deadline_seconds:
            return None
        return max(0.0, delay)
