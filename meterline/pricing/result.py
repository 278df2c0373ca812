"""What pricing one call returns: the costs, and which price produced them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from meterline.money import MONEY_ZERO


@dataclass(frozen=True, slots=True)
class PriceResult:
    """The price of one call. Field names match `meterline.messages.PricedEvent`.

    Every money field is quantised to 1e-12 USD; the four parts sum to `cost_usd`.
    """

    priced: bool
    unpriced_reason: str | None
    price_id: str | None
    price_source: str | None
    input_cost_usd: Decimal
    cache_read_cost_usd: Decimal
    cache_write_cost_usd: Decimal
    output_cost_usd: Decimal
    cost_usd: Decimal
    cache_saving_usd: Decimal
    batch_saving_usd: Decimal

    def as_fields(self) -> dict[str, Any]:
        """The fields as a dict, ready to splat into `PricedEvent(**event, **fields)`."""
        return {name: getattr(self, name) for name in self.__slots__}


def unpriced(reason: str) -> PriceResult:
    """A result for a call without a price: zero costs and the reason."""
    return PriceResult(
        False, reason, None, None, MONEY_ZERO, MONEY_ZERO, MONEY_ZERO, MONEY_ZERO, MONEY_ZERO, MONEY_ZERO, MONEY_ZERO
    )


ResultFactory = Callable[
    [bool, "str | None", "str | None", "str | None", Decimal, Decimal, Decimal, Decimal, Decimal, Decimal, Decimal],
    PriceResult,
]


def _fast_factory() -> ResultFactory:
    # A frozen dataclass __init__ goes through object.__setattr__ once per field; the slot
    # descriptors set the same slots in about half the time, and pricing is per event.
    new = object.__new__
    (s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10) = (
        getattr(PriceResult, name).__set__ for name in PriceResult.__slots__
    )

    def make(
        priced: bool,
        reason: str | None,
        price_id: str | None,
        source: str | None,
        input_cost: Decimal,
        cache_read_cost: Decimal,
        cache_write_cost: Decimal,
        output_cost: Decimal,
        cost: Decimal,
        cache_saving: Decimal,
        batch_saving: Decimal,
    ) -> PriceResult:
        result = new(PriceResult)
        s0(result, priced)
        s1(result, reason)
        s2(result, price_id)
        s3(result, source)
        s4(result, input_cost)
        s5(result, cache_read_cost)
        s6(result, cache_write_cost)
        s7(result, output_cost)
        s8(result, cost)
        s9(result, cache_saving)
        s10(result, batch_saving)
        return result

    return make


make_result: Final[ResultFactory] = _fast_factory()
"""Build a PriceResult from positional fields (the hot path's constructor)."""
