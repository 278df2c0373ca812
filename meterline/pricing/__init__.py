"""The effective-dated price catalog: exact Decimal costs per token type for every usage event.

`PriceCatalog.load(settings.pricing)` reads the user's override files (TOML, see
`meterline.pricing.overrides`) and genai-prices' bundled data (offline); `price_event` and
`price` return a `PriceResult` whose fields match `meterline.messages.PricedEvent`.

May import: the core (events, settings, money, errors) and genai-prices; no I/O but reading
price files (`PriceCatalog.load`), and no component.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meterline.pricing.catalog import PriceCatalog
    from meterline.pricing.entry import Band, PriceEntry
    from meterline.pricing.errors import InvalidUsageError, OverrideFileError, PricingError
    from meterline.pricing.result import PriceResult

__all__ = [
    "Band",
    "InvalidUsageError",
    "OverrideFileError",
    "PriceCatalog",
    "PriceEntry",
    "PriceResult",
    "PricingError",
]

# Imported on first use: `meterline --help` loads this package (for its commands) and should
# not pay for genai-prices and pydantic models it does not need.
_HOMES = {
    "PriceCatalog": "catalog",
    "Band": "entry",
    "PriceEntry": "entry",
    "InvalidUsageError": "errors",
    "OverrideFileError": "errors",
    "PricingError": "errors",
    "PriceResult": "result",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"meterline.pricing.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'meterline.pricing' has no attribute {name!r}")
