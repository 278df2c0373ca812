"""Prices per second of `PriceCatalog.price_event` on a realistic mix of usage events.

Run: `.venv/bin/python bench/pricing.py [--events N] [--runs R]`. Prints the median of R runs
over the same N pre-built events (the catalog's resolved-entry cache is warm after the first),
plus the cold first run, the `price(...)` keyword API, and the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from meterline.events import UsageEvent
from meterline.pricing import PriceCatalog
from meterline.settings import PricingSettings

# (provider as users write it, model as it arrives, share of traffic)
MIX = [
    ("openai", "gpt-4o-mini", 20),
    ("openai", "gpt-4o-2024-08-06", 10),
    ("openai", "openai/gpt-4.1", 6),
    ("openai", "o3", 4),
    ("anthropic", "claude-sonnet-4-5", 10),
    ("anthropic", "claude-3-5-haiku-20241022", 6),
    ("anthropic", "claude-opus-4-6", 2),
    ("google", "gemini-2.5-flash", 10),
    ("gemini", "gemini-2.5-pro", 5),
    ("vertex", "gemini-2.0-flash", 3),
    ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", 4),
    ("azure", "gpt-4o", 5),
    ("mistral", "mistral-large-latest", 3),
    ("deepseek", "deepseek-chat", 3),
    ("groq", "llama-3.3-70b-versatile", 3),
    ("x-ai", "grok-3", 2),
    ("acme", "in-house-llm", 1),
    ("openai", "gpt-unknown-9", 1),
]


def build_events(count: int, seed: int = 7) -> list[UsageEvent]:
    """A deterministic mix: long-tailed token counts, cache reads, some batch and cache hits."""
    rng = random.Random(seed)
    pairs = [(provider, model) for provider, model, weight in MIX for _ in range(weight)]
    start = datetime(2026, 11, 20, tzinfo=UTC)
    events = []
    for _ in range(count):
        provider, model = rng.choice(pairs)
        input_tokens = int(rng.lognormvariate(7, 1.5)) % 400_000
        cache_read = rng.randrange(input_tokens + 1) if rng.random() < 0.3 else 0
        cache_write = rng.randrange(input_tokens - cache_read + 1) if rng.random() < 0.05 else 0
        output_tokens = int(rng.lognormvariate(5.5, 1.2)) % 64_000
        reasoning = rng.randrange(output_tokens + 1) if rng.random() < 0.2 else 0
        events.append(
            UsageEvent(
                occurred_at=start + timedelta(seconds=rng.randrange(7 * 86_400)),
                team="bench",
                provider=provider,
                model=model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
                reasoning_tokens=reasoning,
                batch=rng.random() < 0.05,
                cache_hit=rng.random() < 0.03,
            )
        )
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    events = build_events(args.events)
    load_started = time.perf_counter()
    catalog = PriceCatalog.load(PricingSettings())
    load_seconds = time.perf_counter() - load_started

    price_event = catalog.price_event
    rates = []
    for _ in range(args.runs):
        started = time.perf_counter()
        for event in events:
            price_event(event)
        rates.append(len(events) / (time.perf_counter() - started))
    cold, warm = rates[0], rates[1:]

    price = catalog.price
    calls = [
        dict(
            provider=e.provider,
            model=e.model,
            input_tokens=e.input_tokens,
            output_tokens=e.output_tokens,
            cache_read_tokens=e.cache_read_tokens,
            cache_write_tokens=e.cache_write_tokens,
            reasoning_tokens=e.reasoning_tokens,
            batch=e.batch,
            cache_hit=e.cache_hit,
            at=e.occurred_at,
        )
        for e in events
    ]
    keyword_rates = []
    for _ in range(max(3, args.runs // 2)):
        started = time.perf_counter()
        for call in calls:
            price(**call)
        keyword_rates.append(len(calls) / (time.perf_counter() - started))

    priced = sum(price_event(event).priced for event in events)
    print(
        f"machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, one thread"
    )
    print(f"catalog load (genai-prices bundled data, no overrides): {load_seconds:.3f} s")
    print(f"events: {len(events):,} ({priced:,} priced) over {len(MIX)} provider/model names and 7 days")
    print(
        f"price_event: median {statistics.median(warm):,.0f} prices/s over {len(warm)} warm runs "
        f"(min {min(warm):,.0f}, max {max(warm):,.0f}); first (cold cache) run {cold:,.0f}/s"
    )
    print(f"price(**kwargs) with validation: median {statistics.median(keyword_rates):,.0f} prices/s")


if __name__ == "__main__":
    main()
