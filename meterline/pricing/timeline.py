"""A model's effective-dated prices, read from genai-prices' data model.

genai-prices holds a model's prices as one `ModelPrice` or a list of `ConditionalPrice`s, each
with a start-date or a daily time-window constraint; `ModelInfo.get_prices` picks the active one.
This module turns each of them into a `PriceEntry` and, for one UTC day, answers which entry
applies (a time-window model can change price during the day: `DayWindows`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Final

from genai_prices import types as gp

from meterline.pricing.entry import NO_TIER, Band, PriceEntry

BATCH_CONTEXT: Final = {"processing": "batch"}
"""genai-prices' price-variant context for batch API calls."""
TOKEN_PRICE_KEYS: Final = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok", "output_reasoning_mtok")
SECONDS_PER_DAY: Final = 86_400
PROVIDER_BATCH_PRICE: Final = "provider batch price"
"""The batch rule of an entry whose batch bands are the provider's own batch price variant."""

EntryNamer = Callable[[int, gp.ConditionalPrice | None], tuple[str, str]]
"""(index of the conditional price, the price) -> (price_id, source)."""
BatchMultiplier = Callable[[int], Decimal]
"""(index of the conditional price) -> its batch multiplier (when there is no batch variant)."""


@dataclass(frozen=True, slots=True)
class DayWindows:
    """The entries of one UTC day for a model whose price follows the time of day."""

    day_start: float
    """POSIX seconds of the day's 00:00 UTC."""
    starts: tuple[int, ...]
    """Second of the day each entry starts at (first is 0)."""
    entries: tuple[PriceEntry, ...]

    def pick(self, timestamp: float) -> PriceEntry:
        """The entry in force at `timestamp` (POSIX seconds within this day)."""
        return self.entries[bisect_right(self.starts, int(timestamp - self.day_start)) - 1]


DayPrice = PriceEntry | DayWindows


def _value_at(value: Decimal | gp.TieredPrices | None, above: int) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    price = value.base
    for tier in value.tiers:
        if above >= tier.start:
            price = tier.price
    return price


def _or(value: Decimal | None, default: Decimal) -> Decimal:
    return default if value is None else value


def bands_of(prices: gp.ModelPrice) -> tuple[Band, ...] | None:
    """A genai-prices `ModelPrice` as bands, or None when it has no per-token price at all.

    Missing cache rates bill as input (genai-prices then leaves cached tokens inside input);
    a missing output rate is zero, as genai-prices computes it.
    """
    values = {key: getattr(prices, key, None) for key in TOKEN_PRICE_KEYS}
    if values["input_mtok"] is None and values["output_mtok"] is None:
        return None
    thresholds = sorted(
        {tier.start for value in values.values() if isinstance(value, gp.TieredPrices) for tier in value.tiers}
    )
    bands = []
    for above in (NO_TIER, *thresholds):
        input_rate = _or(_value_at(values["input_mtok"], above), Decimal(0))
        bands.append(
            Band(
                above_input_tokens=above,
                input=input_rate,
                cache_read=_or(_value_at(values["cache_read_mtok"], above), input_rate),
                cache_write=_or(_value_at(values["cache_write_mtok"], above), input_rate),
                output=_or(_value_at(values["output_mtok"], above), Decimal(0)),
                reasoning=_value_at(values["output_reasoning_mtok"], above),
            )
        )
    return tuple(bands)


def utc_time_of_day(value: time) -> time:
    """`value` as a UTC-aware time of day, naive times being UTC: genai-prices' rule for its
    time-of-day constraints (tests/unit/pricing/test_timeline_rule.py checks it against the
    installed genai-prices)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return datetime.combine(date(1970, 1, 1), value).astimezone(UTC).timetz()


def _window_label(constraint: gp.TimeOfDateConstraint) -> str:
    start = utc_time_of_day(constraint.start_time)
    end = utc_time_of_day(constraint.end_time)
    return f"{start:%H:%M}-{end:%H:%M} UTC"


class ModelTimeline:
    """Every price of one model, and the one in force on a given day."""

    def __init__(
        self,
        provider_id: str,
        model: gp.ModelInfo,
        namer: EntryNamer,
        batch_multiplier: BatchMultiplier,
        not_before: date | None = None,
    ) -> None:
        self.provider_id = provider_id
        self.model = model
        self._namer = namer
        self._batch_multiplier = batch_multiplier
        self.not_before = not_before
        self._batch_variants = [
            (index, variant)
            for index, variant in enumerate(model.price_variants or ())
            if variant.when.items() <= BATCH_CONTEXT.items()
        ]
        self._conditionals: list[gp.ConditionalPrice | None] = (
            [None] if isinstance(model.prices, gp.ModelPrice) else list(model.prices)
        )
        self._entries: dict[tuple[int, tuple[int, ...]], PriceEntry | str] = {}
        self._boundaries = sorted(
            {
                int(timedelta(hours=t.hour, minutes=t.minute, seconds=t.second).total_seconds())
                for c in self._conditionals
                if c is not None and isinstance(c.constraint, gp.TimeOfDateConstraint)
                for t in (utc_time_of_day(c.constraint.start_time), utc_time_of_day(c.constraint.end_time))
            }
            - {0}
        )

    def entries(self) -> list[PriceEntry | str]:
        """Every price of the model in order (a str says why one has no per-token price), each as
        `for_day` applies it: a price whose provider batch price starts later gives one entry
        before that day and one from it (`batch_from`)."""
        entries: list[PriceEntry | str] = []
        batch_starts = sorted(
            {
                variant.constraint.start_date
                for _, variant in self._batch_variants
                if isinstance(variant.constraint, gp.StartDateConstraint)
            }
        )
        for index, conditional in enumerate(self._conditionals):
            constraint = conditional.constraint if conditional is not None else None
            start = constraint.start_date if isinstance(constraint, gp.StartDateConstraint) else date(1970, 1, 1)
            for day in (start, *(later for later in batch_starts if later > start)):
                moment = datetime.combine(day, time(), tzinfo=UTC)
                if day != start and self._active_index(moment) != index:
                    continue  # another of the model's prices is in force by then
                entry = self._entry(index, self._active_batch_variants(moment), moment)
                if not entries or entries[-1] is not entry:
                    entries.append(entry)
        return entries

    def for_day(self, day: date) -> DayPrice | str | None:
        """The price(s) in force on a UTC day; a str says why there is none; None: not yet."""
        if self.not_before is not None and day < self.not_before:
            return None
        midnight = datetime.combine(day, time(), tzinfo=UTC)
        picks: list[tuple[int, PriceEntry | str]] = []
        for second in (0, *self._boundaries):
            moment = midnight + timedelta(seconds=second)
            entry = self._entry(self._active_index(moment), self._active_batch_variants(moment), moment)
            if not picks or picks[-1][1] is not entry:
                picks.append((second, entry))
        if len(picks) == 1:
            return picks[0][1]
        reasons = [entry for _, entry in picks if isinstance(entry, str)]
        if reasons:
            return reasons[0]
        return DayWindows(
            day_start=midnight.timestamp(),
            starts=tuple(second for second, _ in picks),
            entries=tuple(entry for _, entry in picks if isinstance(entry, PriceEntry)),
        )

    def _active_index(self, moment: datetime) -> int:
        # genai-prices decides which conditional price is active; find it by identity.
        chosen = self.model.get_prices(moment)
        for index, conditional in enumerate(self._conditionals):
            prices = self.model.prices if conditional is None else conditional.prices
            if prices is chosen:
                return index
        raise LookupError(f"genai-prices returned a price that {self.model.id} does not list")

    def _active_batch_variants(self, moment: datetime) -> tuple[int, ...]:
        return tuple(
            index
            for index, variant in self._batch_variants
            if variant.constraint is None or variant.constraint.active(moment)
        )

    def _entry(self, index: int, batch_variants: tuple[int, ...], moment: datetime) -> PriceEntry | str:
        """The entry of conditional price `index` while `batch_variants` are active (at `moment`)."""
        key = (index, batch_variants)
        if key in self._entries:
            return self._entries[key]
        conditional = self._conditionals[index]
        prices = self.model.prices if conditional is None else conditional.prices
        assert isinstance(prices, gp.ModelPrice)
        bands = bands_of(prices)
        if bands is None:
            units = ", ".join(k for k, v in prices.__dict__.items() if v is not None) or "nothing"
            result: PriceEntry | str = f"{self.provider_id}/{self.model.id} is priced per {units}, not per token"
        else:
            price_id, source = self._namer(index, conditional)
            batch_bands, batch_rule = self._batch_bands(prices, bands, batch_variants, index, moment)
            constraint = conditional.constraint if conditional is not None else None
            effective_from = constraint.start_date if isinstance(constraint, gp.StartDateConstraint) else None
            batch_from = None
            if batch_rule == PROVIDER_BATCH_PRICE:
                batch_from = max(
                    (
                        variant.constraint.start_date
                        for i, variant in self._batch_variants
                        if i in batch_variants and isinstance(variant.constraint, gp.StartDateConstraint)
                    ),
                    default=None,
                )
                if batch_from is not None and effective_from is not None and batch_from <= effective_from:
                    batch_from = None
            result = PriceEntry(
                price_id=price_id,
                source=source,
                provider=self.provider_id,
                model=self.model.id,
                effective_from=effective_from,
                bands=bands,
                batch_bands=batch_bands,
                batch_rule=batch_rule,
                batch_from=batch_from,
                time_window=_window_label(constraint) if isinstance(constraint, gp.TimeOfDateConstraint) else None,
            )
        self._entries[key] = result
        return result

    def _batch_bands(
        self,
        prices: gp.ModelPrice,
        bands: tuple[Band, ...],
        batch_variants: tuple[int, ...],
        index: int,
        moment: datetime,
    ) -> tuple[tuple[Band, ...], str]:
        # The provider's own batch price (a genai-prices price variant) when one is in force;
        # before it (genai-prices does not model older batch prices) the provider's multiplier.
        if batch_variants and self.model.get_prices(moment) is prices:
            batch = bands_of(self.model.get_prices(moment, BATCH_CONTEXT))
            if batch is not None:
                return batch, PROVIDER_BATCH_PRICE
        multiplier = self._batch_multiplier(index)
        if multiplier == 1:
            return bands, "no batch discount"
        return tuple(band.scaled(multiplier) for band in bands), f"x{multiplier}"
