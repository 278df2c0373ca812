"""A price catalog override that makes pricing raise: 1e40 USD per million input tokens times
1e9 tokens is beyond Decimal's 28 digits at 1e-12 (decimal.InvalidOperation), a real poison."""

ABSURD_PRICES = """
[[price]]
provider = "openai"
model = "absurd-model"
effective_from = 2020-01-01
input = "1e40"
output = "1"
"""

# Re-pricing (tests of `meterline reprice`): acme-chat's price as first stored, then the catalog
# as it is now, where acme-chat costs more from 2026-11-01 on and acme-new, unpriced before,
# has a price. At 1M input and 1M output tokens: 3.4 USD before November, 9.0 USD after.
ACME_PRICES_BEFORE = """
[[price]]
provider = "openai"
model = "acme-chat"
effective_from = 2026-01-01
input = "1.1"
cache_read = "0.37"
output = "2.3"
"""
ACME_PRICES_NOW = (
    ACME_PRICES_BEFORE
    + """
[[price]]
provider = "openai"
model = "acme-chat"
effective_from = 2026-11-01
input = "3.7"
cache_read = "0.91"
output = "5.3"

[[price]]
provider = "openai"
model = "acme-new"
effective_from = 2026-01-01
input = "0.7"
output = "1.9"
"""
)
