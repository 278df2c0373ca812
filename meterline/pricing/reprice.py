"""Re-pricing stored events with the catalog as it is now (pure: no I/O).

`reprice_event` compares one stored usage_events row with what the catalog says today and,
when anything about its price differs, builds the row that replaces it: the same event with
the new price, the run that priced it, and the money of the row it replaces (`previous_*`),
which the rollup's materialized view turns into a delta (sinks migration 0007).
`RepriceTally` adds the outcome up per team x model for the dry-run table and the audit row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from meterline.money import MONEY_FIELDS, MONEY_ZERO
from meterline.pricing.result import PriceResult

if TYPE_CHECKING:
    from meterline.pricing.catalog import PriceCatalog

COMPARED_FIELDS: tuple[str, ...] = ("priced", "price_id", *MONEY_FIELDS)
"""What makes a stored price differ from today's. The price's source (the override file's
path) and an unpriced event's reason are written with a change, but never cause one: moving a
price file does not rewrite history."""
PREVIOUS_FIELDS: tuple[str, ...] = ("previous_priced", *(f"previous_{name}" for name in MONEY_FIELDS))
RUN_FIELDS: tuple[str, ...] = ("reprice_run_id", "repriced_at", *PREVIOUS_FIELDS)
"""The columns a re-priced row adds to the stored row (migration 0007)."""

StoredRow = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RepriceScope:
    """Which stored events a run re-prices: occurred_at in [since, until), optional filters."""

    since: datetime
    until: datetime | None = None
    team: str | None = None
    model: str | None = None
    provider: str | None = None

    def describe(self) -> str:
        parts = [f"since {self.since.isoformat()}"]
        if self.until is not None:
            parts.append(f"until {self.until.isoformat()}")
        parts += [
            f"{name} {value}"
            for name, value in (("team", self.team), ("model", self.model), ("provider", self.provider))
            if value
        ]
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Repriced:
    """One stored event and its new price; `row` is None when nothing about the price changed."""

    team: str
    model: str
    old_cost_usd: Decimal
    new_cost_usd: Decimal
    was_priced: bool
    is_priced: bool
    row: dict[str, Any] | None

    @property
    def changed(self) -> bool:
        return self.row is not None


def price_stored_row(catalog: PriceCatalog, stored: StoredRow) -> PriceResult:
    """What the catalog says today for a stored event, at its occurred_at (overrides included)."""
    return catalog.price(
        provider=stored["provider"],
        model=stored["model"],
        input_tokens=int(stored["input_tokens"]),
        output_tokens=int(stored["output_tokens"]),
        cache_read_tokens=int(stored["cache_read_tokens"]),
        cache_write_tokens=int(stored["cache_write_tokens"]),
        reasoning_tokens=int(stored["reasoning_tokens"]),
        batch=bool(stored["batch"]),
        cache_hit=bool(stored["cache_hit"]),
        at=stored["occurred_at"],
    )


def price_differs(stored: StoredRow, result: PriceResult) -> bool:
    """True when the stored row's price is not what `result` says (money compared exactly)."""
    for name in COMPARED_FIELDS:
        new = getattr(result, name)
        old = stored[name]
        if name in MONEY_FIELDS:
            if Decimal(old) != new:
                return True
        elif old != new:
            return True
    return False


def reprice_event(stored: StoredRow, result: PriceResult, *, run_id: str, now: datetime) -> Repriced:
    """Compare a stored row with its price today; build its replacement when they differ."""
    old_cost = Decimal(stored["cost_usd"])
    row: dict[str, Any] | None = None
    if price_differs(stored, result):
        row = {name: value for name, value in stored.items() if name not in RUN_FIELDS}
        row.update(result.as_fields())
        row["reprice_run_id"] = run_id
        row["repriced_at"] = now
        row["previous_priced"] = bool(stored["priced"])
        for name in MONEY_FIELDS:
            row[f"previous_{name}"] = Decimal(stored[name])
    return Repriced(
        team=str(stored["team"]),
        model=str(stored["model"]),
        old_cost_usd=old_cost,
        new_cost_usd=result.cost_usd if row is not None else old_cost,
        was_priced=bool(stored["priced"]),
        is_priced=result.priced,
        row=row,
    )


@dataclass(slots=True)
class GroupTally:
    """One team x model line of a run: events looked at, changed, and their cost before/after."""

    events: int = 0
    changed: int = 0
    old_cost_usd: Decimal = MONEY_ZERO
    new_cost_usd: Decimal = MONEY_ZERO

    @property
    def delta_usd(self) -> Decimal:
        return self.new_cost_usd - self.old_cost_usd


@dataclass(slots=True)
class RepriceTally:
    """What a run found, per (team, model) and in total."""

    groups: dict[tuple[str, str], GroupTally] = field(default_factory=dict)
    newly_priced: int = 0
    newly_unpriced: int = 0

    def add(self, outcome: Repriced) -> None:
        group = self.groups.setdefault((outcome.team, outcome.model), GroupTally())
        group.events += 1
        group.old_cost_usd += outcome.old_cost_usd
        group.new_cost_usd += outcome.new_cost_usd
        if outcome.changed:
            group.changed += 1
            self.newly_priced += int(outcome.is_priced and not outcome.was_priced)
            self.newly_unpriced += int(outcome.was_priced and not outcome.is_priced)

    def total(self) -> GroupTally:
        total = GroupTally()
        for group in self.groups.values():
            total.events += group.events
            total.changed += group.changed
            total.old_cost_usd += group.old_cost_usd
            total.new_cost_usd += group.new_cost_usd
        return total

    def lines(self) -> list[tuple[str, str, GroupTally]]:
        """(team, model, tally) sorted by team then model."""
        return [(team, model, self.groups[(team, model)]) for team, model in sorted(self.groups)]


def catalog_fingerprint(genai_prices_version: str, override_files: Iterable[tuple[str, bytes]]) -> str:
    """A sha256 naming the catalog: genai-prices' version and each override file's name and bytes."""
    digest = hashlib.sha256(f"genai-prices {genai_prices_version}\n".encode())
    for name, content in override_files:
        digest.update(f"override {name} {len(content)}\n".encode())
        digest.update(content)
    return digest.hexdigest()
