"""The effective-dated price catalog: exact Decimal costs per token type for every usage event.

`PriceCatalog.load(settings.pricing)` reads the user's override files (TOML, see
`meterline.pricing.overrides`) and genai-prices' bundled data (offline); `price_event` and
`price` return a `PriceResult` whose fields match `meterline.messages.PricedEvent`.
"""

from __future__ import annotations

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
