"""Per-destination flood control: a token bucket, and the digest decision. Pure.

Time is passed in (seconds on a monotonic clock), so the bucket is tested without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class TokenBucket:
    """At most `per_minute` messages a minute, refilled smoothly, bursts up to `per_minute`."""

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.tokens = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)

    def wait_time(self, now: float) -> float:
        """Seconds until a message may be sent (0 when one may be sent now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        """Spend one token (call only when wait_time is 0)."""
        self._refill(now)
        self.tokens -= 1


@dataclass(frozen=True)
class SendPlan(Generic[T]):
    """What to send next from a destination's pending alerts: one alert or one digest."""

    items: tuple[T, ...]

    @property
    def is_digest(self) -> bool:
        return len(self.items) > 1


def plan_send(pending: list[T], digest_after: int) -> SendPlan[T]:
    """Send every pending alert as one digest when `digest_after` or more wait, else the oldest.

    Alerts pile up while the destination is rate limited or retrying, so a burst of crossings
    becomes one digest instead of a flood.
    """
    if not pending:
        raise ValueError("nothing pending to plan")
    if len(pending) >= digest_after:
        return SendPlan(tuple(pending))
    return SendPlan((pending[0],))
