"""Threshold crossing, burn-rate forecast and top models: pure arithmetic on Decimal spend."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from meterline.money import quantize_money

PERCENT_QUANTUM = Decimal("0.0001")
HUNDRED = Decimal(100)


def percent_of(spend: Decimal, limit: Decimal) -> Decimal:
    """Spend as a percentage of the limit, to 1e-4 percent."""
    return (spend * HUNDRED / limit).quantize(PERCENT_QUANTUM)


def threshold_amount(limit: Decimal, threshold_percent: Decimal) -> Decimal:
    """The spend at which `threshold_percent` of `limit` is reached (exact)."""
    return limit * threshold_percent / HUNDRED


def crossed_thresholds(
    spend: Decimal,
    limit: Decimal,
    thresholds: Iterable[Decimal],
    already_fired: Iterable[Decimal] = (),
) -> list[Decimal]:
    """Thresholds reached by `spend` that have not fired yet, ascending (several at once)."""
    fired = set(already_fired)
    return sorted(t for t in thresholds if t not in fired and spend >= threshold_amount(limit, t))


def first_reaching(costs: Iterable[tuple[str, Decimal]], start: Decimal, amount: Decimal) -> str | None:
    """The id of the event whose cost first takes the running spend from `start` to `amount`."""
    running = start
    for event_id, cost in costs:
        running += cost
        if running >= amount:
            return event_id
    return None


def forecast_spend(spend: Decimal, elapsed_fraction: float) -> Decimal | None:
    """Linear burn-rate projection of spend at period end; None before any time has passed."""
    if elapsed_fraction <= 0:
        return None
    # The fraction is a float of wall time; turn it into a Decimal via str for a stable result.
    fraction = Decimal(repr(elapsed_fraction))
    return quantize_money(spend / fraction)


def forecast_exceeds(
    spend: Decimal,
    limit: Decimal,
    elapsed_fraction: float,
    *,
    min_elapsed: float,
    min_spend_fraction: float,
) -> Decimal | None:
    """The projection when it is trustworthy and above the limit, else None.

    Trustworthy means at least `min_elapsed` of the period passed and at least
    `min_spend_fraction` of the limit is spent: a single early event must not trigger it.
    """
    if elapsed_fraction < min_elapsed or elapsed_fraction <= 0:
        return None
    if spend < limit * Decimal(repr(min_spend_fraction)):
        return None
    projected = forecast_spend(spend, elapsed_fraction)
    if projected is None or projected <= limit:
        return None
    return projected


def top_models(spend_by_model: Mapping[str, Decimal], count: int = 5) -> list[tuple[str, str, Decimal]]:
    """The `count` models with the most spend: (provider, model, spend), largest first.

    Keys are `provider/model`; ties sort by name so the answer is deterministic.
    """
    ranked = sorted(spend_by_model.items(), key=lambda item: (-item[1], item[0]))[:count]
    result = []
    for key, spend in ranked:
        provider, _, model = key.partition("/")
        result.append((provider, model, spend))
    return result
