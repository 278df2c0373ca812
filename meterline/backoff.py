"""Exponential backoff, the one implementation every retry loop uses. Pure.

The random source is injected so tests (and replays) see the same delays.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Delays that double from `first_seconds` up to `max_seconds`.

    `jitter` is the share of each delay drawn at random (0: none; 0.5: half fixed, half random),
    so that many clients failing together do not retry together.
    """

    first_seconds: float
    max_seconds: float
    jitter: float = 0.0
    rng: Callable[[], float] = field(default=random.random, compare=False)
    """Returns a float in [0, 1)."""

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        # The exponent is capped so a long outage cannot overflow the float.
        ceiling = float(min(self.max_seconds, self.first_seconds * 2 ** min(max(attempt, 1) - 1, 60)))
        if not self.jitter:
            return ceiling
        return ceiling * (1 - self.jitter) + self.rng() * ceiling * self.jitter
