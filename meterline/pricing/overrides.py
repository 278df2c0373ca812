"""User price files (TOML): negotiated rates, private, fine-tuned or self-hosted models, history.

Files are named by `settings.pricing.override_files` and take precedence over genai-prices'
bundled data. Each `[[price]]` table is one effective-dated price of one model::

    [[price]]
    provider = "openai"              # a provider name as users write it (mapped like events)
    model = "gpt-4-turbo"            # matched case-insensitively, with or without a
                                     # `provider/` prefix and a date suffix (-2024-04-09 or -20240409)
    aliases = ["gpt-4-1106-preview"] # optional: other names billed at this price
    effective_from = 2024-04-09      # TOML date (UTC day) the price starts; required
    input = "10"                     # USD per million uncached input tokens (a string keeps it exact)
    output = "30"                    # USD per million output tokens
    cache_read = "5"                 # optional, default: the input rate
    cache_write = "12.5"             # optional, default: the input rate
    reasoning = "30"                 # optional, default: reasoning tokens bill as output
    batch_multiplier = "0.5"         # optional, 0 < m <= 1; default 0.5 for providers with a
                                     # batch API (openai, anthropic, google, aws, azure, ...), else 1

    [[price.tiers]]                  # optional: above this many input tokens (cache included)
    above_input_tokens = 200000      # every token of the call bills at the tier's rates;
    input = "20"                     # rates a tier leaves out keep the base rate
    output = "60"

Several tables for the same provider and model form its price history: on each UTC day the
latest `effective_from` not after that day applies. Before the earliest one the override does
not apply and genai-prices' price (if any) is used. When files repeat a (provider, model,
effective_from), the file listed later wins. A dated snapshot named in its own table keeps its
own price. Price ids read `override:<provider>:<model>@<effective_from>`; the source is
`override:<file>`. See docs/prices.example.toml.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from genai_prices import types as gp
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from meterline.pricing.errors import OverrideFileError

Rate = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
DATE_SUFFIX = r"(-\d{4}-\d{2}-\d{2}|-\d{8})"


class TierRow(BaseModel):
    """One `[[price.tiers]]` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    above_input_tokens: int = Field(ge=0)
    input: Rate | None = None
    cache_read: Rate | None = None
    cache_write: Rate | None = None
    output: Rate | None = None
    reasoning: Rate | None = None


class PriceRow(BaseModel):
    """One `[[price]]` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Name
    model: Name
    aliases: list[Name] = Field(default_factory=list)
    effective_from: date
    input: Rate
    output: Rate
    cache_read: Rate | None = None
    cache_write: Rate | None = None
    reasoning: Rate | None = None
    batch_multiplier: Annotated[Decimal, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    tiers: list[TierRow] = Field(default_factory=list)

    @field_validator("tiers")
    @classmethod
    def _distinct_thresholds(cls, tiers: list[TierRow]) -> list[TierRow]:
        starts = [tier.above_input_tokens for tier in tiers]
        if len(set(starts)) != len(starts):
            raise ValueError("two tiers have the same above_input_tokens")
        return tiers


class OverrideFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    price: list[PriceRow] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OverrideRow:
    """A validated row with where it came from."""

    row: PriceRow
    source: str
    """`override:<file>`."""


def read_override_files(paths: list[Path]) -> list[OverrideRow]:
    """Parse and validate every file; raise OverrideFileError listing every problem at once."""
    problems: list[str] = []
    rows: list[OverrideRow] = []
    for path in paths:
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            problems.append(f"{path}: file not found (check pricing.override_files)")
            continue
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            problems.append(f"{path}: cannot be read as TOML: {exc}")
            continue
        try:
            parsed = OverrideFile.model_validate(document)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"])
                problems.append(f"{path}: {where}: {error['msg']}")
            continue
        seen: set[tuple[str, str, date]] = set()
        for index, row in enumerate(parsed.price):
            key = (row.provider.lower(), row.model.lower(), row.effective_from)
            if key in seen:
                problems.append(
                    f"{path}: price.{index}: {row.provider}/{row.model} already has a price "
                    f"effective from {row.effective_from} in this file"
                )
            seen.add(key)
            rows.append(OverrideRow(row=row, source=f"override:{path}"))
    if problems:
        raise OverrideFileError(problems)
    return rows


# genai-prices price key -> (row field, field whose rate stands in when the row omits it)
_PRICE_FIELDS = {
    "input_mtok": ("input", "input"),
    "cache_read_mtok": ("cache_read", "input"),
    "cache_write_mtok": ("cache_write", "input"),
    "output_mtok": ("output", "output"),
    "output_reasoning_mtok": ("reasoning", "output"),
}


def model_price_of(row: PriceRow) -> gp.ModelPrice:
    """The row as genai-prices' `ModelPrice` (tiers as `TieredPrices`)."""
    tiers = sorted(row.tiers, key=lambda tier: tier.above_input_tokens)
    prices: dict[str, Decimal | gp.TieredPrices] = {}
    for key, (name, stand_in) in _PRICE_FIELDS.items():
        base: Decimal | None = getattr(row, name)
        steps = [
            gp.Tier(start=t.above_input_tokens, price=getattr(t, name)) for t in tiers if getattr(t, name) is not None
        ]
        if base is None and not steps:
            continue  # genai-prices then bills these tokens at the stand-in rate
        base = getattr(row, stand_in) if base is None else base
        prices[key] = gp.TieredPrices(base=base, tiers=steps) if steps else base
    return gp.ModelPrice(**prices)


def match_of(names: list[str]) -> gp.ClauseOr:
    """genai-prices match logic for the names and their dated snapshots."""
    lowered = sorted({name.lower() for name in names})
    clauses: list[gp.MatchLogic] = [gp.ClauseEquals(equals=name) for name in lowered]
    clauses += [gp.ClauseRegex(regex=f"^{re.escape(name)}{DATE_SUFFIX}$") for name in lowered]
    return gp.ClauseOr(or_=clauses)
