"""What the reconcile tests store in meterline, and the provider reports built from it with
planted gaps (tests/data/make_reconcile_files.py writes the files; tests/data/README.md lists
the pages and fields used and the planted gaps)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class TruthLine:
    """One day x model x scope as meterline stores it (scope = the events' project)."""

    day: date
    model: str
    scope: str
    requests: int
    uncached_input: int
    cache_read: int
    cache_write: int
    output: int
    cost_usd: Decimal

    @property
    def input_tokens(self) -> int:
        return self.uncached_input + self.cache_read + self.cache_write


D2, D3, D4 = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)

OPENAI_TRUTH = (
    TruthLine(D2, "gpt-4o-2024-08-06", "proj_search", 4, 8000, 4000, 0, 3000, Decimal("0.055")),
    TruthLine(D2, "gpt-4o-mini-2024-07-18", "proj_support", 10, 50000, 0, 0, 8000, Decimal("0.0123")),
    TruthLine(D3, "gpt-4o-2024-08-06", "proj_search", 2, 6000, 0, 0, 1000, Decimal("0.025")),
    TruthLine(D3, "gpt-4o-mini-2024-07-18", "proj_support", 5, 18000, 2000, 0, 4000, Decimal("0.00543")),
    TruthLine(D4, "gpt-4o-2024-08-06", "proj_support", 3, 8000, 1000, 0, 2000, Decimal("0.0425")),
)
ANTHROPIC_TRUTH = (
    TruthLine(D2, "claude-sonnet-4-20250514", "wrkspc_a", 6, 10000, 5000, 2000, 3000, Decimal("0.1")),
    TruthLine(D2, "claude-3-5-haiku-20241022", "wrkspc_b", 8, 20000, 0, 0, 5000, Decimal("0.036")),
    TruthLine(D3, "claude-sonnet-4-20250514", "wrkspc_a", 3, 4000, 1000, 500, 1500, Decimal("0.045")),
    TruthLine(D2, "claude-sonnet-4-20250514", "wrkspc_b", 2, 3000, 0, 0, 600, Decimal("0.018")),
)

# The planted gaps: what the provider files say differently from the truth above.
OPENAI_ONLY_IN_PROVIDER = TruthLine(D4, "gpt-4.1-2025-04-14", "proj_search", 1, 1000, 0, 0, 200, Decimal("0.0036"))
OPENAI_NOT_IN_PROVIDER = (D4, "gpt-4o-2024-08-06", "proj_support")
OPENAI_OUTPUT_OVER = (D3, "gpt-4o-mini-2024-07-18", "proj_support", 4200)  # ours 4000: 5 % over
OPENAI_COST_OVER = (D2, "gpt-4o-2024-08-06", "proj_search", Decimal("0.555"))  # ours 0.055
ANTHROPIC_ONLY_IN_PROVIDER = TruthLine(D3, "claude-opus-4-1-20250805", "wrkspc_b", 1, 2000, 0, 0, 400, Decimal("0.06"))
ANTHROPIC_NOT_IN_PROVIDER = (D2, "claude-sonnet-4-20250514", "wrkspc_b")
ANTHROPIC_CACHE_READ_OVER = (D3, "claude-sonnet-4-20250514", "wrkspc_a", 1500)  # ours 1000

EXPECTED_OPENAI = {
    (D2, "gpt-4o-2024-08-06", "proj_search"): ("over_tolerance", ("cost_usd",)),
    (D2, "gpt-4o-mini-2024-07-18", "proj_support"): ("matched", ()),
    (D3, "gpt-4o-2024-08-06", "proj_search"): ("matched", ()),
    (D3, "gpt-4o-mini-2024-07-18", "proj_support"): ("over_tolerance", ("output_tokens",)),
    (D4, "gpt-4o-2024-08-06", "proj_support"): ("missing_provider", ()),
    (D4, "gpt-4.1-2025-04-14", "proj_search"): ("missing_ours", ()),
}
EXPECTED_ANTHROPIC = {
    (D2, "claude-sonnet-4-20250514", "wrkspc_a"): ("matched", ()),
    (D2, "claude-3-5-haiku-20241022", "wrkspc_b"): ("matched", ()),
    (D3, "claude-sonnet-4-20250514", "wrkspc_a"): ("over_tolerance", ("input_tokens", "cache_read_tokens")),
    (D2, "claude-sonnet-4-20250514", "wrkspc_b"): ("missing_provider", ()),
    (D3, "claude-opus-4-1-20250805", "wrkspc_b"): ("missing_ours", ()),
}
