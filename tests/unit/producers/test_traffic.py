"""The seeded traffic generator: deterministic, realistic, priced by genai-prices."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from genai_prices import Usage, calc_price

from meterline.producers.traffic import MODEL_MIX, generate_events, team_names

START = datetime(2025, 5, 1, tzinfo=UTC)
GENAI_PROVIDER_IDS = {"google": "google-gla"}


@pytest.fixture(scope="module")
def events():
    return generate_events(seed=7, teams=12, start=START, count=5000, rate=50.0)


def test_same_seed_same_events(events) -> None:
    again = generate_events(seed=7, teams=12, start=START, count=5000, rate=50.0)
    assert [e.to_json_bytes() for e in again] == [e.to_json_bytes() for e in events]


def test_other_seed_other_events(events) -> None:
    other = generate_events(seed=8, teams=12, start=START, count=200, rate=50.0)
    assert [e.event_id for e in other] != [e.event_id for e in events[:200]]


def test_event_times_follow_the_rate(events) -> None:
    assert events[0].occurred_at == START
    assert max(e.occurred_at for e in events) <= START + timedelta(seconds=5000 / 50.0)


def test_mix_of_teams_providers_models_and_flags(events) -> None:
    assert {e.team for e in events} <= set(team_names(12)) and len({e.team for e in events}) >= 10
    assert team_names(3) == ["team-01", "team-02", "team-03"]
    assert {e.provider for e in events} == {"openai", "anthropic", "google"}
    assert {e.model for e in events} == {m.model for m in MODEL_MIX}
    teams = Counter(e.team for e in events).most_common()
    assert teams[0][1] > 3 * teams[-1][1]  # a few teams make most calls
    assert sum(e.batch for e in events) > 100
    assert sum(e.cache_hit for e in events) > 50
    assert sum(e.cache_read_tokens > 0 for e in events) > 500
    assert sum(e.cache_write_tokens > 0 for e in events) > 20
    assert sum(e.reasoning_tokens > 0 for e in events) > 100
    assert sum(e.status == "error" for e in events) > 10


def test_a_few_exact_duplicates(events) -> None:
    counts = Counter(e.event_id for e in events)
    duplicates = sum(n - 1 for n in counts.values())
    assert 1 <= duplicates <= 50
    assert len(counts) + duplicates == len(events)


def test_token_sizes_have_a_long_tail(events) -> None:
    sizes = sorted(e.input_tokens for e in events)
    median = statistics.median(sizes)
    assert sizes[int(len(sizes) * 0.99)] > 8 * median


def test_every_model_is_priced_by_genai_prices() -> None:
    for profile in MODEL_MIX:
        result = calc_price(
            Usage(input_tokens=1000, output_tokens=100),
            model_ref=profile.model,
            provider_id=GENAI_PROVIDER_IDS.get(profile.provider, profile.provider),
        )
        assert result.total_price > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"teams": 0}, "teams"), ({"rate": 0}, "rate"), ({"start": datetime(2025, 1, 1)}, "timezone")],
)
def test_bad_arguments_say_what_to_do(kwargs: dict, message: str) -> None:
    args = {"seed": 1, "teams": 2, "start": START, "count": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate_events(**args)
