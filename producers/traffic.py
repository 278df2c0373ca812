"""Realistic, seeded usage traffic (pure: no Kafka). Used by `meterline loadgen`, demos, benches.

The same (seed, teams, start, rate) always yields the same events, event_ids included:
a mix of providers and models genai-prices knows, long-tailed (log-normal) token sizes,
provider prompt-cache reads and writes, reasoning tokens, batch-API calls, application cache
hits, a few errors, teams of Zipf-like sizes, and a few exact duplicates (retried sends).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from meterline.events import MAX_TOKENS, UsageEvent


@dataclass(frozen=True)
class ModelProfile:
    """How one model's calls look: share of traffic and typical sizes."""

    provider: str
    model: str
    weight: float
    input_median: int
    output_median: int
    cache_read_share: float = 0.0
    """Fraction of calls that read the provider's prompt cache."""
    cache_write_share: float = 0.0
    """Fraction of calls that write it (Anthropic bills writes)."""
    reasoning: bool = False


MODEL_MIX: tuple[ModelProfile, ...] = (
    ModelProfile("openai", "gpt-4o-mini", 0.34, 900, 180, cache_read_share=0.25),
    ModelProfile("openai", "gpt-4o", 0.18, 1800, 350, cache_read_share=0.3),
    ModelProfile("openai", "o3-mini", 0.05, 1200, 900, cache_read_share=0.1, reasoning=True),
    ModelProfile("anthropic", "claude-sonnet-4-20250514", 0.16, 2500, 500, 0.35, 0.08),
    ModelProfile("anthropic", "claude-3-5-haiku-20241022", 0.12, 700, 150, 0.2, 0.05),
    ModelProfile("google", "gemini-2.5-flash", 0.15, 1100, 250, cache_read_share=0.15),
)
APPS = ("chat-api", "summarizer", "search", "support-agent", "classifier")
ENVIRONMENTS = ("prod", "prod", "prod", "staging")
FEATURES = ("answer", "rerank", "extract", "draft", "translate")
TOKEN_SIGMA = 1.1
"""Log-normal spread: the 99th percentile is about 13x the median."""
BATCH_SHARE = 0.05
APP_CACHE_HIT_SHARE = 0.03
ERROR_SHARE = 0.01
DUPLICATE_SHARE = 0.002


def team_names(teams: int) -> list[str]:
    """`team-01`, `team-02`, ... (three digits from 100 teams on)."""
    width = max(2, len(str(teams)))
    return [f"team-{i:0{width}d}" for i in range(1, teams + 1)]


def _long_tail(rng: random.Random, median: int, cap: int = 400_000) -> int:
    return max(1, min(cap, round(rng.lognormvariate(0.0, TOKEN_SIGMA) * median)))


def _event_id(rng: random.Random, occurred_at: datetime) -> str:
    """A UUIDv7 (time-ordered like the producer's) whose random bits come from the seed."""
    millis = int(occurred_at.timestamp() * 1000) & ((1 << 48) - 1)
    rand_a = rng.getrandbits(12)
    rand_b = rng.getrandbits(62)
    value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def _one_event(rng: random.Random, teams: list[str], team_weights: list[float], occurred_at: datetime) -> UsageEvent:
    profile = rng.choices(MODEL_MIX, weights=[m.weight for m in MODEL_MIX])[0]
    team = rng.choices(teams, weights=team_weights)[0]
    input_tokens = _long_tail(rng, profile.input_median)
    output_tokens = _long_tail(rng, profile.output_median, cap=64_000)
    cache_read = cache_write = reasoning = 0
    if rng.random() < profile.cache_read_share:
        cache_read = int(input_tokens * rng.uniform(0.3, 0.95))
    if rng.random() < profile.cache_write_share:
        cache_write = int((input_tokens - cache_read) * rng.uniform(0.5, 1.0))
    if profile.reasoning:
        reasoning = int(output_tokens * rng.uniform(0.4, 0.9))
    batch = rng.random() < BATCH_SHARE
    cache_hit = not batch and rng.random() < APP_CACHE_HIT_SHARE
    status = "error" if rng.random() < ERROR_SHARE else "ok"
    if status == "error":
        output_tokens = reasoning = 0
    latency = None if batch else (rng.randint(1, 8) if cache_hit else _long_tail(rng, 900, cap=120_000))
    app = APPS[hash_index(team, len(APPS))] if rng.random() < 0.7 else rng.choice(APPS)
    tags = {"feature": rng.choice(FEATURES)} if rng.random() < 0.5 else {}
    return UsageEvent(
        event_id=_event_id(rng, occurred_at),
        occurred_at=occurred_at,
        team=team,
        project=f"{team}-{app}",
        app=app,
        user=f"user-{rng.randint(1, 500):03d}",
        environment=rng.choice(ENVIRONMENTS),
        provider=profile.provider,
        model=profile.model,
        input_tokens=min(input_tokens, MAX_TOKENS),
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        batch=batch,
        cache_hit=cache_hit,
        latency_ms=latency,
        status=status,
        request_id=f"req_{rng.getrandbits(64):016x}",
        tags=tags,
    )


def hash_index(text: str, modulo: int) -> int:
    """A stable small hash (Python's hash() is salted per process)."""
    return sum(text.encode()) % modulo


def iter_events(
    *, seed: int, teams: int, start: datetime, rate: float = 100.0, duplicate_share: float = DUPLICATE_SHARE
) -> Iterator[UsageEvent]:
    """An endless seeded stream: event i occurs at `start + i / rate` seconds.

    A duplicate (the same event again, as a retried send would produce) replaces a new event
    with probability `duplicate_share`.
    """
    if teams < 1:
        raise ValueError("teams must be at least 1")
    if rate <= 0:
        raise ValueError("rate must be positive (events per second of event time)")
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware, e.g. datetime.now(timezone.utc)")
    rng = random.Random(seed)
    names = team_names(teams)
    # Zipf-like team sizes: a few teams make most calls.
    weights = [1.0 / rank for rank in range(1, teams + 1)]
    recent: list[UsageEvent] = []
    index = 0
    while True:
        if recent and rng.random() < duplicate_share:
            yield rng.choice(recent)
        else:
            event = _one_event(rng, names, weights, start + timedelta(seconds=index / rate))
            recent.append(event)
            if len(recent) > 1000:
                del recent[:500]
            yield event
        index += 1


def generate_events(
    *,
    seed: int,
    teams: int,
    start: datetime,
    count: int,
    rate: float = 100.0,
    duplicate_share: float = DUPLICATE_SHARE,
) -> list[UsageEvent]:
    """The first `count` events of `iter_events(...)` (duplicates included)."""
    stream = iter_events(seed=seed, teams=teams, start=start, rate=rate, duplicate_share=duplicate_share)
    return list(islice(stream, count))
