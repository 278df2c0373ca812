"""One effective-dated price and the exact arithmetic that applies it to a call's tokens."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Final

from meterline.money import MONEY_QUANTUM, MONEY_ZERO

NO_TIER: Final = -1
"""`above_input_tokens` of the base band: every call has more than -1 input tokens."""

# (above_input_tokens, input, cache_read, cache_write, output, reasoning or None, exact):
# USD per token; `exact` when every rate has at most 12 decimals, so products need no rounding.
FastBand = tuple[int, Decimal, Decimal, Decimal, Decimal, "Decimal | None", bool]


@dataclass(frozen=True, slots=True)
class Band:
    """USD per million tokens for calls with more than `above_input_tokens` input tokens.

    Crossing a tier re-prices every token of the call (the providers' "cliff" tiers).
    """

    above_input_tokens: int
    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal | None = None
    """None: reasoning tokens bill as output."""

    def scaled(self, multiplier: Decimal) -> Band:
        """This band with every rate multiplied (a batch discount)."""
        reasoning = None if self.reasoning is None else self.reasoning * multiplier
        return replace(
            self,
            input=self.input * multiplier,
            cache_read=self.cache_read * multiplier,
            cache_write=self.cache_write * multiplier,
            output=self.output * multiplier,
            reasoning=reasoning,
        )


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """One catalog price: who it is for, from when, its bands, its batch bands and its origin."""

    price_id: str
    """Stable id, e.g. `genai-prices:openai:gpt-4o` or `override:openai:gpt-4-turbo@2024-04-09`."""
    source: str
    """`genai-prices` or `override:<file>`."""
    provider: str
    model: str
    effective_from: date | None
    """First UTC day the price applies (None: since the model's first price)."""
    bands: tuple[Band, ...]
    """Base band first, then tiers by ascending threshold."""
    batch_bands: tuple[Band, ...]
    """Bands for batch calls (equal to `bands` when there is no batch discount)."""
    batch_rule: str
    """How the batch price was obtained, e.g. `x0.5` or `provider batch price`."""
    time_window: str | None = None
    """Daily UTC window the price is limited to (off-peak prices), e.g. `16:30-00:30 UTC`."""
    aliases: tuple[str, ...] = ()
    batch_from: date | None = None
    """First UTC day of `batch_bands` when later than `effective_from`: the provider's own batch
    price arrived after the standard price (before it, another entry holds the batch price)."""
    fast_bands: tuple[FastBand, ...] = field(init=False, repr=False, compare=False)
    fast_batch_bands: tuple[FastBand, ...] = field(init=False, repr=False, compare=False)
    batch_discounted: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.bands or self.bands[0].above_input_tokens != NO_TIER:
            raise ValueError(f"{self.price_id}: the first band must be the base band")
        object.__setattr__(self, "fast_bands", compile_bands(self.bands))
        object.__setattr__(self, "fast_batch_bands", compile_bands(self.batch_bands))
        object.__setattr__(self, "batch_discounted", self.batch_bands != self.bands)

    @property
    def base(self) -> Band:
        return self.bands[0]


def _per_token(per_million: Decimal) -> tuple[Decimal, bool]:
    rate = per_million.scaleb(-6)
    if rate.as_tuple().exponent >= -12:  # type: ignore[operator]  # a finite Decimal's exponent is an int
        return rate.quantize(MONEY_QUANTUM), True
    return rate, False


def compile_bands(bands: tuple[Band, ...]) -> tuple[FastBand, ...]:
    """Per-token rates, highest threshold first, for `band_costs`."""
    fast: list[FastBand] = []
    for band in sorted(bands, key=lambda b: b.above_input_tokens, reverse=True):
        input_rate, e1 = _per_token(band.input)
        read_rate, e2 = _per_token(band.cache_read)
        write_rate, e3 = _per_token(band.cache_write)
        output_rate, e4 = _per_token(band.output)
        reasoning_rate, e5 = (None, True) if band.reasoning is None else _per_token(band.reasoning)
        exact = e1 and e2 and e3 and e4 and e5
        fast.append((band.above_input_tokens, input_rate, read_rate, write_rate, output_rate, reasoning_rate, exact))
    return tuple(fast)


def band_costs(
    bands: tuple[FastBand, ...],
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    reasoning_tokens: int,
) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(uncached input, cache read, cache write, output) costs, each quantised to 1e-12 USD.

    `input_tokens` includes the cache tokens; `output_tokens` includes the reasoning tokens.
    """
    for band in bands:
        if input_tokens > band[0]:
            break
    _, input_rate, read_rate, write_rate, output_rate, reasoning_rate, exact = band
    input_cost = input_rate * (input_tokens - cache_read_tokens - cache_write_tokens)
    read_cost = read_rate * cache_read_tokens if cache_read_tokens else MONEY_ZERO
    write_cost = write_rate * cache_write_tokens if cache_write_tokens else MONEY_ZERO
    if reasoning_rate is None or not reasoning_tokens:
        output_cost = output_rate * output_tokens
    else:
        output_cost = output_rate * (output_tokens - reasoning_tokens) + reasoning_rate * reasoning_tokens
    if exact:
        return input_cost, read_cost, write_cost, output_cost
    return (
        input_cost.quantize(MONEY_QUANTUM),
        read_cost.quantize(MONEY_QUANTUM),
        write_cost.quantize(MONEY_QUANTUM),
        output_cost.quantize(MONEY_QUANTUM),
    )
