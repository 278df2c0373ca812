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
