"""What one model call used, as the catalog's callers pass it: the token counts and flags. Pure.

`TokenUsage` is the keyword signature of `PriceCatalog.price` and `estimate` (written once,
spread with `**usage`); `check_usage` holds the rules a call's counts must keep. The stream's
hot path (`PriceCatalog.price_event`) reads the same fields from a validated `UsageEvent`.
"""

# No `from __future__ import annotations`: TypedDict reads Required[...] at class creation.
from collections.abc import Mapping
from typing import Any, Final, Required, TypedDict

from meterline.pricing.errors import InvalidUsageError


class TokenUsage(TypedDict, total=False):
    """Keyword arguments describing one call. `input_tokens` counts every prompt token, cached
    ones included; `output_tokens` includes the reasoning tokens. Omitted ones are 0 / False."""

    input_tokens: Required[int]
    output_tokens: Required[int]
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    batch: bool
    """Sent through the provider's batch API."""
    cache_hit: bool
    """Answered from the application's own cache: the provider was not called."""


USAGE_FIELDS: Final = frozenset(TokenUsage.__annotations__)


def check_usage(usage: Mapping[str, Any]) -> tuple[int, int, int, int, int, bool, bool]:
    """(input, output, cache read, cache write, reasoning, batch, cache_hit) of `usage`; TypeError
    for an unknown or missing keyword, InvalidUsageError for impossible counts."""
    if not usage.keys() <= USAGE_FIELDS:
        unknown = ", ".join(sorted(usage.keys() - USAGE_FIELDS))
        raise TypeError(f"unexpected keyword argument(s) {unknown}: use {', '.join(sorted(USAGE_FIELDS))}")
    try:
        input_tokens, output_tokens = usage["input_tokens"], usage["output_tokens"]
    except KeyError as exc:
        raise TypeError(f"missing keyword argument {exc.args[0]}") from None
    get = usage.get
    cache_read, cache_write, reasoning = (
        get("cache_read_tokens", 0),
        get("cache_write_tokens", 0),
        get("reasoning_tokens", 0),
    )
    if min(input_tokens, output_tokens, cache_read, cache_write, reasoning) < 0:
        raise InvalidUsageError("token counts must not be negative")
    if cache_read + cache_write > input_tokens:
        raise InvalidUsageError(
            "cache_read_tokens + cache_write_tokens must not exceed input_tokens "
            "(input_tokens counts every prompt token, cached ones included)"
        )
    if reasoning > output_tokens:
        raise InvalidUsageError("reasoning_tokens must not exceed output_tokens (output includes them)")
    return (
        input_tokens,
        output_tokens,
        cache_read,
        cache_write,
        reasoning,
        get("batch", False),
        get("cache_hit", False),
    )
