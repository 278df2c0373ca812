"""Errors of meterline.pricing; each message says what to do."""

from __future__ import annotations

from meterline.errors import MeterlineError


class PricingError(MeterlineError):
    """Root of the price catalog's errors."""


class OverrideFileError(PricingError):
    """A price override file is missing or wrong; `problems` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "price override files have problems (fix them, or remove the file from "
            "pricing.override_files):\n" + "\n".join(f"  {problem}" for problem in problems)
        )
        self.problems = problems


class InvalidUsageError(PricingError, ValueError):
    """Token counts that no call can have (negative, or cached tokens above input tokens)."""
