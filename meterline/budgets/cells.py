"""SpendCell: what one budget spent in one bucket (a calendar period or a rolling minute)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)


@dataclass(slots=True)
class SpendCell:
    """Spend, event counts and spend per model of one budget in one bucket.

    `budget` (`team/name`) and `bucket` (period key or `m<minute>`) travel with the cell so the
    state can be rebuilt from a table's values alone.
    """

    budget: str
    bucket: str
    spend: Decimal = ZERO
    events: int = 0
    unpriced: int = 0
    latest: datetime | None = None
    """Latest `occurred_at` added: the forecast's notion of "now" (event time, replay-stable)."""
    models: dict[str, Decimal] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return cell_key(self.budget, self.bucket)

    def add(self, cost: Decimal, *, priced: bool, provider: str, model: str, occurred_at: datetime) -> None:
        """Count one event."""
        self.events += 1
        if not priced:
            self.unpriced += 1
        if cost:
            self.spend += cost
            name = f"{provider}/{model}"
            self.models[name] = self.models.get(name, ZERO) + cost
        if self.latest is None or occurred_at > self.latest:
            self.latest = occurred_at

    def correct(self, delta: Decimal, *, unpriced_delta: int, provider: str, model: str) -> None:
        """Change the spend of an event counted before (a re-price): no new event, no new latest."""
        self.unpriced += unpriced_delta
        if delta:
            self.spend += delta
            name = f"{provider}/{model}"
            self.models[name] = self.models.get(name, ZERO) + delta

    def to_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "bucket": self.bucket,
            "spend": str(self.spend),
            "events": self.events,
            "unpriced": self.unpriced,
            "latest": self.latest.isoformat() if self.latest else None,
            "models": {name: str(value) for name, value in self.models.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpendCell:
        return cls(
            budget=data["budget"],
            bucket=data["bucket"],
            spend=Decimal(data["spend"]),
            events=int(data["events"]),
            unpriced=int(data["unpriced"]),
            latest=datetime.fromisoformat(data["latest"]) if data.get("latest") else None,
            models={name: Decimal(value) for name, value in data.get("models", {}).items()},
        )


def cell_key(budget: str, bucket: str) -> str:
    """Table key of a cell: `team/name|bucket`."""
    return f"{budget}|{bucket}"


def minute_bucket(minute: int) -> str:
    return f"m{minute}"


def bucket_minute(bucket: str) -> int | None:
    """The minute of a rolling bucket (`m29371234`), None for a calendar period key."""
    return int(bucket[1:]) if bucket.startswith("m") and bucket[1:].isdigit() else None
