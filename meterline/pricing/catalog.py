"""The price catalog: override files first, then genai-prices' bundled data (never fetched).

Name resolution reuses genai-prices' data model: its providers' `provider_match`, its models'
`match` rules (dated snapshots, case, aliases, compact dates) and fallback providers (Azure
serving OpenAI models, Vertex serving Claude, ...). Resolved (provider, model, UTC day) triples
are cached, so pricing an event is a dict lookup plus a few Decimal multiplications.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final, Unpack

from genai_prices import types as gp

from meterline.money import MONEY_ZERO
from meterline.pricing.entry import PriceEntry, band_costs
from meterline.pricing.overrides import OverrideRow, match_of, model_price_of, read_override_files
from meterline.pricing.providers import batch_multiplier_for, canonical_provider
from meterline.pricing.result import PriceResult, make_result, unpriced
from meterline.pricing.timeline import DayWindows, ModelTimeline
from meterline.pricing.usage import TokenUsage, check_usage

if TYPE_CHECKING:
    from meterline.events import UsageEvent
    from meterline.settings import PricingSettings

BUNDLED_SOURCE: Final = "genai-prices"
EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
CACHE_LIMIT: Final = 65_536
"""Resolved entries kept at most; the cache is emptied (and refilled on demand) beyond it."""

Resolved = PriceEntry | DayWindows | PriceResult


def bundled_providers() -> list[gp.Provider]:
    """genai-prices' bundled price data, read from the installed package (no network)."""
    from genai_prices.data import providers

    return providers


def candidate_refs(model: str) -> list[str]:
    """The model name, then without each leading `prefix/` (`openai/gpt-4o` -> `gpt-4o`)."""
    ref = model.strip()
    refs = [ref]
    while "/" in ref:
        ref = ref.split("/", 1)[1]
        if ref:
            refs.append(ref)
    return refs


class PriceCatalog:
    """Prices usage by provider, model and date. Build it with `PriceCatalog.load(settings)`."""

    def __init__(self, override_rows: list[OverrideRow], providers: list[gp.Provider]) -> None:
        self._bundled = providers
        self._bundled_by_id = {provider.id: provider for provider in providers}
        self._owner = {id(model): provider.id for provider in providers for model in provider.models}
        self._timelines: dict[int, ModelTimeline] = {}
        self._overrides: dict[str, gp.Provider] = {}
        self._build_overrides(override_rows)
        self._known_ids = frozenset(self._bundled_by_id) | frozenset(self._overrides)
        self._provider_ids: dict[str, str | None] = {}
        self._cache: dict[tuple[str, str, int], Resolved] = {}

    @classmethod
    def load(cls, settings: PricingSettings) -> PriceCatalog:
        """Read the override files and genai-prices' bundled data; raise OverrideFileError."""
        return cls(read_override_files(list(settings.override_files)), bundled_providers())

    # -- the hot path --------------------------------------------------------------------

    def price_event(self, event: UsageEvent) -> PriceResult:
        """Price a (validated) usage event at its `occurred_at`."""
        return self._price(
            event.provider,
            event.model,
            event.input_tokens,
            event.output_tokens,
            event.cache_read_tokens,
            event.cache_write_tokens,
            event.reasoning_tokens,
            event.batch,
            event.cache_hit,
            event.occurred_at,
        )

    def price(self, *, provider: str, model: str, at: datetime, **usage: Unpack[TokenUsage]) -> PriceResult:
        """Price one call made at `at` (the counts and flags: `TokenUsage`).

        Unknown models give `priced=False` with a reason; impossible token counts raise
        InvalidUsageError.
        """
        return self._price(provider, model, *check_usage(usage), at)

    def _price(  # positional: the stream's hot path (price_event) calls it once per event
        self,
        provider: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        cache_write_tokens: int,
        reasoning_tokens: int,
        batch: bool,
        cache_hit: bool,
        at: datetime,
    ) -> PriceResult:
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)  # genai-prices' rule: naive times are UTC
        timestamp = at.timestamp()
        day = int(timestamp // 86_400)
        key = (provider, model, day)
        resolved = self._cache.get(key)
        if resolved is None:
            resolved = self._resolve_and_cache(key)
        kind = resolved.__class__
        if kind is PriceResult:
            return resolved  # type: ignore[return-value]  # the class check above: the hot path avoids isinstance
        entry: PriceEntry = resolved.pick(timestamp) if kind is DayWindows else resolved  # type: ignore[union-attr,assignment]  # the class check above: the hot path avoids isinstance

        i, r, w, o = band_costs(
            entry.fast_bands, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens
        )
        cost = i + r + w + o
        batch_saving = MONEY_ZERO
        if batch and entry.batch_discounted:
            standard = cost
            i, r, w, o = band_costs(
                entry.fast_batch_bands,
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens,
                reasoning_tokens,
            )
            cost = i + r + w + o
            batch_saving = standard - cost
        if cache_hit:
            # The provider was not called: nothing spent, nothing discounted, `cost` saved.
            return make_result(
                True,
                None,
                entry.price_id,
                entry.source,
                MONEY_ZERO,
                MONEY_ZERO,
                MONEY_ZERO,
                MONEY_ZERO,
                MONEY_ZERO,
                cost,
                MONEY_ZERO,
            )
        return make_result(True, None, entry.price_id, entry.source, i, r, w, o, cost, MONEY_ZERO, batch_saving)

    # -- resolution (once per provider, model and UTC day) -------------------------------

    def _resolve_and_cache(self, key: tuple[str, str, int]) -> Resolved:
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        provider, model, day = key
        resolved = self.resolve(provider, model, date.fromordinal(EPOCH_ORDINAL + day))
        self._cache[key] = resolved
        return resolved

    def resolve(self, provider: str, model: str, day: date) -> Resolved:
        """The entry (or a day's time windows) for a call on a UTC day, else an unpriced result."""
        provider_id = self.provider_id(provider)
        if provider_id is None:
            return unpriced(
                f"unknown provider {provider!r}: use a provider id from `meterline prices list` "
                "or add the model to a price override file"
            )
        later = ""
        for timeline in self._timelines_for(provider_id, model):
            found = timeline.for_day(day)
            if isinstance(found, str):
                return unpriced(found)
            if found is not None:
                return found
            later = f" (its override price starts on {timeline.not_before})"
        return unpriced(
            f"no price for model {model!r} of provider {provider_id!r} on {day.isoformat()}{later}: "
            "add it to a price override file (pricing.override_files)"
        )

    def provider_id(self, name: str) -> str | None:
        """The catalog provider id for a provider name as users write it, else None."""
        if name in self._provider_ids:
            return self._provider_ids[name]
        found = canonical_provider(name, self._known_ids)
        if found is None:
            from genai_prices.data_snapshot import find_provider_by_id

            match = find_provider_by_id(self._bundled, name)
            found = match.id if match is not None else None
        self._provider_ids[name] = found
        return found

    def _timelines_for(self, provider_id: str, model: str) -> list[ModelTimeline]:
        """Matching timelines, override first; at most one per source."""
        found: list[ModelTimeline] = []
        refs = candidate_refs(model)
        override = self._overrides.get(provider_id)
        if override is not None:
            for ref in refs:
                if (info := override.find_model(ref)) is not None:
                    found.append(self._timelines[id(info)])
                    break
        bundled = self._bundled_by_id.get(provider_id)
        if bundled is not None:
            for ref in refs:
                if (info := bundled.find_model(ref, all_providers=self._bundled)) is not None:
                    found.append(self._bundled_timeline(info))
                    break
        return found

    def _bundled_timeline(self, info: gp.ModelInfo) -> ModelTimeline:
        timeline = self._timelines.get(id(info))
        if timeline is None:
            owner = self._owner[id(info)]

            def name(index: int, conditional: gp.ConditionalPrice | None) -> tuple[str, str]:
                constraint = conditional.constraint if conditional is not None else None
                suffix = ""
                if isinstance(constraint, gp.StartDateConstraint):
                    suffix = f"@{constraint.start_date.isoformat()}"
                elif isinstance(constraint, gp.TimeOfDateConstraint):
                    suffix = f"@{constraint.start_time:%H%M}-{constraint.end_time:%H%M}"
                return f"{BUNDLED_SOURCE}:{owner}:{info.id}{suffix}", BUNDLED_SOURCE

            multiplier = batch_multiplier_for(owner)
            timeline = ModelTimeline(owner, info, name, lambda _index: multiplier)
            self._timelines[id(info)] = timeline
        return timeline

    def _build_overrides(self, rows: list[OverrideRow]) -> None:
        groups: dict[tuple[str, str], dict[date, OverrideRow]] = {}
        for override in rows:
            row = override.row
            provider_id = canonical_provider(row.provider, ()) or row.provider.strip().lower()
            # Later files win on the same effective_from (dict insertion keeps the last).
            groups.setdefault((provider_id, row.model.lower()), {})[row.effective_from] = override
        models: dict[str, list[gp.ModelInfo]] = {}
        for (provider_id, _model_key), by_date in groups.items():
            history = [by_date[day] for day in sorted(by_date)]
            names = [history[-1].row.model] + [alias for item in history for alias in item.row.aliases]
            info = gp.ModelInfo(
                id=history[-1].row.model,
                match=match_of(names),
                prices=[
                    gp.ConditionalPrice(
                        constraint=gp.StartDateConstraint(start_date=item.row.effective_from),
                        prices=model_price_of(item.row),
                    )
                    for item in history
                ],
            )
            models.setdefault(provider_id, []).append(info)
            self._timelines[id(info)] = _override_timeline(provider_id, info, history)
        for provider_id, infos in models.items():
            # Longest names first, so a snapshot with its own price wins over its base model.
            infos.sort(key=lambda info: len(info.id), reverse=True)
            self._overrides[provider_id] = gp.Provider(id=provider_id, name=provider_id, api_pattern="^$", models=infos)

    # -- browsing (CLI) ------------------------------------------------------------------

    def provider_ids(self) -> list[str]:
        """Every provider id the catalog has prices for."""
        return sorted(self._known_ids)

    def current_entries(self, day: date, provider: str | None = None) -> list[PriceEntry]:
        """The price of every model on a UTC day (override models first), optionally of one provider."""
        wanted = None if provider is None else self.provider_id(provider) or provider.lower()
        entries: list[PriceEntry] = []
        timelines: list[ModelTimeline] = [
            self._timelines[id(info)]
            for provider_id, override in sorted(self._overrides.items())
            if wanted in (None, provider_id)
            for info in override.models
        ]
        timelines += [
            self._bundled_timeline(info)
            for provider_data in self._bundled
            if wanted in (None, provider_data.id)
            for info in provider_data.models
        ]
        for timeline in timelines:
            found = timeline.for_day(day)
            if isinstance(found, PriceEntry):
                entries.append(found)
            elif isinstance(found, DayWindows):
                entries.extend(found.entries)
        return entries

    def history(self, model: str, provider: str | None = None) -> list[PriceEntry | str]:
        """Every dated price of a model (overrides, then genai-prices) at one or every provider."""
        if provider is not None:
            provider_id = self.provider_id(provider)
            provider_ids = [] if provider_id is None else [provider_id]
        else:
            # The provider the name belongs to first, then others serving it (Azure, Bedrock, ...).
            inferred = self.infer_provider(model)
            provider_ids = sorted(self.provider_ids(), key=lambda known: known != inferred)
        history: list[PriceEntry | str] = []
        seen: set[int] = set()
        for provider_id in provider_ids:
            for timeline in self._timelines_for(provider_id, model):
                if id(timeline) not in seen:
                    seen.add(id(timeline))
                    history.extend(timeline.entries())
        return history

    def infer_provider(self, model: str) -> str | None:
        """The provider a bare model name belongs to (`openai/...` prefix, overrides, genai-prices)."""
        refs = candidate_refs(model)
        if len(refs) > 1 and (prefixed := self.provider_id(refs[0].split("/", 1)[0])) is not None:
            return prefixed
        for provider_id, override in sorted(self._overrides.items()):
            if any(override.find_model(ref) is not None for ref in refs):
                return provider_id
        from genai_prices.data_snapshot import DataSnapshot

        snapshot = DataSnapshot(providers=self._bundled, from_auto_update=False)
        for ref in refs:
            try:
                return snapshot.find_provider(ref.lower(), None, None).id
            except LookupError:
                continue
        return None


def _override_timeline(provider_id: str, info: gp.ModelInfo, history: list[OverrideRow]) -> ModelTimeline:
    def name(index: int, _conditional: gp.ConditionalPrice | None) -> tuple[str, str]:
        row = history[index].row
        return f"override:{provider_id}:{info.id}@{row.effective_from.isoformat()}", history[index].source

    def multiplier(index: int) -> Decimal:
        return history[index].row.batch_multiplier or batch_multiplier_for(provider_id)

    return ModelTimeline(provider_id, info, name, multiplier, not_before=history[0].row.effective_from)
