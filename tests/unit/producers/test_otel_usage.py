"""GenAI span attributes -> UsageEvent, without the SDK."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from meterline.events import UsageEvent
from meterline.producers.errors import UsageExtractionError
from meterline.producers.otel_usage import is_model_call, span_event

START_NS = int(datetime(2026, 11, 28, 9, 30, tzinfo=UTC).timestamp() * 1e9)
CHAT = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10}


def event(attributes: dict, resource: dict | None = None, **options: Any) -> UsageEvent:
    return span_event(
        attributes,
        resource or {},
        trace_id=1,
        span_id=2,
        start_ns=START_NS,
        end_ns=START_NS + 2_500_000,
        failed=False,
        **options,
    )


def test_only_spans_with_a_provider_and_token_usage_are_model_calls() -> None:
    assert is_model_call(CHAT)
    assert not is_model_call({"gen_ai.provider.name": "openai", "gen_ai.operation.name": "execute_tool"})
    assert not is_model_call({"gen_ai.usage.input_tokens": 3})
    assert is_model_call({"gen_ai.system": "anthropic", "gen_ai.usage.completion_tokens": 3})


def test_team_from_span_then_resource_then_default_and_an_error_without_any() -> None:
    assert event({**CHAT, "meterline.team": "a"}, {"meterline.team": "b"}).team == "a"
    assert event(CHAT, {"meterline.team": "b"}).team == "b"
    assert event(CHAT, default_team="c").team == "c"
    assert event({**CHAT, "team.name": "d"}, team_attribute="team.name").team == "d"
    with pytest.raises(UsageExtractionError, match="no meterline.team attribute"):
        event(CHAT)


def test_ids_time_latency_and_error_type() -> None:
    found = event({**CHAT, "error.type": "timeout"}, default_team="a")
    assert found.event_id == f"otel-{1:032x}-{2:016x}" and found.occurred_at == datetime(
        2026, 11, 28, 9, 30, tzinfo=UTC
    )
    assert found.latency_ms == 2 and found.status == "error"


def test_a_token_count_that_is_not_an_integer_is_refused() -> None:
    with pytest.raises(UsageExtractionError, match="not an integer"):
        event({**CHAT, "gen_ai.usage.output_tokens": "7"}, default_team="a")
