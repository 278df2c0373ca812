"""What `emit()` returns, and the producer's counters."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from meterline.events import UsageEvent

Outcome = Literal["pending", "sent", "spooled", "failed"]

PENDING: Outcome = "pending"
SENT: Outcome = "sent"
SPOOLED: Outcome = "spooled"
FAILED: Outcome = "failed"


class EmitHandle:
    """One emitted event: `outcome` becomes sent, spooled (replayed later) or failed."""

    __slots__ = ("event", "outcome", "_resolved")

    def __init__(self, event: UsageEvent, resolved: threading.Condition) -> None:
        self.event = event
        self.outcome: Outcome = PENDING
        self._resolved = resolved

    @property
    def event_id(self) -> str:
        return self.event.event_id

    def done(self) -> bool:
        """True once Kafka acknowledged the event, or it is in the spool, or it failed."""
        return self.outcome != PENDING

    def wait(self, timeout: float | None = None) -> Outcome:
        """Block until done (or `timeout` seconds); return the outcome."""
        with self._resolved:
            self._resolved.wait_for(self.done, timeout)
        return self.outcome

    def __repr__(self) -> str:
        return f"EmitHandle(event_id={self.event_id!r}, outcome={self.outcome!r})"


class FlushBarrier:
    """Queued by flush(): done once every event emitted before it is resolved."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False


@dataclass(frozen=True, slots=True)
class ProducerCounters:
    """A snapshot of what the producer did with the events it was given.

    - `sent`: acknowledged by Kafka on the first try.
    - `spooled`: written to the offline spool (broker away, buffer full, delivery failed).
    - `replayed`: sent from the spool and acknowledged by Kafka (includes spools of crashed
      processes this producer adopted).
    - `failed`: neither delivered nor spooled (the spool itself could not be written).
    """

    emitted: int
    sent: int
    spooled: int
    replayed: int
    failed: int
    spool_pending_bytes: int
