"""Realistic priced events for tests, the benchmark and the docs (pure and seeded).

Costs come from a small fixed price table (USD per million tokens, mid-2025 list prices),
not from the price catalog: the sink stores whatever the stream priced.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from meterline.messages import PricedEvent
from meterline.money import quantize_money

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class SamplePrice:
    provider: str
    model: str
    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal


SAMPLE_PRICES = (
    SamplePrice("openai", "gpt-4o", Decimal("2.5"), Decimal("1.25"), Decimal("2.5"), Decimal("10")),
    SamplePrice("openai", "gpt-4o-mini", Decimal("0.15"), Decimal("0.075"), Decimal("0.15"), Decimal("0.6")),
    SamplePrice("anthropic", "claude-sonnet-4-20250514", Decimal("3"), Decimal("0.3"), Decimal("3.75"), Decimal("15")),
    SamplePrice("anthropic", "claude-3-5-haiku-latest", Decimal("0.8"), Decimal("0.08"), Decimal("1"), Decimal("4")),
    SamplePrice("google-gla", "gemini-2.5-flash", Decimal("0.3"), Decimal("0.075"), Decimal("0.3"), Decimal("2.5")),
)
TEAMS = {
    "search": ("ranker", "query-rewrite"),
    "support": ("helpdesk-bot", "ticket-triage"),
    "growth": ("email-writer",),
    "platform": ("evals", "code-review"),
}


def sample_priced_event(rng: random.Random, occurred_at: datetime, ingested_at: datetime) -> PricedEvent:
    """One plausible priced event drawn from `rng`."""
    team = rng.choice(sorted(TEAMS))
    project = rng.choice(TEAMS[team])
    event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    common = {
        "event_id": event_id,
        "occurred_at": occurred_at,
        "ingested_at": ingested_at,
        "team": team,
        "project": project,
        "app": f"{project}-svc",
        "environment": rng.choice(("prod", "prod", "prod", "staging")),
        "user": None if rng.random() < 0.5 else f"user-{rng.randrange(200)}",
        "latency_ms": rng.randrange(120, 9000),
        "request_id": f"req_{rng.getrandbits(48):012x}",
        "tags": {"feature": rng.choice(("chat", "summary", "rerank"))} if rng.random() < 0.7 else {},
        "status": "error" if rng.random() < 0.02 else "ok",
    }
    if rng.random() < 0.01:
        return PricedEvent(
            **common,
            provider="self-hosted",
            model="llama-internal-70b",
            input_tokens=rng.randrange(50, 4000),
            output_tokens=rng.randrange(10, 800),
            priced=False,
            unpriced_reason="no price for self-hosted/llama-internal-70b",
        )
    price = rng.choice(SAMPLE_PRICES)
    input_tokens = rng.randrange(50, 8000)
    cache_read = rng.randrange(0, input_tokens // 2) if rng.random() < 0.3 else 0
    cache_write = (
        rng.randrange(0, (input_tokens - cache_read) // 4)
        if price.provider == "anthropic" and rng.random() < 0.2
        else 0
    )
    output_tokens = rng.randrange(10, 1500)
    reasoning = rng.randrange(0, output_tokens) if rng.random() < 0.1 else 0
    batch = rng.random() < 0.1
    cache_hit = not batch and rng.random() < 0.05
    input_cost = quantize_money(price.input * (input_tokens - cache_read - cache_write) / MILLION)
    cache_read_cost = quantize_money(price.cache_read * cache_read / MILLION)
    cache_write_cost = quantize_money(price.cache_write * cache_write / MILLION)
    output_cost = quantize_money(price.output * output_tokens / MILLION)
    full = input_cost + cache_read_cost + cache_write_cost + output_cost
    cost = Decimal(0) if cache_hit else quantize_money(full / 2 if batch else full)
    return PricedEvent(
        **common,
        provider=price.provider,
        model=price.model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        batch=batch,
        cache_hit=cache_hit,
        priced=True,
        price_id=f"sample:{price.provider}:{price.model}",
        price_source="sample",
        input_cost_usd=input_cost,
        cache_read_cost_usd=cache_read_cost,
        cache_write_cost_usd=cache_write_cost,
        output_cost_usd=output_cost,
        cost_usd=cost,
        cache_saving_usd=full if cache_hit else Decimal(0),
        batch_saving_usd=quantize_money(full - cost) if batch else Decimal(0),
    )


def sample_priced_events(
    count: int,
    *,
    seed: int = 7,
    start: datetime = datetime(2026, 10, 1, tzinfo=UTC),
    span: timedelta = timedelta(days=45),
) -> list[PricedEvent]:
    """`count` events spread evenly over `span` from `start`, reproducible for a `seed`."""
    rng = random.Random(seed)
    step = span / max(count, 1)
    events = []
    for index in range(count):
        occurred = start + step * index + timedelta(milliseconds=rng.randrange(1000))
        events.append(sample_priced_event(rng, occurred, occurred + timedelta(milliseconds=rng.randrange(5, 900))))
    return events
